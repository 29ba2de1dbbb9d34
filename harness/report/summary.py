"""summary.md (a verdict table fit for a CI job summary or a pull-request comment) and the
terminal verdict block that pytest and `python -m harness` both print."""

from __future__ import annotations

import math

from harness.metrics.catalogue import METRICS, family, metric_for, shown
from harness.report import advice as advice_report
from harness.report.kit import md_cell
from harness.report.scenarios import markdown as scenario_markdown
from harness.system.clock import slowest

# Report order of gate families: the sink gates this harness exists for come first.
FAMILY_ORDER = ("sink", "attention", "corpus", "generation", "behaviour", "probe")
_CATALOGUE_INDEX = {m.name: i for i, m in enumerate(METRICS)}
TOP_CHANGES = 5  # passing regression checks shown outside the collapsed block of summary.md


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _label(m) -> str:
    return m.name + (" (worst)" if m.shape != "scalar" else "")


def gate_order(metric: str) -> tuple:
    """Sort key for gates in reports: by family (sink, attention, corpus, ...), then catalogue order (one task's own
    gate `<metric>@<task>` right after its metric's)."""
    fam = family(metric)
    rank = FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER)
    m = metric_for(metric)
    return rank, _CATALOGUE_INDEX.get(m.name if m else metric, len(_CATALOGUE_INDEX)), metric


def gate_status(g: dict) -> str:
    """What a gate (or regression check) is shown as: "pass", "fail", or its own `outcome` when that
    is something else ("inconclusive", "insufficient", "not_applicable", ...). `passed` False is never
    shown as a pass."""
    outcome = g.get("outcome")
    if outcome is not None and outcome not in ("pass", "fail"):
        return str(outcome)
    return "fail" if outcome == "fail" or not g.get("passed") else "pass"


def not_passed(gates) -> list[dict]:
    """Every gate that failed or did not pass (a non-pass outcome), sink and attention gates first."""
    out = [g for g in gates or [] if not g.get("passed") or gate_status(g) != "pass"]
    return sorted(out, key=lambda g: gate_order(g["metric"]))


def _op(g: dict) -> str:
    return "<=" if g.get("op") == "max" else ">="


def _gate_md(g: dict) -> str:
    """One failed gate for summary.md: metric, value, 95% interval, limit (and a non-fail outcome)."""
    ci = (
        f" [{_fmt(g.get('ci_low'))}, {_fmt(g.get('ci_high'))}]"
        if g.get("ci_low") is not None and g.get("ci_high") is not None
        else ""
    )
    st = gate_status(g)
    return md_cell(
        f"{g['metric']} {_fmt(g.get('value'))}{ci} (limit {_op(g)} {_fmt(g.get('limit'))})"
        + ("" if st == "fail" else f": {st}")
    )


def _failed_cell(gates: list[dict]) -> str:
    """Every failed gate; more than three are grouped by catalogue family, one line per family."""
    if len(gates) <= 3:
        return "; ".join(_gate_md(g) for g in gates)
    groups: dict[str, list[str]] = {}
    for g in gates:  # already in family order
        groups.setdefault(family(g["metric"]), []).append(_gate_md(g))
    return "<br>".join(f"**{md_cell(fam)}** ({len(items)}): " + "; ".join(items) for fam, items in groups.items())


def phase_owners(results: dict) -> dict:
    """{owner: {phase: seconds}}: the baseline's side and each configuration measured in this run (a measurement
    reused from the results cache spent its seconds in the run that made it)."""
    return {
        "baseline": (results.get("phases") or {}).get("baseline") or {},
        **{c["spec"]: c.get("phases") or {} for c in results["configs"] if not c.get("cache")},
    }


def time_line(results: dict) -> str:
    """One line for the terminal: the run's total and its slowest phases."""
    ph = results.get("phases") or {}
    top = slowest(phase_owners(results), 4)
    if not top:
        return ""
    total = f"{ph['total']:.0f} s" if ph.get("total") is not None else "?"
    return f"  time: {total} in all; slowest: " + ", ".join(f"{o} {n} {s:.0f} s" for o, n, s in top)


