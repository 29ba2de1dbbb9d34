"""The baseline side of a run: model, tokenizer, corpus sequences, cached generations, probe inputs.

Everything is computed lazily and once. The baseline's corpus statistics come from the same
forward passes the comparison uses (see evaluate.py); a baseline-only pass runs only when no
configuration was measured.
"""

from __future__ import annotations

from functools import cached_property

from harness.config.identity import threads_of
from harness.data.tokens import corpus_sequences
from harness.engine.designs import designs as designs_of
from harness.engine.probeside import ProbeSide
from harness.methods import QuantContext
from harness.metrics.evidence import baseline_metrics
from harness.models.placement import (
    load_kwargs,
    offload_dir,
    parse_max_memory,
    placement_kwargs,
)
from harness.models.sources import load_model, load_tokenizer
from harness.system.clock import Phases
from harness.system.memory import release


class Baseline(ProbeSide):
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
        """How each evidence group's size is set (engine/designs.py)."""
        return designs_of(self)

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
