"""summary.md: a verdict table fit for a CI job summary or a pull-request comment."""
from __future__ import annotations


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


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
    lines += ["| config | verdict | ppl_ratio | kld_mean | flip_rate | misgen | attn_js max | failed gates |",
              "|---|---|---|---|---|---|---|---|"]
    for c in r["configs"]:
        m = c.get("metrics") or {}
        js = m.get("attn_js")
        js_max = max(max(row) for row in js) if js and all(js) and all(
            v is not None for row in js for v in row) else None
        failed = [g for g in c.get("gates", []) if not g["passed"]]
        worst = "; ".join(f"{g['metric']} {_fmt(g['value'])} (limit {'<=' if g['op'] == 'max' else '>='} "
                          f"{_fmt(g['limit'])})" for g in failed[:3]) or (
            _md(c.get("skip_reason") or c.get("error") or "none"))
        lines.append(f"| `{_md(c['spec'])}` | {c['verdict']} | {_fmt(m.get('ppl_ratio'))} | "
                     f"{_fmt(m.get('kld_mean'))} | {_fmt(m.get('flip_rate'))} | {_fmt(m.get('misgeneration_rate'))} | "
                     f"{_fmt(js_max)} | {_md(worst)} |")
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
