"""The baseline side of a run: model, tokenizer, corpus sequences, cached generations, probe inputs.

Everything is computed lazily and once. The baseline's corpus statistics come from the same
forward passes the comparison uses (see evaluate.py); a baseline-only pass runs only when no
configuration was measured.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property

from .placement import placement_kwargs
from .progress import heartbeat


class Baseline:
    def __init__(self, spec, inputs, progress):
        self.spec, self.inputs, self.progress = spec, inputs, progress
        self.summary = None  # ModelSummary of the baseline from the first comparison pass
        self.threads: int | None = None
        self.scenario_state: dict = {}  # the deployment scenarios' baseline side (harness/scenarios/runner.py)

    def setup_threads(self) -> None:
        import torch

        n = self.spec.threads or (int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else None)
        self.threads = n or default_threads()
        torch.set_num_threads(self.threads)

    @cached_property
    def tokenizer(self):
        from .models import load_tokenizer

        return load_tokenizer(self.inputs.source.local_dir, self.spec.trust_remote_code)

    def load(self, placed: bool = False):
        """A fresh baseline (eager attention); with --device-map only `placed` follows the map (see placement.py)."""
        from .models import load_model
        from .placement import load_kwargs, offload_dir, parse_max_memory

        s = self.spec
        mapped = s.device_map != "none"
        kw = load_kwargs(s.device_map, parse_max_memory(s.max_memory), offload_dir()) if mapped and placed else {}
        return load_model(self.inputs.source.local_dir, dtype=s.baseline_dtype,
                          device="cpu" if mapped and not placed else s.device,
                          allow_pickle=s.allow_pickle, trust_remote_code=s.trust_remote_code, **kw)

    @cached_property
    def model(self):
        self.setup_threads()
        where = self.spec.device if self.spec.device_map == "none" else f"device map {self.spec.device_map}"
        self.progress(f"loading baseline {self.spec.model} ({self.spec.baseline_dtype}, {where})")
        return self.load(placed=True)

    @property
    def loaded(self) -> bool:
        return "model" in self.__dict__

    @cached_property
    def _sequences_and_docs(self):
        from .tokens import corpus_sequences

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

    @property
    def batches(self):
        seqs, b = self.sequences, self.spec.batch_size
        return [seqs[i:i + b] for i in range(0, len(seqs), b)]

    @cached_property
    def stats(self) -> dict:
        """The baseline block of results.json."""
        from .measure import run_single
        from .summarize import baseline_metrics

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
        from .datasets import load_prompts

        allp = load_prompts(self.spec.prompts).prompts
        picked = [p for p in allp if p.long] or [p for p in allp if not p.references] or list(allp)
        return list(picked[:self.spec.long_n_prompts])

    @cached_property
    def probe_sequences(self):
        return self.sequences[probe_index(len(self.sequences), self.spec.n_probe_sequences)]

    @cached_property
    def variant_prompts(self):
        """(reference prompts of the stability probe, their neutral variants: 3 per prompt)."""
        from .behaviour import prompt_variants

        ref = [p for p in self.prompts if p.references]
        n = self.spec.n_stability_prompts
        if 0 < n < len(ref):  # evenly spread, so every prompt family keeps a share
            ref = [ref[(i * len(ref)) // n] for i in range(n)]
        return ref, [v for p in ref for v in prompt_variants(p.prompt)]

    @cached_property
    def variant_correctness(self) -> dict:
        """{prompt id: [correct on each of the three neutral variants]} for every reference prompt of
        the run (the baseline's own noise floor: a flip counts only where it is stable)."""
        from .behaviour import prompt_variants
        from .generation import is_correct

        ref = [p for p in self.prompts if p.references]
        texts = [v for p in ref for v in prompt_variants(p.prompt)]
        out, _ = self.generate("stable", texts, self.spec.max_new_tokens) if texts else ([], [])
        return {p.id: [is_correct(t, list(p.references)) for t in out[3 * k:3 * k + 3]] for k, p in enumerate(ref)}

    @cached_property
    def sink_source(self):
        """The baseline's states of sink prefixes, for the --protect-sink variants."""
        from .protect import SinkSource

        return SinkSource(self.model, self.spec.sink_positions)

    def calibration(self, n: int, seed: int):
        """n corpus samples for calibration, drawn with a seed; returns (texts, sha256)."""
        import random

        rng = random.Random(seed)
        chunks = []
        for d in self.inputs.corpus.documents:
            chunks += [d[i:i + 1200] for i in range(0, len(d), 1200) if len(d[i:i + 1200].strip()) > 100]
        picked = rng.sample(chunks, min(n, len(chunks)))
        return picked, hashlib.sha256("\x00".join(picked).encode()).hexdigest()

    # ---- generations and the baseline's side of the behaviour probes ----
    @cached_property
    def generations(self):
        """Greedy continuations of the run's prompts: (texts, token ids), cached on disk."""
        return self.generate("prompts", [p.prompt for p in self.prompts], self.spec.max_new_tokens)

    def _gen_key(self, tag: str) -> str:
        from . import __version__
        from .results import package_version

        s = self.spec
        blob = {"model": self.inputs.source.sha256 or str(self.inputs.source.local_dir), "revision": s.revision,
                "prompts": self.inputs.prompts.sha256, "ids": [p.id for p in self.prompts],
                "new": s.max_new_tokens, "batch": s.gen_batch_size, "bos": s.bos, "dtype": s.baseline_dtype,
                "device": s.device, "harness": __version__, "torch": package_version("torch"),
                "transformers": package_version("transformers"), "threads": self.threads, "tag": tag}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:24]

    def generate(self, tag: str, texts: list[str], new_tokens: int, min_new: int = 0):
        """Greedy continuations of the baseline, cached on disk keyed by everything that changes them."""
        from .generation import generate
        from .storage import cache_get, cache_put, cache_root, file_lock

        extra = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        path = cache_root() / "baseline-gen" / f"{self._gen_key(f'{tag}:{extra}:{new_tokens}:{min_new}')}.json"
        with file_lock(path.with_suffix(".lock")):
            hit = cache_get(path)
            if hit is not None:
                self.progress(f"baseline generation ({tag}): cached ({path.name})")
                return hit["texts"], hit["ids"]
            self.progress(f"baseline generation ({tag}): {len(texts)} prompts x {new_tokens} tokens")
            with heartbeat(self.progress, f"baseline generation ({tag})"):
                out_t, out_i = generate(self.model, self.tokenizer, texts, new_tokens, self.spec.gen_batch_size,
                                        self.spec.bos, return_ids=True, min_new_tokens=min_new)
            cache_put(path, {"texts": out_t, "ids": [list(map(int, x)) for x in out_i]})
        return out_t, out_i

    @cached_property
    def behaviour(self) -> dict:
        """The baseline's side of every behaviour probe (computed once per run)."""
        from .behaviour import continuation_nll, perturbation_spread

        s = self.spec
        _, variants = self.variant_prompts
        out = {"variants": self.generate("variants", variants, s.max_new_tokens),
               "long": self.generate("long", [p.prompt for p in self.long_prompts], s.long_new_tokens,
                                     s.long_new_tokens)}
        _, base_ids = self.generations
        out["own_nll"] = continuation_nll(self.model, self.tokenizer, [p.prompt for p in self.prompts], base_ids,
                                          s.bos, s.gen_batch_size)
        ids = self.probe_sequences
        out["spread"] = perturbation_spread(self.model, ids, max(s.sink_positions) + 1).numpy()
        return out

    def quant_context(self, q):
        """What a quantization handler receives for q in this run."""
        from .methods import QuantContext

        s, src = self.spec, self.inputs.source
        return QuantContext(
            model_dir=src.local_dir, model_key=src.sha256 or str(src.local_dir), dtype=s.baseline_dtype,
            device=s.device, load_baseline=self.load, shared_baseline=lambda: self.model, tokenizer=self.tokenizer,
            calibration=self.calibration, seed=s.seed, gptq_samples=s.gptq_samples, allow_pickle=s.allow_pickle,
            progress=lambda m: self.progress(f"{q.spec}: {m}"), trust_remote_code=s.trust_remote_code,
            placement=placement_kwargs(s))


def probe_index(n_sequences: int, n: int) -> list[int]:
    """The corpus sequences the probes use: n of them (at most all), evenly spread."""
    n = min(n, n_sequences)
    return sorted({round(i * (n_sequences - 1) / max(n - 1, 1)) for i in range(n)})


def default_threads() -> int:
    """Thread count when neither --qs-threads nor OMP_NUM_THREADS is set.

    Measured with bench/threads.py on the 2-core CI machine (SmolLM2-135M): 2 threads ran the
    captured forward 2.6x and generation 1.5x faster than 1, so use every core.
    """
    return os.cpu_count() or 1