def time_markdown(results: dict) -> list[str]:
    """summary.md: where the time went (the ten slowest phases and each owner's sum)."""
    owners = phase_owners(results)
    top = slowest(owners, 10)
    if not top:
        return []
    ph = results.get("phases") or {}
    out = [
        "",
        "## Where the time went",
        "",
        f"Total {ph.get('total', 0):.1f} s (reports {ph.get('reports', 0):.1f} s); per part: "
        + ", ".join(f"{md_cell(o)} {sum(v.values()):.1f} s" for o, v in owners.items() if v)
        + ".",
        "",
        "| part | phase | seconds |",
        "|---|---|---|",
    ]
    out += [f"| {md_cell(o)} | {md_cell(n)} | {s:.1f} |" for o, n, s in top]
    return out


def failed_rules(config: dict) -> list[dict]:
    """A configuration's failed custom rules (tests using the qs_result fixture)."""
    return [r for r in config.get("custom_rules") or [] if r.get("outcome") == "failed"]


def decisions_markdown(results: dict) -> list[str]:
    """summary.md: every undecided gate with what would decide it (option and value, or that none can)."""
    rows = [(c["spec"], g) for c in results["configs"] for g in not_passed(c.get("gates")) if g.get("decides")]
    if not rows:
        return []
    out = [
        "",
        "## Undecided gates: what would decide them",
        "",
        "| config | gate | outcome | what would decide it |",
        "|---|---|---|---|",
    ]
    for spec, g in rows:
        out.append(
            f"| `{md_cell(spec)}` | {md_cell(g['metric'])} | {md_cell(gate_status(g).replace('_', ' '))} | "
            f"{md_cell(g['decides'])} |"
        )
    return out


def scalar(config: dict, metric: str):
    """A configuration's scalar for a metric: its gate view (worst layer/head for arrays) or its value."""
    view = (config.get("gate_views") or {}).get(metric)
    if view is not None:
        return view.get("value")
    v = (config.get("metrics") or {}).get(metric)
    return v if not isinstance(v, (list, dict)) else None


def verdict_lines(results: dict, run_dir=None) -> list[str]:
    """The verdict block: a headline, one line per configuration with its failed gates, the files."""
    lines = [f"quantsink verdict: {results['verdict'].upper()}"]
    if results.get("verdict_reason"):
        lines.append(f"  {results['verdict_reason']}")
    compare = results.get("compare") or {}
    if compare.get("target") not in (None, "none"):
        lines.append(f"  compare: {compare.get('note')}")
    for c in results["configs"]:
        gates = not_passed(c.get("gates"))
        failed = [g["metric"] for g in gates if gate_status(g) == "fail"]
        undecided: dict[str, list[str]] = {}
        for g in gates:
            if gate_status(g) != "fail":
                undecided.setdefault(gate_status(g).replace("_", " "), []).append(g["metric"])
        parts = (["failed: " + ", ".join(failed)] if failed else []) + [
            f"{kind}: {', '.join(ms)}" for kind, ms in undecided.items()
        ]
        rules = failed_rules(c)
        if rules:
            parts.insert(0, "custom rules failed: " + ", ".join(r["test"].rsplit("::", 1)[-1] for r in rules))
        why = "; ".join(parts) or c.get("skip_reason") or c.get("error") or ""
        if c.get("cache"):
            why += f" (measurement reused from run {c['cache']['run_id']}: results cache)"
        lines.append(f"  {c['spec']:<22} {c['verdict'] + ':':<13} {why.strip()}".rstrip())
        lines += [f"      {r['test']}: {r['message']}".rstrip(": ") for r in rules]
        lines += [
            f"      {g['metric']} {gate_status(g).replace('_', ' ')}: {g['decides']}" for g in gates if g.get("decides")
        ]
        lines += [
            f"      {'drift' if r.get('against') == 'anchor' else 'regression'} {r['metric']} "
            f"{gate_status(r).replace('_', ' ')}: {r['detail']}"
            for r in c.get("regressions") or []
            if gate_status(r) not in ("pass", "not_applicable")
        ]
        lines += advice_report.verdict_lines(c)  # diagnosis and recommendation, when there are
    if time_line(results):
        lines.append(time_line(results))
    if run_dir is not None:
        lines += [f"  results: {run_dir / 'results.json'}", f"  report:  {run_dir / 'report.html'}"]
    return lines


