"""What to do, in summary.md and report.html: per configuration with a diagnosis or a recommendation,
the diagnosis paragraph first, then the recommendation (measured verdict, bits, size, the spec to
run, the method's own configuration), the most sensitive modules and (HTML) a per-layer bar chart
of KL gain and sink gain with the recommended modules marked.

Everything that came from a model or a user is escaped (HTML) or made table-safe (markdown).
"""

from __future__ import annotations

import math

from harness.report.kit import esc, md_cell, pyplot, svg

TOP = 5  # modules listed per configuration


def _n(v, d=3) -> str:
    return f"{v:.{d}g}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def _pct(v) -> str:
    return f"{100 * v:.0f}%" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


def advised(results) -> list[dict]:
    return [
        c
        for c in results.get("configs", [])
        if c.get("diagnosis")
        or c.get("recommendation")
        or (c.get("sensitivity") or {}).get("skipped")
        or (c.get("sensitivity") or {}).get("error")
    ]


def _closes(u: dict) -> float:
    """The share of the gap a unit's keep closes: of the distance to the gates the search aimed at when it recorded
    one, else KL plus sink."""
    if u.get("aim_share") is not None:
        return u["aim_share"]
    return (u.get("kl_share") or 0) + max(0.0, u.get("sink_share") or 0)


def top_units(c: dict, k: int = TOP) -> list[dict]:
    """The modules (then layers) whose keep closes the most of the gap, best first."""
    s = c.get("sensitivity") or {}
    units = (s.get("modules") or []) + (s.get("layers") or [])
    return sorted(units, key=lambda u: -_closes(u))[:k]


def _diag_text(d: dict) -> tuple[str, str]:
    where = f" from layer {d['layer']}" if d.get("layer") is not None else ""
    where += f" ({d['module']})" if d.get("module") else ""
    heads = d.get("heads") or []
    where += f", head{'s' if len(heads) > 1 else ''} {', '.join(map(str, heads))}" if heads else ""
    return f"Diagnosis: {d['family']}{where}.", "; ".join(d.get("evidence") or [])


def verdict_lines(c: dict) -> list[str]:
    """Indented lines under a configuration in the terminal verdict block."""
    out = [f"      diagnosis: {c['diagnosis']['summary']}"] if c.get("diagnosis") else []
    rec = c.get("recommendation")
    if rec:
        out.append(f"      recommendation: {rec['statement']}")
    return out


def _size(c: dict) -> str:
    m = c.get("metrics") or {}
    return f"{_n(m.get('bits_per_weight'))} bits per weight, {_n(m.get('model_size_mb'), 4)} MB"


def markdown(results) -> list[str]:
    """The 'What to do' section of summary.md (empty when nothing was diagnosed)."""
    cs = advised(results)
    if not cs:
        return []
    out = ["", "## What to do (diagnosis, recommendation)"]
    for c in cs:
        out += [
            "",
            f"### `{md_cell(c['spec'])}`: {md_cell(c['verdict'])}"
            + (f" (recommended for `{md_cell(c['recommended_for'])}`)" if c.get("recommended_for") else ""),
            "",
        ]
        d = c.get("diagnosis")
        if d:
            head, ev = _diag_text(d)
            out.append(
                f"**{md_cell(head)}** {md_cell(ev)}{'. ' if ev else ''}Next step: {md_cell(d.get('next_step'))}. "
                f"Size: {_size(c)}."
            )
        s = c.get("sensitivity") or {}
        if s.get("skipped") or s.get("error"):
            out += ["", f"Sensitivity not measured: {md_cell(s.get('skipped') or s.get('error'))}"]
        rec = c.get("recommendation")
        if rec:
            out += ["", f"**Recommendation:** {md_cell(rec['statement'])}."]
            if rec.get("spec"):
                out += [
                    "",
                    f"Run it: `--quant {md_cell(rec['spec'])}`"
                    + (
                        f"; {md_cell(rec['native']['library'])}: `{md_cell(rec['native']['code'])}`"
                        if rec.get("native")
                        else ""
                    ),
                ]
        units = top_units(c)
        if units:
            out += ["", "| most sensitive (kept alone) | KL gap closed | sink gap closed |", "|---|---|---|"]
            out += [
                f"| `{md_cell(u['name'])}` | {_pct(u.get('kl_share'))} | {_pct(u.get('sink_share'))} |" for u in units
            ]
            out += [
                "",
                f"Search: {md_cell(s.get('evaluations'))} calibration passes in {md_cell(s.get('seconds'))} s on "
                f"{md_cell((s.get('calibration') or {}).get('split'))}.",
            ]
    return out


