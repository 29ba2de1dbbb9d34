"""summary.md (a verdict table fit for a CI job summary or a pull-request comment) and the
terminal verdict block that pytest and `python -m harness` both print."""
from __future__ import annotations

from .catalogue import shown


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _label(m) -> str:
    return m.name + (" (worst)" if m.shape != "scalar" else "")


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
    for c in results["configs"]:
        failed = [g["metric"] for g in c.get("gates", []) if not g["passed"]]
        why = "failed: " + ", ".join(failed) if failed else (c.get("skip_reason") or c.get("error") or "")
        lines.append(f"  {c['spec']:<22} {c['verdict']:<8} {why}".rstrip())
    if run_dir is not None:
        lines += [f"  results: {run_dir / 'results.json'}", f"  report:  {run_dir / 'report.html'}"]
    return lines


def summary_markdown(results: dict) -> str:
    r = results
    lines = [f"# quantsink: {r['verdict'].upper()}", "",
             f"Model `{_md(r['model']['id'])}` (revision {_md(r['model']['revision'])}), "
             f"profile {r['settings']['profile']}, corpus {_md(r['corpus']['name'])} "
             f"({r['corpus']['n_sequences']} x {r['corpus']['seq_len']} tokens, sha {r['corpus']['sha256'][:12]}), "
             f"prompts {r['prompts']['n']} (sha {r['prompts']['sha256'][:12]}).", ""]
    b = r.get("baseline") or {}
    if b:
        lines += [f"Baseline: loss {_fmt(b.get('loss'))}, sink_rate {_fmt(b.get('sink_rate'))} (eps 0.3), "
                  f"{_fmt(b.get('sink_rate_08'))} (eps 0.8).", ""]
    cols = shown("summary")
    lines += ["| config | verdict | " + " | ".join(_label(m) for m in cols) + " | failed gates |",
              "|---|---|" + "---|" * len(cols) + "---|"]
    for c in r["configs"]:
        failed = [g for g in c.get("gates", []) if not g["passed"]]
        worst = "; ".join(f"{g['metric']} {_fmt(g['value'])} (limit {'<=' if g['op'] == 'max' else '>='} "
                          f"{_fmt(g['limit'])})" for g in failed[:3]) or (
            _md(c.get("skip_reason") or c.get("error") or "none"))
        cells = " | ".join(_fmt(scalar(c, m.name)) for m in cols)
        lines.append(f"| `{_md(c['spec'])}` | {c['verdict']} | {cells} | {_md(worst)} |")
    lines += _recovery(r)
    lines += _comparison(r)
    return "\n".join(lines) + "\n"


def _recovery(r: dict) -> list[str]:
    """--protect-sink: share of each gap that keeping the sink prefix at full precision closes."""
    rows = [(c["spec"], (c.get("metrics") or {}).get("sink_recovery")) for c in r["configs"]]
    rows = [(s, rec) for s, rec in rows if rec and not rec.get("error")]
    if not rows:
        return []
    out = ["", "## Sink protection: gap recovered (1 - protected / plain)", "",
           "| config | loss_delta | kld_mean | misgeneration_rate |", "|---|---|---|---|"]
    for spec, rec in rows:
        cells = [f"{_fmt(rec.get(k))} ({_fmt(rec.get(k + '_plain'))} -> {_fmt(rec.get(k + '_protected'))})"
                 for k in ("loss_delta", "kld_mean", "misgeneration_rate")]
        out.append(f"| `{_md(spec)}` | " + " | ".join(cells) + " |")
    return out


def _comparison(r: dict) -> list[str]:
    """Change from the earlier run (--compare): every regression check, worst first."""
    cmp = r.get("compare") or {}
    regs = [(c["spec"], g) for c in r["configs"] for g in c.get("regressions", [])]
    if not cmp.get("run_id") or not regs:
        return ["", f"_{_md(cmp.get('note') or 'no comparison')}_"] if cmp else []
    bad = sum(not g["passed"] for _, g in regs)
    out = ["", f"## Change from run `{_md(cmp['run_id'])}`: "
               f"{f'{bad} regression(s)' if bad else 'no regression'}", "",
           "| config | metric | earlier | now | change | tolerance | result |", "|---|---|---|---|---|---|---|"]
    regs.sort(key=lambda sg: (sg[1]["passed"], -(sg[1]["worse_by"] or 0)))
    for spec, g in regs:
        e, v = g.get("earlier"), g.get("value")
        change = f"{v - e:+.4g}" if isinstance(e, float) and isinstance(v, float) else "n/a"
        out.append(f"| `{_md(spec)}` | {g['metric']} | {_fmt(e)} | {_fmt(v)} | {change} | {_md(g['tolerance'])} | "
                   f"{'pass' if g['passed'] else '**regression**'} |")
    return out
