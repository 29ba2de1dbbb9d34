"""The baseline side of a run: model, tokenizer, corpus sequences, cached generations, probe inputs.

Everything is computed lazily and once. The baseline's corpus statistics come from the same
forward passes the comparison uses (see evaluate.py); a baseline-only pass runs only when no
configuration was measured.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

from harness.config.identity import generation_key, threads_of
from harness.data.sets import load_open_prompts, load_prompts
from harness.data.tokens import corpus_sequences, probe_index
from harness.methods import QuantContext
from harness.metrics.evidence import baseline_metrics
from harness.metrics.text import is_correct
from harness.models.placement import (
    load_kwargs,
    offload_dir,
    parse_max_memory,
    placement_kwargs,
)
from harness.models.sources import load_model, load_tokenizer
from harness.system.clock import Phases
from harness.system.files import cache_get, cache_put, cache_root, file_lock
from harness.system.memory import release
from harness.system.progress import heartbeat


class Baseline:
    def __init__(self, spec, inputs, progress):
        self.spec, self.inputs, self.progress = spec, inputs, progress
        self.summary = None  # ModelSummary of the baseline from the first comparison pass
        self.threads: int | None = None
        self.scenario_state: dict = {}  # the deployment scenarios' baseline side (harness/scenarios/runner.py)
        self.phases = Phases()  # seconds per phase of the baseline's side (system/clock.py)

    def setup_threads(self) -> None:
        import torch

        self.threads = threads_of(self.spec)
        torch.set_num_threads(self.threads)

    @cached_property
    def tokenizer(self):
        return load_tokenizer(self.inputs.source.local_dir, self.spec.trust_remote_code)

    def load(self, placed: bool = False):
        """A fresh baseline (eager attention); with --device-map only `placed` follows the map (see placement.py)."""

        s = self.spec
        mapped = s.device_map != "none"
        kw = load_kwargs(s.device_map, parse_max_memory(s.max_memory), offload_dir()) if mapped and placed else {}
        return load_model(
            self.inputs.source.local_dir,
            dtype=s.baseline_dtype,
            device="cpu" if mapped and not placed else s.device,
            allow_pickle=s.allow_pickle,
            trust_remote_code=s.trust_remote_code,
            **kw,
        )

    @cached_property
    def model(self):
        self.setup_threads()
        where = self.spec.device if self.spec.device_map == "none" else f"device map {self.spec.device_map}"
        self.progress(f"loading baseline {self.spec.model} ({self.spec.baseline_dtype}, {where})")
        with self.phases.time("load"):
            return self.load(placed=True)

    @property
    def loaded(self) -> bool:
        return "model" in self.__dict__

    def holds(self, model) -> bool:
        """Is model the baseline's own loaded model (a KV-cache configuration runs on it)?"""
        return self.loaded and model is self.model

    def drop_model(self) -> None:
        """Free the baseline model (reference mode measures without it; the next use loads it again)."""
        self.__dict__.pop("model", None)
        release()

    def adopt_reference(self, ref) -> None:
        """Take the baseline's side from a stored reference instead of computing it with the model."""
        self.__dict__.update(ref.baseline_side())
        self.summary = ref.summary(self.batches)

    @cached_property
    def _sequences_and_docs(self):
        s = self.spec
        return corpus_sequences(self.tokenizer, self.inputs.corpus, s.n_sequences, s.seq_len, s.bos, with_docs=True)

    @property
    def sequences(self):
        """[N, seq_len] corpus token ids."""
        return self._sequences_and_docs[0]

    @property
    def sequence_docs(self) -> list[int]:
        """The corpus document each sequence was cut from (intervals resample documents)."""
        return self._sequences_and_docs[1]

    @cached_property
    def designs(self) -> dict:
        """How each evidence group's size is set (option, its value now and at most, the unit): what an
        undecided gate's "what would decide it" line scales (gates/decider.py)."""
        s, corpus = self.spec, self.inputs.corpus
        n_docs = len(corpus.documents)
        every = load_prompts(s.prompts).prompts
        more_docs = (
            f"the corpus has {n_docs} documents; give one with more (--corpus python-docs, or a file split "
            f"into more documents)"
        )
        more_prompts = f"the prompt set has {len(every)} prompts; give a larger one (--prompts PATH)"
        return {
            "sequences": {
                "option": "--n-sequences",
                "value": len(self.sequences),
                "max_units": n_docs,
                "unit": "documents",
                "more": more_docs,
            },
            "prompts": {
                "option": "--n-prompts",
                "value": len(self.prompts),
                "max_value": len(every),
                "unit": "prompts",
                "more": more_prompts,
            },
            "stability": {
                "option": "--n-stability-prompts",
                "value": len(self.variant_prompts[0]),
                "max_value": sum(1 for p in every if p.references),
                "unit": "prompts",
                "more": more_prompts,
            },
            "gen_ppl": {
                "option": "--n-prompts",
                "value": len(self.prompts),
                "max_value": len(every),
                "unit": "prompts",
                "more": more_prompts,
            },
            "long": {
                "option": "--long-n-prompts",
                "value": len(self.long_prompts),
                "max_value": sum(1 for p in every if p.long) or len(every),
                "unit": "prompts",
                "more": 'the prompt set marks too few prompts long; mark more ("long": true)',
            },
            "degenerate_rate": {
                "option": "--n-open-prompts",
                "value": len(self.open_prompts),
                "max_value": len(load_open_prompts(s.open_prompts).prompts),
                "unit": "open prompts",
                "more": "give a larger open-prompt set (--open-prompts PATH)",
            },
            "answers": {
                "option": "--n-prompts",
                "value": len(self.prompts),
                "max_value": len(every),
                "unit": "prompts",
                "more": more_prompts,
            },
            "spread": {
                "option": "--n-probe-sequences",
                "value": len(self.probe_sequences),
                "max_units": n_docs,
                "unit": "documents",
                "more": more_docs,
            },
        }

    @property
    def batches(self):
        seqs, b = self.sequences, self.spec.batch_size
        return [seqs[i : i + b] for i in range(0, len(seqs), b)]

    @cached_property
    def stats(self) -> dict:
        """The baseline block of results.json."""
        from harness.measure.passes import run_single

        summary = self.summary
        if summary is None:  # no configuration measured (yet): a baseline-only pass
            self.progress(f"baseline pass over {len(self.sequences)} sequences x {self.spec.seq_len} tokens")
            summary = run_single(self.model, self.batches, self.spec.sink_positions)
        return baseline_metrics(summary, self.tokenizer, self.spec.sink_positions)

    # ---- inputs of the comparison probes ----
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

    def quant_context(self, q):
        """What a quantization handler receives for q in this run."""

        s, src = self.spec, self.inputs.source
        return QuantContext(
            model_dir=src.local_dir,
            model_key=src.sha256 or str(src.local_dir),
            dtype=s.baseline_dtype,
            device=s.device,
            load_baseline=self.load,
            shared_baseline=lambda: self.model,
            tokenizer=self.tokenizer,
            calibration=self.calibration,
            seed=s.seed,
            gptq_samples=s.gptq_samples,
            allow_pickle=s.allow_pickle,
            progress=lambda m: self.progress(f"{q.spec}: {m}"),
            trust_remote_code=s.trust_remote_code,
            placement=placement_kwargs(s),
        )
