"""Would a smoke-sized run have reached the same gate decisions, and are its values biased? Measured on one large run.

    python bench/verdict_stability.py REPORT_DIR/<run_id>/results.json [--draws 100] [--seqs 16] [--prompts 96]

From the run's per-item evidence (configs[].evidence.sequences and configs[].generations) it draws smoke-sized
subsets the way a smaller run would have sampled them: whole clusters at a time (corpus documents for sequences,
prompt families for prompts: a smoke run holds fewer documents and fewer prompts per family, never half a
document), until the subset holds the smoke size. Every gate whose catalogue formula can be recomputed from the
records results.json keeps (harness.metrics.evidence.stored_evidence; worst-head gates need per-head evidence it
does not keep) is decided on each subset with the run's own view and decision (gate_view, evaluate_gate).

Reported per configuration and gate: the subsets' outcomes, contradictions (pairs of subsets, one pass and one
fail), bias (the mean subset value minus the full run's, over the full run's interval half-width: a gate that is
consistently off shows here even with no contradiction; its standard error beside it: whole prompt families
differ, so with 30 draws a bias of one half-width is noise) and wrong-side decisions (a subset that passes what
the full run failed, or fails what it passed). Last line: `contradictions=<share> inconclusive=<share>
wrong_side=<share> bias_max=<half-widths> bias_max_se=<its standard error>`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import numpy as np

from harness.gates.decide import evaluate_gate
from harness.gates.policy import Limit
from harness.gates.regression import stored_items
from harness.metrics.catalogue import BY_NAME, METRICS, STORED
from harness.metrics.evidence import family, gate_view, stored_evidence


def recomputable(metric: str, items: list[dict], stored: float | None = None) -> bool:
    """Can the gate be recomputed from the per-item records results.json keeps (worst-head gates cannot)? With the
    run's stored value: only if the recomputation gives it back (kld_p99 is a percentile over tokens, and the
    stored records hold each sequence's mean only: its recomputation is another quantity)."""
    m = BY_NAME[metric]
    if not items:
        return False
    try:
        view = gate_view(m, stored_evidence(m.evidence, items), len(items))
    except (KeyError, IndexError, ValueError, TypeError):
        return False
    if stored is None or view.value is None or not (math.isfinite(stored) and math.isfinite(view.value)):
        return True
    return math.isclose(view.value, stored, rel_tol=1e-6, abs_tol=1e-9)


def cluster_of(group: str, item: dict, k: int) -> object:
    return item["doc"] if group == "sequences" else family(item.get("id", k))


def draw(items: list[dict], group: str, size: int, rng) -> list[dict]:
    """Whole clusters, drawn without replacement in random order, until the subset holds at least `size` items.
    Never a part of a cluster: cutting the last one short under-represents the large clusters (the prompt
    families hold 10-66 stable-correct prompts), and a gate whose rate differs between families then reads a
    bias of the subset design (rtn-w3g32's flip_rate: -1.1 half-widths), not of its estimator."""
    by: dict = {}
    for k, it in enumerate(items):
        by.setdefault(cluster_of(group, it, k), []).append(it)
    clusters = list(by.values())
    out = []
    for c in rng.permutation(len(clusters)):
        out += clusters[c]
        if len(out) >= size:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--draws", type=int, default=100, help="subsets per configuration and gate")
    ap.add_argument("--seqs", type=int, default=16, help="sequences per subset (smoke: 16)")
    ap.add_argument("--prompts", type=int, default=96, help="prompts per subset (smoke: 96, open prompts: 256)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    r = json.loads(Path(a.results).read_text())
    rng = np.random.default_rng(a.seed)
    pairs = contradictions = outcomes = undecided = wrong = 0
    bias_max = bias_max_se = 0.0
    print(
        f"{'config':<22} {'gate':<20} {'pass':>5} {'fail':>5} {'undec':>5} {'contra':>7} {'wrong':>6} {'bias':>7} "
        f"{'(se)':>6}"
    )
    for c in r["configs"]:
        gates = {g["metric"]: g for g in c.get("gates", [])}
        for metric in [m.name for m in METRICS if m.name in gates and m.evidence in STORED]:
            group = BY_NAME[metric].evidence
            items = stored_items(c, group) or []
            g = gates[metric]
            if not recomputable(metric, items, g.get("value")):
                continue
            limit = Limit(g["op"], g["limit"])
            full = gate_view(BY_NAME[metric], stored_evidence(group, items), len(items))
            got, values = [], []
            for _ in range(a.draws):
                sub = draw(items, group, a.seqs if group == "sequences" else a.prompts, rng)
                view = gate_view(BY_NAME[metric], stored_evidence(group, sub), len(sub))
                got.append(evaluate_gate(c["spec"], metric, limit, view)["outcome"])
                if view.value is not None and math.isfinite(view.value):
                    values.append(view.value)
            decisive = [o for o in got if o in ("pass", "fail")]
            n_pairs = len(got) * (len(got) - 1) // 2
            bad = sum(1 for x, y in itertools.combinations(got, 2) if {x, y} == {"pass", "fail"})
            full_outcome = evaluate_gate(c["spec"], metric, limit, full)["outcome"]
            wrong_side = sum(1 for o in got if {o, full_outcome} == {"pass", "fail"})
            half = (full.ci[1] - full.ci[0]) / 2 if full.ci else math.nan
            ok = len(values) > 1 and half and math.isfinite(half)
            bias = (np.mean(values) - full.value) / half if ok else math.nan
            bias_se = np.std(values, ddof=1) / math.sqrt(len(values)) / half if ok else math.nan
            pairs, contradictions, outcomes = pairs + n_pairs, contradictions + bad, outcomes + len(got)
            undecided += len(got) - len(decisive)
            wrong += wrong_side
            if math.isfinite(bias) and abs(bias) > bias_max:
                bias_max, bias_max_se = abs(bias), bias_se
            print(
                f"{c['spec']:<22} {metric:<20} {got.count('pass'):>5} {got.count('fail'):>5} "
                f"{len(got) - len(decisive):>5} {bad / max(1, n_pairs):>7.3f} {wrong_side / len(got):>6.3f} "
                f"{bias:>+7.2f} {bias_se:>6.2f}"
            )
    print(
        f"contradictions={contradictions / max(1, pairs):.4f} inconclusive={undecided / max(1, outcomes):.4f} "
        f"wrong_side={wrong / max(1, outcomes):.4f} bias_max={bias_max:.3f} bias_max_se={bias_max_se:.3f}"
    )


if __name__ == "__main__":
    main()
