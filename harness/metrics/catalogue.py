"""The metric catalogue: every metric declared once.

Each entry says what the metric means, its unit and direction, its family, and — for metrics
computed from per-item evidence — one formula `stat(evidence, idx)` that gives both the point
value (all items) and the bootstrap interval (resampled items). Policy validation, regression
direction, summary.md and report.html columns, JUnit properties, the sink-protected variant's
fields and the metric table in docs/results.md all read this table (`python -m harness metrics`
prints it).

Evidence groups (built by summarize.py, one row per item):
  sequences  corpus sequences: nll_b/nll_q/kl/top1 [N,T-1], mass_b/mass_q/js [N,L,H], cos/kvrel [N,L]
  prompts    generation prompts: exact, div, right_base, has_ref, stable_right, stable_wrong, flip, degen, mis [n]
Every group also carries `cluster` [n]: the unit intervals resample (corpus document, prompt family).
  long       the long-generation subset, same fields as prompts
  stability  reference prompts with neutral variants: sq, sb (correctness the same on all) [n]
  gen_ppl    continuations scored by the baseline: nb, nq [n, 2] (summed NLL, tokens)
  spread     probe sequences: b, q [n] perturbation spread of baseline and quantized
  run        whole-run scalars: logit_delta_max
  streaming  long sequences (--scenarios): f_b/sw_b/wo_b, f_q/sw_q/wo_q [n] mean NLL under full cache,
             sink + window, window only (baseline _b, quantized _q)
  packed     packed sequences: nll_b/nll_q [n, D] loss per document position, start_b/start_q [n, D, L, H]
             attention on each document's start
  bos        probe sequences: al_b/nv_b/al_q/nv_q [n] loss with BOS always / never
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.metrics import readers as r
from harness.metrics import taskstats as _task
from harness.metrics.text import prompt_scores

FAMILIES = ("corpus", "sink", "attention", "generation", "behaviour", "probe", "size", "scenario", "task")
# Where results.json keeps an evidence group's per-item records (for Metric.item): a path into configs[].
STORED = {"sequences": ("evidence", "sequences"), "prompts": ("generations",)}


@dataclass(frozen=True)
class Metric:
    name: str
    meaning: str
    unit: str
    better: str | None  # "higher" | "lower" | None (information only)
    family: str
    shape: str = "scalar"  # scalar | layer | layer_head | record
    evidence: str | None = None  # evidence group the formulas read
    stat: Callable | None = None  # stat(ev, idx) -> float: the gated scalar (point and interval)
    array: Callable | None = None  # array(ev) -> per-layer / per-head values for results' metrics
    where: Callable | None = None  # where(ev, cell) -> text naming a cell (kind cells; default cell_name)
    gate: bool = False  # a policy may set a limit on it (and a regression tolerance)
    # How its 95% interval is made (metrics/stats.py): "t" the cluster jackknife t-interval of stat over clusters
    # (log scale when positive); "cells" every cell of cells(ev) [n, ...] decided (worst: max, min or abs);
    # "break" Clopper-Pearson on counts(ev) = (events, eligible); "net" Tango on counts(ev) = (worse, better,
    # n); "share" Clopper-Pearson on counts(ev) = (successes, n); "none" no interval (decided on the value)
    kind: str = "t"
    positive: bool = False  # a positive quantity: its interval is built on the log scale
    # log scale of (value + log_shift) for positive quantities whose no-change value is 0: a tenth of the bundled
    # limit (near the limit the scale is close to the log scale, whose skew correction matters there; far below
    # it the scale is nearly linear, so a head whose tiny mean rests on one document is not bounded orders of
    # magnitude above its value: metrics/stats.py t_bounds; the choice measured in bench/calibration.py)
    log_shift: float = 0.0
    cells: Callable | None = None  # cells(ev) -> [n, ...] per-item values of every cell (kind "cells")
    worst: str = "max"  # which cell is worst (kind "cells"): max, min, or abs (largest |change|)
    counts: Callable | None = None  # counts(ev) for kinds break, net and share
    min_clusters: int = 1  # fewest clusters (documents) a t or cells interval needs (fewer: "insufficient")
    strata: bool = False  # the group's clusters are fixed strata (prompt families): intervals treat items as units
    bounds: tuple[float, float] | None = None  # what its value can be (a policy limit outside is a usage error)
    in_metrics: bool = True  # its value appears in configs[].metrics (False: gate view only)
    protected: bool = False  # reported for the --protect-sink variant
    show: tuple[str, ...] = ()  # summary | loss_table | probe_table
    identity: float | None = None  # its value when the quantized model is the baseline
    min_n: int = 1  # fewest items a gate on it needs (fewer: outcome "insufficient")
    count: Callable | None = None  # count(ev) -> items the gate rests on (default: the group's items, or counts')
    premise: Callable | None = None  # premise(ev) -> why the gate cannot apply (absent in the baseline), or None
    # item(record) -> the metric's value on one stored item (a row of configs[].evidence.sequences, or a record of
    # configs[].generations for the prompt group): two runs are compared item by item through it (regression)
    item: Callable | None = None
    eligible: Callable = lambda record: True  # which stored items the metric averages (prompt metrics)
    item_change: Callable | None = None  # (earlier value, mean item change) -> change on the metric's own scale

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    @property
    def range(self) -> tuple[float, float]:
        """What the metric's value can be: `bounds`, else from its unit (a share lies in [0, 1], a ratio is positive,
        a cosine in [-1, 1])."""
        if self.bounds is not None:
            return self.bounds
        return {"share": (0.0, 1.0), "ratio": (0.0, math.inf), "cosine": (-1.0, 1.0)}.get(
            self.unit, (-math.inf, math.inf)
        )


_SEQ, _PR = "sequences", "prompts"
_DOCS = 5  # corpus documents (clusters) a corpus, sink or attention interval needs: t(4) = 2.78 at the least

# A table, one declaration per metric: kept in this compact form rather than the formatter's one argument per line.
# fmt: off
METRICS: tuple[Metric, ...] = (
    # -- corpus: loss and next-token distributions over the corpus sequences --
    Metric("loss", "mean next-token NLL of the quantized model over all corpus positions", "nats", "lower",
           "corpus", evidence=_SEQ, stat=lambda ev, i: float(ev["nll_q"][i].mean()), protected=True,
           show=("loss_table",)),
    Metric("loss_baseline", "mean next-token NLL of the baseline over the same positions", "nats", None,
           "corpus", evidence=_SEQ, stat=lambda ev, i: float(ev["nll_b"][i].mean())),
    Metric("loss_delta", "loss - loss_baseline", "nats", "lower", "corpus", evidence=_SEQ,
           stat=lambda ev, i: ev["nll_q"][i].mean() - ev["nll_b"][i].mean(), gate=True, protected=True,
           show=("loss_table",), identity=0.0, min_clusters=_DOCS, item=r.nll_delta),
    Metric("ppl_ratio", "perplexity of the quantized model over the baseline's: exp(loss_delta)", "ratio",
           "lower", "corpus", evidence=_SEQ, stat=r.ppl, gate=True, protected=True,
           show=("summary", "loss_table"), identity=1.0, positive=True, min_clusters=_DOCS, item=r.nll_delta,
           item_change=lambda earlier, d: earlier * math.expm1(d)),
    Metric("kld_mean", "mean next-token KL(baseline || quantized) over positions", "nats", "lower", "corpus",
           evidence=_SEQ, stat=lambda ev, i: ev["kl"][i].mean(), gate=True, protected=True,
           show=("summary", "loss_table"), positive=True, log_shift=0.005, min_clusters=_DOCS,
           item=lambda s: s["kl_mean"], bounds=(0.0, math.inf)),
    Metric("kld_median", "median next-token KL over positions", "nats", "lower", "corpus", evidence=_SEQ,
           stat=r.finite_or_nan(np.median), show=("loss_table",)),
    Metric("kld_p99", "99th percentile of next-token KL over positions", "nats", "lower", "corpus",
           evidence=_SEQ, stat=r.finite_or_nan(lambda kl: np.quantile(kl, 0.99)), gate=True, protected=True,
           show=("loss_table",), positive=True, log_shift=0.05, min_clusters=_DOCS, bounds=(0.0, math.inf)),
    Metric("kld_max", "largest next-token KL at any position", "nats", "lower", "corpus", evidence=_SEQ,
           stat=r.finite_or_nan(np.max), show=("loss_table",)),
    Metric("kld_histogram", "counts of log10(KL) per position in 30 bins over [-8, 1]", "count", None,
           "corpus", shape="record"),
    Metric("top1_agreement", "share of positions where both models' most likely next token agree", "share",
           "higher", "corpus", evidence=_SEQ, stat=lambda ev, i: ev["top1"][i].mean(), gate=True,
           protected=True, show=("loss_table",), identity=1.0, min_clusters=_DOCS, item=lambda s: s["top1"]),
    Metric("logit_delta_max", "largest |change| of any log-probability: 0 means nothing was quantized",
           "nats", None, "corpus", evidence="run", stat=lambda ev, i: ev["logit_delta_max"], gate=True,
           kind="none", bounds=(0.0, math.inf)),
    # -- sink: the first token's attention share, hidden state, K/V and massive activations --
    Metric("sink_mass", "[l][h] mean over query rows t > max(S) of the attention on the sink positions S",
           "share", None, "sink", shape="layer_head", evidence=_SEQ,
           array=lambda ev: ev["mass_q"].mean(0)),
    Metric("sink_rate", "share of (layer, head) with sink_mass > 0.3 (Gu et al.)", "share", None, "sink",
           evidence=_SEQ, stat=lambda ev, i: r.rate(ev["mass_q"][i].mean(0), 0.3), protected=True,
           show=("loss_table",)),
    Metric("sink_rate_08", "share of (layer, head) with sink_mass > 0.8 (Barbero et al.)", "share", None,
           "sink", evidence=_SEQ, stat=lambda ev, i: r.rate(ev["mass_q"][i].mean(0), 0.8),
           show=("loss_table",)),
    Metric("sink_rate_delta", "|sink_rate quantized - sink_rate baseline| (eps 0.3)", "share", "lower", "sink",
           evidence=_SEQ, stat=lambda ev, i: abs(r.rate(ev["mass_q"][i].mean(0), .3)
                                                 - r.rate(ev["mass_b"][i].mean(0), .3)),
           gate=True, in_metrics=False, premise=r.no_sink, min_clusters=_DOCS),
    Metric("sink_mass_shift", "largest |change| of sink_mass over (layer, head); gated over every head", "share",
           "lower", "sink", evidence=_SEQ, kind="cells", cells=lambda ev: ev["mass_q"] - ev["mass_b"], worst="abs",
           where=r.shift_where, gate=True, in_metrics=False, premise=r.no_sink, min_clusters=_DOCS),
    Metric("sink_hidden_cos", "[l] cosine of the first sink token's hidden state after layer l, quantized vs "
           "baseline; gated over every layer", "cosine", "higher", "sink", shape="layer", evidence=_SEQ,
           array=lambda ev: ev["cos"].mean(0), kind="cells", cells=lambda ev: ev["cos"], worst="min", gate=True,
           protected=True, premise=r.no_sink, min_clusters=_DOCS),
    Metric("sink_hidden_relerr", "[l] relative L2 error of the first sink token's hidden state after layer l",
           "ratio", "lower", "sink", shape="layer", evidence=_SEQ, array=lambda ev: ev["rel"].mean(0)),
    Metric("massive_ratio", "[l] max |h| at the sink over the median |h| of the other tokens (quantized; "
           "Sun et al. flag > 100)", "ratio", None, "sink", shape="layer", evidence=_SEQ,
           array=lambda ev: ev["massive_q"].mean(0)),
    Metric("sink_kv_relerr", "[l] relative L2 error of the sink's key and value as attention reads them "
           "(post-RoPE, post-KV-quantization); gated over every layer", "ratio", "lower", "sink", shape="layer",
           evidence=_SEQ, array=lambda ev: ev["kvrel"].mean(0), kind="cells", cells=lambda ev: ev["kvrel"],
           positive=True, log_shift=0.025, gate=True, protected=True, premise=r.no_sink, min_clusters=_DOCS),
    Metric("sink_key_relerr", "[l] relative L2 error of the sink's key alone", "ratio", "lower", "sink",
           shape="layer", evidence=_SEQ, array=lambda ev: ev["krel"].mean(0)),
    Metric("sink_value_relerr", "[l] relative L2 error of the sink's value alone", "ratio", "lower", "sink",
           shape="layer", evidence=_SEQ, array=lambda ev: ev["vrel"].mean(0)),
    Metric("detected_sinks", "key positions besides S that > 1/4 of all heads give > 0.3 of their attention",
           "record", None, "sink", shape="record"),
    # -- attention distributions --
    Metric("attn_js", "[l][h] mean over query rows of the Jensen-Shannon divergence between baseline and "
           "quantized attention rows (<= ln 2); gated over every head", "nats", "lower", "attention",
           shape="layer_head", evidence=_SEQ, array=lambda ev: ev["js"].mean(0), kind="cells",
           cells=lambda ev: ev["js"], positive=True, log_shift=0.002, gate=True, protected=True, show=("summary",),
           min_clusters=_DOCS, bounds=(0.0, math.log(2))),
    Metric("attn_entropy_delta", "[l] change of mean attention-row entropy, averaged over heads", "nats", None,
           "attention", shape="layer", evidence=_SEQ,
           array=lambda ev: (ev["ent_q"] - ev["ent_b"]).mean(0).mean(-1)),
    # -- generation: greedy continuations of the prompts --
    Metric("exact_match_rate", "share of prompts whose greedy continuation equals the baseline's", "share",
           "higher", "generation", evidence=_PR, stat=lambda ev, i: r.mean(ev["exact"][i]),
           show=("loss_table",), identity=1.0),
    Metric("mean_first_divergence", "mean index of the first token that differs from the baseline's", "tokens",
           "higher", "generation", evidence=_PR, stat=lambda ev, i: r.mean(ev["div"][i]), protected=True),
    Metric("flip_rate", "breaks over stable-correct prompts (baseline right on the prompt and its three neutral "
           "variants): stable-correct answered wrongly / stable-correct (fixes are counted as unflips, never "
           "subtracted)", "share", "lower", "generation", evidence=_PR, stat=r.break_rate, gate=True, protected=True,
           show=("summary", "loss_table"), identity=0.0, kind="break", counts=r.breaks, premise=r.no_correct,
           min_n=30, strata=True, item=lambda g: prompt_scores(g)["flip"],
           eligible=lambda g: g.get("stable_baseline") == "right"),
    Metric("degenerate_rate", "net degeneration over the open prompts (no reference answers): (outputs degenerate "
           "(loop, empty, replacement characters) where the baseline's is not - the reverse) / open prompts",
           "share", "lower", "generation", evidence=_PR, stat=lambda ev, i: r.mean(ev["degen"][i][~ev["has_ref"][i]]),
           gate=True, protected=True, show=("loss_table",), identity=0.0, kind="net",
           counts=lambda ev: r.net(ev["degen"][~ev["has_ref"]]), min_n=30, strata=True,
           item=lambda g: prompt_scores(g)["degen"], eligible=lambda g: not g.get("reference"), bounds=(-1.0, 1.0)),
    Metric("misgeneration_rate", "misgeneration: (prompts that break (a stable-correct answer turned wrong) or "
           "newly degenerate - prompts that stop degenerating and do not break) / prompts; fixed answers never "
           "subtract", "share", "lower", "generation", evidence=_PR, stat=lambda ev, i: r.mean(ev["mis"][i]),
           gate=True, protected=True, show=("summary", "loss_table"), identity=0.0, kind="net",
           counts=lambda ev: r.net(ev["mis"]), min_n=30, strata=True, item=lambda g: prompt_scores(g)["mis"],
           bounds=(-1.0, 1.0)),
    Metric("answer_margin_delta", "teacher-forced answers: mean over stable-correct prompts (each the mean over the "
           "prompt and its three neutral variants) of the change of the deciding token's log-probability margin "
           "over the runner-up, quantized - baseline (measure/answers.py); negative: answers nearer a flip", "nats",
           "higher", "generation", evidence="answers", stat=lambda ev, i: r.mean(ev["mq"][i] - ev["mb"][i]), gate=True,
           show=("loss_table",), identity=0.0, min_n=30, strata=True, premise=r.no_answers),
    Metric("answer_margin_baseline", "mean deciding-token margin of the baseline's correct answers", "nats", None,
           "generation", evidence="answers", stat=lambda ev, i: r.mean(ev["mb"][i])),
    Metric("answer_texts", "texts (stable-correct prompts and their variants) in the answer-margin measure", "count",
           None, "generation"),
    Metric("answer_deviations", "texts whose deciding token the quantized model would not choose (margin < 0)",
           "count", None, "generation"),
    Metric("n_prompts", "prompts generated", "count", None, "generation"),
    Metric("n_with_references", "prompts with reference answers", "count", None, "generation"),
    Metric("n_baseline_correct", "prompts the baseline answers correctly", "count", None, "generation"),
    Metric("n_quantized_correct", "prompts the quantized model answers correctly", "count", None, "generation"),
    Metric("n_stable_correct", "prompts the baseline answers correctly on the prompt and all three neutral variants",
           "count", None, "generation"),
    Metric("n_stable_wrong", "prompts the baseline answers wrongly on the prompt and all three variants", "count",
           None, "generation"),
    Metric("flips", "stable-correct prompts the quantized model answers wrongly", "count", None, "generation"),
    Metric("unflips", "stable-wrong prompts the quantized model answers correctly", "count", None, "generation"),
    Metric("n_open_prompts", "open prompts generated (no reference answers: the degeneration gates' set)", "count",
           None, "generation"),
    Metric("new_degenerate", "open prompts whose output degenerates where the baseline's does not", "count", None,
           "generation"),
    Metric("recovered_degenerate", "open prompts whose baseline output degenerates where the quantized one does not",
           "count", None, "generation"),
    Metric("degenerate_mcnemar_p", "one-sided exact McNemar p-value of new against recovered degenerations",
           "p", None, "generation"),
    # -- behaviour probes --
    Metric("stability_rate", "share of reference prompts whose correctness is the same on the prompt and its "
           "three neutral variants (quantized)", "share", "higher", "behaviour", evidence="stability",
           stat=lambda ev, i: r.mean(ev["sq"][i]), gate=True, show=("probe_table",), kind="share",
           counts=lambda ev: (int(ev["sq"].sum()), len(ev["sq"])), min_n=20, strata=True),
    Metric("stability_rate_baseline", "the same for the baseline", "share", None, "behaviour",
           evidence="stability", stat=lambda ev, i: r.mean(ev["sb"][i]), show=("probe_table",)),
    Metric("n_stability_prompts", "reference prompts in the stability probe", "count", None, "behaviour"),
    Metric("gen_ppl_ratio", "perplexity under the baseline of the quantized continuations over that of the "
           "baseline's own", "ratio", "lower", "behaviour", evidence="gen_ppl", stat=r.gen_ppl, gate=True,
           show=("probe_table",), identity=1.0, positive=True, min_n=20, strata=True),
    Metric("gen_ppl_baseline", "perplexity of the baseline's continuations under the baseline", "ratio", None,
           "behaviour"),
    Metric("gen_ppl_quantized", "perplexity of the quantized continuations under the baseline", "ratio", None,
           "behaviour"),
    Metric("n_gen_ppl_prompts", "prompts where both continuations are non-empty", "count", None, "behaviour"),
    Metric("long_degenerate_rate", "degenerate_rate (net) on the long-generation subset", "share", "lower",
           "behaviour", evidence="long", stat=lambda ev, i: r.mean(ev["degen"][i]), gate=True,
           show=("probe_table",), kind="net", counts=lambda ev: r.net(ev["degen"]), min_n=4, strata=True,
           bounds=(-1.0, 1.0)),
    Metric("long_mean_first_divergence", "mean_first_divergence on the long-generation subset", "tokens",
           "higher", "behaviour", evidence="long", stat=lambda ev, i: r.mean(ev["div"][i]), show=("probe_table",)),
    Metric("long_exact_match_rate", "exact_match_rate on the long-generation subset", "share", "higher",
           "behaviour", evidence="long", stat=lambda ev, i: r.mean(ev["exact"][i])),
    Metric("long_n_prompts", "prompts in the long-generation subset", "count", None, "behaviour"),
    Metric("long_new_tokens", "longest continuation of the long subset", "tokens", None, "behaviour"),
    Metric("long_generations", "the long subset's continuations side by side", "record", None, "behaviour",
           shape="record"),
    Metric("perturbation_spread", "relative change of later final hidden states after swapping two early "
           "tokens (Barbero et al.'s over-mixing probe), quantized over baseline", "ratio", "lower", "probe",
           evidence="spread", stat=lambda ev, i: ev["q"][i].mean() / ev["b"][i].mean(), gate=True,
           show=("probe_table",), identity=1.0, positive=True, min_clusters=_DOCS),
    Metric("perturbation_spread_baseline", "the baseline's spread", "ratio", None, "probe"),
    Metric("perturbation_spread_quantized", "the quantized model's spread", "ratio", None, "probe"),
    Metric("sink_recovery", "with --protect-sink: 1 - protected/plain for loss_delta, kld_mean, "
           "misgeneration_rate", "record", None, "probe", shape="record"),
    # -- task: the user's own tasks (--tasks), each sample paired across the two models (harness/metrics/tasks.py) --
    Metric("task_break_rate", "task samples the baseline gets right that the configuration gets wrong, over samples "
           "the baseline gets right (every --tasks task; fixes never subtract)", "share", "lower", "task",
           evidence="tasks", stat=_task.break_rate, gate=True, identity=0.0, kind="break", counts=_task.breaks,
           premise=_task.no_right, min_n=30, strata=True),
    Metric("task_acc_delta", "task accuracy of the configuration minus the baseline's over the same samples, paired "
           "(interval over task families)", "share", "higher", "task", evidence="tasks", stat=_task.acc_delta,
           gate=True, identity=0.0, min_clusters=_DOCS, bounds=(-1.0, 1.0)),
    Metric("task_margin_delta", "multiple-choice task samples: mean change of the correct choice's log-likelihood "
           "margin over the best wrong choice, configuration - baseline (interval over task families)", "nats",
           "higher", "task", evidence="tasks", stat=_task.margin_delta, gate=True, identity=0.0,
           premise=_task.no_choices, min_clusters=_DOCS),
    Metric("task_scores", "per task: each model's score as its scorer computes it (acc, acc_norm; exact_match; an "
           "lm-eval task's own metrics), samples, or why it was skipped", "record", None, "task", shape="record"),
    Metric("task_samples", "task samples compared", "count", None, "task"),
    Metric("task_breaks", "task samples the baseline gets right and the configuration wrong", "count", None, "task"),
    Metric("task_fixes", "task samples the baseline gets wrong and the configuration right", "count", None, "task"),
    # -- size: what the configuration stores (harness/methods/footprint.py) --
    Metric("bits_per_weight", "effective stored bits per weight of the decoder's Linear layers (values, scales and "
           "zero points; kept modules at baseline precision)", "bits", None, "size", show=("summary", "loss_table")),
    Metric("model_size_mb", "model size with every parameter at its stored precision", "MB", None, "size",
           show=("summary", "loss_table")),
    # -- scenario: deployment scenarios (--scenarios; harness/scenarios/); figures in configs[].scenarios --
    Metric("stream_gap_delta", "streaming: the quantized model's loss gap sink+window vs full cache, minus the "
           "baseline's (extra loss it pays for StreamingLLM-style eviction)", "nats", "lower", "scenario",
           evidence="streaming", stat=lambda ev, i: r.gap(ev, i, "sw", "f"), gate=True, identity=0.0,
           min_clusters=_DOCS),
    Metric("packed_doc_loss_delta", "packed documents (EOS-separated, no boundary mask): the quantized model's extra "
           "loss on documents 2.. of a sequence over its extra loss on the first", "nats", "lower", "scenario",
           evidence="packed", stat=r.packed_loss, gate=True, identity=0.0, min_clusters=_DOCS),
    Metric("packed_start_rate_delta", "packed documents: |secondary-sink rate at document starts 2.. quantized - "
           "baseline| (share of heads giving a start > 0.3 of their rows' attention)", "share",
           "lower", "scenario",
           evidence="packed", stat=lambda ev, i: abs(r.rate(ev["start_q"][i][:, 1:].mean((0, 1)), .3)
                                                     - r.rate(ev["start_b"][i][:, 1:].mean((0, 1)), .3)),
           gate=True, identity=0.0, min_clusters=_DOCS),
    Metric("bos_removal_delta", "BOS policy: the quantized model's loss increase when BOS is removed, minus the "
           "baseline's", "nats", "lower", "scenario", evidence="bos", stat=lambda ev, i: r.gap(ev, i, "nv", "al"),
           gate=True, identity=0.0, min_clusters=_DOCS),
)
# fmt: on

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
if len(BY_NAME) != len(METRICS):  # each metric is declared once
    raise RuntimeError(
        f"metrics declared twice: {sorted({m.name for m in METRICS if sum(x.name == m.name for x in METRICS) > 1})}"
    )
GATE_METRICS: dict[str, str] = {m.name: m.meaning for m in METRICS if m.gate}
HIGHER_IS_BETTER: frozenset[str] = frozenset(m.name for m in METRICS if m.gate and m.higher_is_better)
PROTECTED: tuple[str, ...] = tuple(m.name for m in METRICS if m.protected)


def metric_for(name: str) -> Metric | None:
    """The catalogue metric a gate or view name stands for: `task_acc_delta@arith` (one task's own gate, named
    `<metric>@<part>`) is task_acc_delta; None for a name the catalogue does not know."""
    return BY_NAME.get(name.partition("@")[0])


def family(metric: str) -> str:
    """The metric's catalogue family ("other" for a name the catalogue does not know); `<metric>@<part>` is its
    metric's."""
    m = metric_for(metric)
    return m.family if m else "other"


def shown(place: str) -> list[Metric]:
    """Metrics shown in one place of the reports, in catalogue order."""
    return [m for m in METRICS if place in m.show]


def for_evidence(group: str) -> list[Metric]:
    return [m for m in METRICS if m.evidence == group]


def markdown_table() -> str:
    """The catalogue as the markdown table of docs/results.md."""
    rows = ["| metric | family | shape | unit | better | gate | definition |", "|---|---|---|---|---|---|---|"]
    for m in METRICS:
        rows.append(
            f"| `{m.name}` | {m.family} | {m.shape} | {m.unit} | {m.better or '-'} | "
            f"{'yes' if m.gate else '-'} | {m.meaning.replace('|', '/')} |"
        )
    return "\n".join(rows)


def text_table() -> str:
    """The catalogue for a terminal (`python -m harness metrics`)."""
    w = max(len(m.name) for m in METRICS)
    lines = [f"{'metric':<{w}}  {'family':<10} {'unit':<7} {'better':<7} gate  meaning"]
    for m in METRICS:
        lines.append(
            f"{m.name:<{w}}  {m.family:<10} {m.unit:<7} {m.better or '-':<7} "
            f"{'yes ' if m.gate else '-   '}  {m.meaning}"
        )
    return "\n".join(lines)