def layer_chart(c: dict) -> str:
    """Per-layer bars: share of the KL gap and of the sink gap closed by keeping that layer; the layers
    holding recommended modules are marked (hatched, named in the title)."""
    s = c.get("sensitivity") or {}
    layers = s.get("layers") or []
    if not layers:
        return ""
    plt = pyplot()
    keep = (c.get("recommendation") or {}).get("keep") or []
    marked = {int(k.split(".")[1]) for k in keep}
    x = list(range(len(layers)))
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    kl = [u.get("kl_share") or 0 for u in layers]
    sk = [u.get("sink_share") or 0 for u in layers]
    for off, vals, color, label in ((-0.2, kl, "#1f77b4", "KL gap closed"), (0.2, sk, "#d62728", "sink gap closed")):
        bars = ax.bar([i + off for i in x], vals, width=0.4, color=color, label=label)
        for i, b in enumerate(bars):
            if i in marked:
                b.set_hatch("//")
                b.set_edgecolor("k")
    for i in marked:
        ax.annotate("kept", (i, max(kl[i], sk[i], 0)), ha="center", va="bottom", fontsize=7)
    step = max(1, len(layers) // 15)
    ax.set_xticks(x[::step])
    ax.set_xlabel("layer kept at baseline precision")
    ax.set_ylabel("share of the gap closed")
    ax.set_title(f"{c['spec']}: recommended: {', '.join(keep) or 'none'}", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    return svg(fig)


def html_section(results) -> str:
    """The 'What to do' section of report.html (empty when nothing was diagnosed)."""
    cs = advised(results)
    if not cs:
        return ""
    parts = ["<h2 id=advice>What to do (diagnosis, recommendation)</h2>"]
    for c in cs:
        parts.append(
            f'<section class=advice data-config="{esc(c["spec"])}" style="overflow-wrap:anywhere">'
            f"<h3>{esc(c['spec'])}: "
            f"{esc(c['verdict'])}"
            + (f" <small>(recommended for {esc(c['recommended_for'])})</small>" if c.get("recommended_for") else "")
            + "</h3>"
        )
        d = c.get("diagnosis")
        if d:
            head, ev = _diag_text(d)
            parts.append(
                f"<p class=diagnosis><b>{esc(head)}</b> {esc(ev)}{'. ' if ev else ''}"
                f"<b>Next step:</b> {esc(d.get('next_step'))}. <small>Size: {esc(_size(c))}.</small></p>"
            )
        s = c.get("sensitivity") or {}
        if s.get("skipped") or s.get("error"):
            parts.append(f"<p class=note>Sensitivity not measured: {esc(s.get('skipped') or s.get('error'))}</p>")
        rec = c.get("recommendation")
        if rec:
            parts.append(f"<p class=recommendation><b>Recommendation:</b> {esc(rec['statement'])}.")
            if rec.get("spec"):
                parts.append(f" Run it: <code>--quant {esc(rec['spec'])}</code>")
                if rec.get("native"):
                    parts.append(
                        f"<br><small>{esc(rec['native']['library'])}:</small> <code>{esc(rec['native']['code'])}</code>"
                    )
            parts.append("</p>")
        units = top_units(c)
        if units:
            keep = set((rec or {}).get("keep") or [])
            rows = "".join(
                f"<tr{' class=kept' if u['name'] in keep else ''}><td><code>{esc(u['name'])}</code>"
                f"{' (recommended)' if u['name'] in keep else ''}</td><td>{_pct(u.get('kl_share'))}</td>"
                f"<td>{_pct(u.get('sink_share'))}</td></tr>"
                for u in units
            )
            parts.append(
                "<table><tr><th>most sensitive (kept alone)</th><th>KL gap closed</th><th>sink gap closed"
                f"</th></tr>{rows}</table><div class=plot>{layer_chart(c)}</div>"
            )
        parts.append("</section>")
    return "".join(parts)
