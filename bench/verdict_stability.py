"""Would a smoke-sized run have reached the same gate decisions? Measured on one large run.

    python bench/verdict_stability.py REPORT_DIR/<run_id>/results.json [--subsets 6] [--seqs 16] [--prompts 48]

From the run's per-item evidence (configs[].evidence.sequences and configs[].generations) it draws
disjoint smoke-sized subsets (documents and prompt families kept whole where possible: items are
shuffled, then cut into consecutive blocks), decides every recomputable gate on each subset with the
same formulas, intervals and decision rule as a run, and reports per configuration and gate how
often two subsets give contradictory decisive outcomes (one pass, one fail) and how often a subset's
outcome is undecided (inconclusive or insufficient). Gates recomputed: loss_delta, ppl_ratio,
kld_mean, top1_agreement, sink_hidden_cos (from per-sequence values) and flip_rate,
degenerate_rate, misgeneration_rate (from per-prompt records): every gate whose catalogue formula can be computed
from the records results.json keeps (harness.metrics.evidence.stored_evidence); worst-head gates need per-head
evidence that results.json does not keep. Last line: `contradictions=<share> inconclusive=<share>`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from harness.gates.decide import evaluate_gate
from harness.gates.policy import Limit
from harness.gates.regression import stored_items
from harness.metrics.catalogue import BY_NAME, METRICS, STORED
from harness.metrics.evidence import interval, stored_evidence
from harness.metrics.views import GateView


def decide(spec: str, metric: str, limit: Limit, ev: dict, n_boot: int, seed: int) -> str:
    """The gate's outcome on one subset: the run's own formula, interval and decision rule."""
    m = BY_NAME[metric]
    n = len(ev["cluster"])
    value = float(m.stat(ev, np.arange(n)))
    ci = interval(m, ev, n, seed, n_boot)
    count = m.count(ev) if m.count is not None else n
    absent = m.premise(ev) if m.premise is not None else None
    return evaluate_gate(spec, metric, limit, GateView(value, ci, "", count, absent), "", m.min_n)["outcome"]


def recomputable(metric: str, items: list[dict]) -> bool:
    """Can the gate be recomputed from the per-item records results.json keeps (worst-head gates cannot)?"""
    m = BY_NAME[metric]
    try:
        m.stat(stored_evidence(m.evidence, items), np.arange(len(items)))
    except (KeyError, IndexError, ValueError):
        return False
    return bool(items)


def blocks(n: int, size: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[k : k + size] for k in range(0, n - size + 1, size)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--subsets", type=int, default=6, help="disjoint subsets per draw (at most what the run holds)")
    ap.add_argument("--draws", type=int, default=3, help="independent shuffles, each cut into disjoint subsets")
    ap.add_argument("--seqs", type=int, default=16, help="sequences per subset (smoke: 16)")
    ap.add_argument("--prompts", type=int, default=48, help="prompts per subset (smoke: 48)")
    ap.add_argument("--n-boot", type=int, default=500, help="resamples per interval (a run uses 2000)")
    a = ap.parse_args()
    r = json.loads(Path(a.results).read_text())
    rng = np.random.default_rng(0)
    pairs = contradictions = outcomes = undecided = 0
    print(f"{'config':<22} {'gate':<20} {'pass':>5} {'fail':>5} {'undecided':>9} {'contradict':>10}")
    for c in r["configs"]:
        limits = {g["metric"]: Limit(g["op"], g["limit"]) for g in c.get("gates", [])}
        for metric in [m.name for m in METRICS if m.name in limits and m.evidence in STORED]:
            group = BY_NAME[metric].evidence
            items, size = stored_items(c, group) or [], a.seqs if group == "sequences" else a.prompts
            if not recomputable(metric, items):
                continue
            got = []
            for d in range(a.draws):
                for k, blk in enumerate(blocks(len(items), size, rng)[: a.subsets]):
                    ev = stored_evidence(group, [items[i] for i in blk])
                    got.append(decide(c["spec"], metric, limits[metric], ev, a.n_boot, 1000 * d + k))
            if len(got) < 2:
                continue
            decisive = [o for o in got if o in ("pass", "fail")]
            n_pairs = len(got) * (len(got) - 1) // 2
            bad = sum(1 for x, y in itertools.combinations(got, 2) if {x, y} == {"pass", "fail"})
            pairs += n_pairs
            contradictions += bad
            outcomes += len(got)
            undecided += len(got) - len(decisive)
            print(
                f"{c['spec']:<22} {metric:<20} {got.count('pass'):>5} {got.count('fail'):>5} "
                f"{len(got) - len(decisive):>9} {bad / n_pairs:>10.3f}"
            )
    print(f"contradictions={contradictions / max(1, pairs):.4f} inconclusive={undecided / max(1, outcomes):.4f}")


if __name__ == "__main__":
    main()