def summary_markdown(results: dict) -> str:
    r = results
    size = (
        f"{r['corpus']['n_sequences']} x {r['corpus']['seq_len']} tokens"
        if r["corpus"]["n_sequences"]
        else "not measured"
    )
    lines = [f"# quantsink: {r['verdict'].upper()}", ""]
    if r.get("verdict_reason"):
        lines += [f"**{md_cell(r['verdict_reason'])}**", ""]
    lines += [
        f"Model `{md_cell(r['model']['id'])}` (revision {md_cell(r['model']['revision'])}), "
        f"profile {r['settings']['profile']}, corpus {md_cell(r['corpus']['name'])} "
        f"({size}, sha {r['corpus']['sha256'][:12]}), "
        f"prompts {r['prompts']['n']} (sha {r['prompts']['sha256'][:12]}).",
        "",
    ]
    b = r.get("baseline") or {}
    if b:
        lines += [
            f"Baseline: loss {_fmt(b.get('loss'))}, sink_rate {_fmt(b.get('sink_rate'))} (eps 0.3), "
            f"{_fmt(b.get('sink_rate_08'))} (eps 0.8).",
            "",
        ]
    cols = shown("summary")
    lines += [
        "| config | verdict | " + " | ".join(_label(m) for m in cols) + " | gates not passed |",
        "|---|---|" + "---|" * len(cols) + "---|",
    ]
    for c in r["configs"]:
        failed = not_passed(c.get("gates"))
        worst = _failed_cell(failed) if failed else md_cell(c.get("skip_reason") or c.get("error") or "none")
        if failed_rules(c):
            worst = md_cell("custom rules failed: " + ", ".join(r["test"] for r in failed_rules(c))) + "<br>" + worst
        cells = " | ".join(_fmt(scalar(c, m.name)) for m in cols)
        lines.append(f"| `{md_cell(c['spec'])}` | {md_cell(c['verdict'])} | {cells} | {worst} |")
    reused = [f"`{md_cell(c['spec'])}` (run {md_cell(c['cache']['run_id'])})" for c in r["configs"] if c.get("cache")]
    if reused:
        lines += [
            "",
            "Measurements reused from the results cache (identical weights, data, settings and "
            "library versions; gates decided again under this run's policy): " + ", ".join(reused) + ".",
        ]
    simulated = [f"`{md_cell(c['spec'])}`" for c in r["configs"] if (c.get("info") or {}).get("simulated")]
    if simulated:
        lines += [
            "",
            "Simulated, not run on a kernel: " + ", ".join(simulated) + " (float8 values through torch's "
            "float8 dtypes, matmuls in the baseline dtype; `info.executed_as` in results.json).",
        ]
    lines += decisions_markdown(r)
    lines += advice_report.markdown(r)  # --sensitivity / diagnosis: what to do, per configuration
    lines += _recovery(r)

    lines += scenario_markdown(r)
    lines += _comparison(r)
    lines += time_markdown(r)
    lines += ["", "Full report (plots, every gate with its interval, generations): [report.html](report.html)"]
    return "\n".join(lines) + "\n"


