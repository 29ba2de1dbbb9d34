"""The baseline's side of the behaviour probes: prompt sets, its cached generations and what they decide.

A mixin of engine.baseline.Baseline (it reads self.spec, self.inputs, self.model, self.tokenizer, self.phases).
"""

from __future__ import annotations

import hashlib
from functools import cached_property

from harness.config.identity import generation_key
from harness.data.sets import load_prompts
from harness.data.tokens import probe_index
from harness.metrics.text import is_correct
from harness.system.files import cache_get, cache_put, cache_root, file_lock
from harness.system.progress import heartbeat


class ProbeSide:
    """Prompt sets, the baseline's generations (cached on disk) and its side of each behaviour probe."""

    @property
    def prompts(self):
        return self.inputs.prompts.prompts

    @cached_property
    def long_prompts(self):
        allp = load_prompts(self.spec.prompts).prompts
        picked = [p for p in allp if p.long] or [p for p in allp if not p.references] or list(allp)
        return list(picked[: self.spec.long_n_prompts])

    @cached_property
    def probe_sequences(self):
        return self.sequences[probe_index(len(self.sequences), self.spec.n_probe_sequences)]

    @cached_property
    def variant_prompts(self):
        """(reference prompts of the stability probe, their neutral variants: 3 per prompt)."""
        from harness.measure.behaviour import prompt_variants

        ref = [p for p in self.prompts if p.references]
        n = self.spec.n_stability_prompts
        if 0 < n < len(ref):  # evenly spread, so every prompt family keeps a share
            ref = [ref[(i * len(ref)) // n] for i in range(n)]
        return ref, [v for p in ref for v in prompt_variants(p.prompt)]

    @cached_property
    def stable_generations(self) -> tuple[list, list]:
        """The baseline's greedy continuations (texts, ids) of the three neutral variants of every reference prompt
        of the run, in prompt order (3 per prompt)."""
        from harness.measure.behaviour import prompt_variants

        texts = [v for p in self.prompts if p.references for v in prompt_variants(p.prompt)]
        return self.generate("stable", texts, self.spec.max_new_tokens, first_line=True) if texts else ([], [])

    @cached_property
    def variant_correctness(self) -> dict:
        """{prompt id: [correct on each of the three neutral variants]} for every reference prompt of
        the run (the baseline's own noise floor: a flip counts only where it is stable)."""
        ref = [p for p in self.prompts if p.references]
        out, _ = self.stable_generations
        return {p.id: [is_correct(t, list(p.references)) for t in out[3 * k : 3 * k + 3]] for k, p in enumerate(ref)}

    @cached_property
    def answer_items(self) -> dict:
        """The texts of the answer-margin measure: every stable-correct prompt and its three neutral variants with
        the baseline's own continuation and deciding token (measure/answers.py). {"ids": prompt id per text,
        "texts", "conts", "deciding": [Deciding]}."""
        from harness.measure.answers import deciding_tokens
        from harness.measure.behaviour import prompt_variants

        texts, ids = self.generations
        _, var_i = self.stable_generations
        ref = [p for p in self.prompts if p.references]
        at = {p.id: k for k, p in enumerate(ref)}
        items = {"ids": [], "texts": [], "conts": []}
        for p, t, c in zip(self.prompts, texts, ids):
            cv = self.variant_correctness.get(p.id)
            if not p.references or cv is None or not (is_correct(t, list(p.references)) and all(cv)):
                continue
            k = at[p.id]
            for text, cont in zip([p.prompt, *prompt_variants(p.prompt)], [c, *var_i[3 * k : 3 * k + 3]]):
                items["ids"].append(p.id)
                items["texts"].append(text)
                items["conts"].append(list(map(int, cont)))
        self.progress(f"baseline: deciding tokens of {len(items['texts'])} answers (teacher forced)")
        with self.phases.time("answer margins (deciding tokens)"):
            items["deciding"] = deciding_tokens(
                self.model, self.tokenizer, items["texts"], items["conts"], self.spec.bos, self.spec.gen_batch_size
            )
        return items

    @cached_property
    def open_prompts(self):
        """The open prompts of the degeneration gates (data.sets.load_open_prompts)."""
        return self.inputs.open_prompts.prompts

    @cached_property
    def open_generations(self):
        """Greedy continuations of the open prompts: (texts, token ids), cached on disk."""
        texts = [p.prompt for p in self.open_prompts]
        return self.generate("open", texts, self.spec.max_new_tokens) if texts else ([], [])

    @cached_property
    def sink_source(self):
        """The baseline's states of sink prefixes, for the --protect-sink variants."""
        from harness.measure.protect import SinkSource

        return SinkSource(self.model, self.spec.sink_positions)

    def calibration(self, n: int, seed: int):
        """n corpus samples for calibration, drawn with a seed; returns (texts, sha256)."""
        import random

        rng = random.Random(seed)
        chunks = []
        for d in self.inputs.corpus.documents:
            chunks += [d[i : i + 1200] for i in range(0, len(d), 1200) if len(d[i : i + 1200].strip()) > 100]
        picked = rng.sample(chunks, min(n, len(chunks)))
        return picked, hashlib.sha256("\x00".join(picked).encode()).hexdigest()

    # ---- generations and the baseline's side of the behaviour probes ----
    @cached_property
    def generations(self):
        """Greedy continuations of the run's prompts: (texts, token ids), cached on disk."""
        return self.generate(
            "prompts",
            [p.prompt for p in self.prompts],
            self.spec.max_new_tokens,
            first_line=[bool(p.references) for p in self.prompts],
        )

    def generate(self, tag: str, texts: list[str], new_tokens: int, min_new: int = 0, first_line=False):
        """Greedy continuations of the baseline, cached on disk keyed by everything that changes them
        (first_line: per text, stop at the end of the answer's line; measure/generation.py)."""
        from harness.measure.generation import generate

        flags = [first_line] * len(texts) if isinstance(first_line, bool) else list(first_line)
        key = generation_key(
            self.spec, self.inputs, self.threads, f"{tag}:lines={sum(flags)}", texts, new_tokens, min_new
        )
        path = cache_root() / "baseline-gen" / f"{key}.json"
        with file_lock(path.with_suffix(".lock")):
            hit = cache_get(path)
            if hit is not None:
                self.progress(f"baseline generation ({tag}): cached ({path.name})")
                return hit["texts"], hit["ids"]
            self.progress(f"baseline generation ({tag}): {len(texts)} prompts x {new_tokens} tokens")
            with heartbeat(self.progress, f"baseline generation ({tag})"), self.phases.time(f"generation: {tag}"):
                out_t, out_i = generate(
                    self.model,
                    self.tokenizer,
                    texts,
                    new_tokens,
                    self.spec.gen_batch_size,
                    self.spec.bos,
                    return_ids=True,
                    min_new_tokens=min_new,
                    first_line=flags,
                )
            cache_put(path, {"texts": out_t, "ids": [list(map(int, x)) for x in out_i]})
        return out_t, out_i

    @cached_property
    def behaviour(self) -> dict:
        """The baseline's side of every behaviour probe (computed once per run)."""
        from harness.measure.behaviour import continuation_nll, perturbation_spread

        s = self.spec
        _, variants = self.variant_prompts
        out = {
            "variants": self.generate("variants", variants, s.max_new_tokens, first_line=True),
            "long": self.generate("long", [p.prompt for p in self.long_prompts], s.long_new_tokens, s.long_new_tokens),
        }
        _, base_ids = self.generations
        with self.phases.time("scoring its own continuations (gen_ppl)"):
            out["own_nll"] = continuation_nll(
                self.model, self.tokenizer, [p.prompt for p in self.prompts], base_ids, s.bos, s.gen_batch_size
            )
        with self.phases.time("probe: perturbation"):
            out["spread"] = perturbation_spread(self.model, self.probe_sequences, max(s.sink_positions) + 1).numpy()
        return out
