"""A run's inputs, loaded and checked before anything is measured: every usage error surfaces here."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


class ModelInfo:
    """What preflight checks may ask about the model without loading weights."""

    def __init__(self, source, trust_remote_code: bool = False):
        self.source, self.trust_remote_code = source, trust_remote_code

    @cached_property
    def meta(self):
        """The architecture on the meta device (built on first use)."""
        from .structure import meta_model

        return meta_model(self.source.local_dir, self.trust_remote_code)


@dataclass
class RunInputs:
    policy: object
    corpus: object
    prompts: object
    source: object  # models.ModelSource
    earlier: dict | None  # the earlier run's results (--compare), or None
    compare_note: str

    @classmethod
    def load(cls, spec) -> "RunInputs":
        """Policy, corpus, prompts, model source, per-method preflight, the earlier run: or a UsageError."""
        from .datasets import load_corpus, load_prompts
        from .history import compare_details, resolve, spec_identity
        from .methods import bit_class
        from .models import resolve_model
        from .policy import load_policy

        policy = load_policy(spec.policy)
        corpus = load_corpus(spec.corpus)
        prompts = load_prompts(spec.prompts).subset(spec.n_prompts)
        source = resolve_model(spec.model, spec.revision, allow_pickle=spec.allow_pickle)
        info = ModelInfo(source, spec.trust_remote_code)
        for q in spec.quant:
            bit_class(q, spec.bit_class)  # a class must be known before any gate is collected
            q.preflight(info)
        # latest / pinned: the newest comparable run; a named RUN_ID or PATH must be comparable
        earlier, note = resolve(spec.compare, spec.report_dir, spec.model, spec.compare_explicit,
                                spec_identity(spec, corpus, prompts, source))
        if earlier is not None:
            note += compare_details(earlier, [q.spec for q in spec.quant])
        return cls(policy, corpus, prompts, source, earlier, note)
