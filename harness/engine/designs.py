"""How each evidence group's size is set: what an undecided gate's "what would decide it" line scales."""

from __future__ import annotations

from harness.data.sets import load_open_prompts, load_prompts


def designs(base) -> dict:
    """How each evidence group's size is set (option, its value now and at most, the unit): what an
    undecided gate's "what would decide it" line scales (gates/decider.py)."""
    s, corpus = base.spec, base.inputs.corpus
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
            "value": len(base.sequences),
            "max_units": n_docs,
            "unit": "documents",
            "more": more_docs,
        },
        "prompts": {
            "option": "--n-prompts",
            "value": len(base.prompts),
            "max_value": len(every),
            "unit": "prompts",
            "more": more_prompts,
        },
        "stability": {
            "option": "--n-stability-prompts",
            "value": len(base.variant_prompts[0]),
            "max_value": sum(1 for p in every if p.references),
            "unit": "prompts",
            "more": more_prompts,
        },
        "gen_ppl": {
            "option": "--n-prompts",
            "value": len(base.prompts),
            "max_value": len(every),
            "unit": "prompts",
            "more": more_prompts,
        },
        "long": {
            "option": "--long-n-prompts",
            "value": len(base.long_prompts),
            "max_value": sum(1 for p in every if p.long) or len(every),
            "unit": "prompts",
            "more": 'the prompt set marks too few prompts long; mark more ("long": true)',
        },
        "degenerate_rate": {
            "option": "--n-open-prompts",
            "value": len(base.open_prompts),
            "max_value": len(load_open_prompts(s.open_prompts).prompts),
            "unit": "open prompts",
            "more": "give a larger open-prompt set (--open-prompts PATH)",
        },
        "answers": {
            "option": "--n-prompts",
            "value": len(base.prompts),
            "max_value": len(every),
            "unit": "prompts",
            "more": more_prompts,
        },
        "spread": {
            "option": "--n-probe-sequences",
            "value": len(base.probe_sequences),
            "max_units": n_docs,
            "unit": "documents",
            "more": more_docs,
        },
    }
