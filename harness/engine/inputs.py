"""A run's inputs, loaded and checked before anything is measured: every usage error surfaces here."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from harness.config.identity import spec_identity
from harness.data.sets import load_corpus, load_open_prompts, load_prompts
from harness.data.tasksets import load_tasks
from harness.errors import UsageError
from harness.gates.policy import load_policy
from harness.history.runs import compare_details, resolve
from harness.methods import bit_class, expand_shorthand
from harness.models.placement import check_fits_one_layer, parse_max_memory
from harness.models.sources import load_tokenizer, resolve_model
from harness.models.structure import (
    decoder_layers,
    input_width,
    linear_modules,
    meta_model,
)
from harness.report.tracking import check_tracking
from harness.scenarios import selected
from harness.system.files import ensure_writable_dir


class ModelInfo:
    """What preflight checks may ask about the model without loading weights."""

    def __init__(self, source, trust_remote_code: bool = False, allow_pickle: bool = False):
        self.source, self.trust_remote_code, self.allow_pickle = source, trust_remote_code, allow_pickle

    @cached_property
    def meta(self):
        """The architecture on the meta device (built on first use)."""

        return meta_model(self.source.local_dir, self.trust_remote_code)

    def shorthand_group(self, choices=(128, 64, 32)) -> tuple[int, str]:
        """The largest group size in choices that divides every quantizable layer's input width."""

        widths = sorted({input_width(m, t) for _, m, t in linear_modules(self.meta)})
        for g in choices:
            if all(w % g == 0 for w in widths):
                return (
                    g,
                    f"the largest of {'/'.join(map(str, choices))} dividing every layer input width "
                    f"({', '.join(map(str, widths))})",
                )
        return choices[
            0
        ], f"none of {'/'.join(map(str, choices))} divides every layer input width ({', '.join(map(str, widths))})"


@dataclass
class RunInputs:
    policy: object
    corpus: object
    prompts: object
    source: object  # models.ModelSource
    earlier: dict | None  # the earlier run's results (--compare), or None
    compare_note: str
    notes: list = field(default_factory=list)  # choices made for the user (shown in the header and results)
    anchor: dict | None = None  # the newest comparable pinned run (drift checks), when --compare chose another
    open_prompts: object = None  # data.sets.PromptSet of open prompts (degeneration gates)
    tasks: tuple = ()  # data.tasksets tasks of --tasks (task gates)

    @classmethod
    def load(cls, spec) -> RunInputs:
        """Policy, corpus, prompts, model source, per-method preflight, the earlier run: or a UsageError."""
        ensure_writable_dir(spec.report_dir, "--report-dir")  # found now, not after the measurement
        if spec.reference and spec.reference_dir:
            ensure_writable_dir(spec.reference_dir, "--reference-dir")
        if spec.mlflow:  # mlflow installed, the store writable or the server answering: before measuring
            check_tracking(spec.mlflow, spec.report_dir)

        policy = load_policy(spec.policy)
        corpus = load_corpus(spec.corpus, spec.corpus_split)
        prompts = load_prompts(spec.prompts).subset(spec.n_prompts)
        open_prompts = load_open_prompts(spec.open_prompts).subset(spec.n_open_prompts)
        tasks = load_tasks(spec.tasks, spec.tasks_dir)
        source = resolve_model(spec.model, spec.revision, allow_pickle=spec.allow_pickle)
        info = ModelInfo(source, spec.trust_remote_code, spec.allow_pickle)
        notes = []
        if not spec.quant and spec.bits and spec.methods:  # --bits/--methods: groups that fit this model
            group, why = info.shorthand_group()
            spec.quant = expand_shorthand(spec.bits, spec.methods, group)
            notes.append(
                f"--bits {spec.bits} --methods {spec.methods}: group size {group} ({why}): "
                f"{', '.join(q.spec for q in spec.quant)}"
            )
        if spec.max_memory:
            width = {"fp32": 4, "fp16": 2, "bf16": 2}[spec.baseline_dtype]
            layer = max(sum(p.numel() for p in lay.parameters()) for lay in decoder_layers(info.meta)) * width
            check_fits_one_layer(parse_max_memory(spec.max_memory), layer)
        if "streaming" in selected(spec):
            _check_stream_len(spec, corpus, source, info)
        for q in spec.quant:
            q.preflight(info)
            # a class must be known before any gate is collected, and some limit must apply to it
            policy.check_covers(q.spec, bit_class(q, spec.bit_class) if policy.by_class else None)
        # latest / pinned: the newest comparable run; a named RUN_ID or PATH must be comparable
        earlier, note = resolve(
            spec.compare,
            spec.report_dir,
            spec.model,
            spec.compare_explicit,
            spec_identity(spec, corpus, prompts, source, open_prompts, tasks),
        )
        if earlier is not None:
            note += compare_details(earlier, [q.spec for q in spec.quant])
        anchor = None
        if spec.compare not in (None, "", "none", "pinned"):  # drift from the newest comparable pin, if any
            anchor, _ = resolve(
                "pinned",
                spec.report_dir,
                spec.model,
                False,
                spec_identity(spec, corpus, prompts, source, open_prompts, tasks),
            )
            if anchor is not None and anchor.get("run_id") == (earlier or {}).get("run_id"):
                anchor = None  # the earlier run is the pin itself: its checks already say it
            elif anchor is not None:
                note += f"; drift checked against pinned run {anchor.get('run_id')}"
        return cls(policy, corpus, prompts, source, earlier, note, notes, anchor, open_prompts, tasks)


def _check_stream_len(spec, corpus, source, info) -> None:
    """--stream-len must fit the model's positions and the corpus: a usage error now, not a failure per
    configuration after the measurement started."""
    most = getattr(info.meta.config, "max_position_embeddings", None)
    if most and spec.stream_len > most:
        raise UsageError(
            f"--stream-len {spec.stream_len} is longer than the model's {most} positions; give at most {most}"
        )
    tok = load_tokenizer(source.local_dir, spec.trust_remote_code)
    have = sum(len(tok(d, add_special_tokens=False, verbose=False)["input_ids"]) + 1 for d in corpus.documents)
    if have < spec.stream_len:
        raise UsageError(
            f"--stream-len {spec.stream_len} needs a corpus of at least that many tokens; corpus "
            f"'{corpus.name}' has {have}: lower --stream-len or give a larger corpus"
        )