def _recovery(r: dict) -> list[str]:
    """--protect-sink: share of each gap that keeping the sink prefix at full precision closes."""
    rows = [(c["spec"], (c.get("metrics") or {}).get("sink_recovery")) for c in r["configs"]]
    rows = [(s, rec) for s, rec in rows if rec and not rec.get("error")]
    if not rows:
        return []
    out = [
        "",
        "## Sink protection: gap recovered (1 - protected / plain)",
        "",
        "| config | loss_delta | kld_mean | misgeneration_rate |",
        "|---|---|---|---|",
    ]
    for spec, rec in rows:
        cells = [
            f"{_fmt(rec.get(k))} ({_fmt(rec.get(k + '_plain'))} -> {_fmt(rec.get(k + '_protected'))})"
            for k in ("loss_delta", "kld_mean", "misgeneration_rate")
        ]
        out.append(f"| `{md_cell(spec)}` | " + " | ".join(cells) + " |")
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _relative_change(g: dict) -> float:
    """|now - earlier| / |earlier| (inf when the earlier value was 0 and it moved; -1 when not comparable)."""
    e, v = g.get("earlier"), g.get("value")
    if not (_number(e) and _number(v)):
        return -1.0
    if e == 0:
        return 0.0 if v == 0 else math.inf
    return abs(v - e) / abs(e)


def _regression_rows(regs) -> list[str]:
    out = ["| config | metric | earlier | now | change | tolerance | result |", "|---|---|---|---|---|---|---|"]
    for spec, g in regs:
        e, v = g.get("earlier"), g.get("value")
        change = "n/a"
        if _number(e) and _number(v):
            change = f"{v - e:+.4g}" + (f" ({(v - e) / abs(e):+.1%})" if e != 0 else "")
        st = gate_status(g)
        result = {"pass": "pass", "fail": "**regression**"}.get(st, f"**{md_cell(st)}**")
        out.append(
            f"| `{md_cell(spec)}` | {md_cell(g['metric'])} | {_fmt(e)} | {_fmt(v)} | {change} | "
            f"{md_cell(g['tolerance'])} | {result} |"
        )
    return out


def _comparison(r: dict) -> list[str]:
    """Change from the earlier run (--compare): regressions, then the largest changes; the other
    checks (all within tolerance) collapsed in a <details> block."""
    cmp = r.get("compare") or {}
    regs = [(c["spec"], g) for c in r["configs"] for g in c.get("regressions", [])]
    if not cmp.get("run_id") or not regs:
        return ["", f"_{md_cell(cmp.get('note') or 'no comparison')}_"] if cmp else []
    bad = [sg for sg in regs if gate_status(sg[1]) != "pass"]
    good = [sg for sg in regs if gate_status(sg[1]) == "pass"]
    bad.sort(key=lambda sg: (gate_status(sg[1]) != "fail", -(sg[1].get("worse_by") or 0)))
    good.sort(key=lambda sg: -_relative_change(sg[1]))
    top = [sg for sg in good[:TOP_CHANGES] if _relative_change(sg[1]) > 0]  # an unchanged metric is no news
    rest = good[len(top) :]
    n_fail = sum(gate_status(g) == "fail" for _, g in bad)
    shown_what = [f"{len(bad)} not passed"] if bad else []
    shown_what += [f"the {len(top)} largest changes within tolerance (relative to the earlier value)"] if top else []
    out = [
        "",
        f"## Change from run `{md_cell(cmp['run_id'])}`: {f'{n_fail} regression(s)' if n_fail else 'no regression'}",
        "",
        f"{len(regs)} checks"
        + (f"; shown first: {' and '.join(shown_what)}" if shown_what else "")
        + "; every check is also in [report.html](report.html#regression).",
        "",
    ]
    if bad or top:
        out += _regression_rows(bad + top)
    if rest:
        more = "more " if bad or top else ""
        out += [
            "",
            f"<details><summary>{len(rest)} {more}checks within tolerance</summary>",
            "",
            *_regression_rows(rest),
            "",
            "</details>",
        ]
    return out
