"""The "Deployment scenarios" section of summary.md (tables, one line of reading per configuration)
and of report.html (the same tables and one small plot per scenario).

Plotting and escaping come from harness/report/kit.py, like every report writer's; everything from a
model or tokenizer is escaped.
"""

from __future__ import annotations

import math

from harness.report.kit import COLORS, esc, md_cell, pyplot, svg

_POLICY = {"full": "full cache", "sink_window": "sink + window", "window_only": "window only"}
_STYLE = {"full": "-", "sink_window": "--", "window_only": ":"}


def _v(fig) -> float | None:
    return fig.get("value") if isinstance(fig, dict) else None


def _f(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _d(x, digits: int = 3) -> str:
    """A difference, signed."""
    return f"{x:+.{digits}g}" if isinstance(x, (int, float)) and math.isfinite(x) else _f(x)


def _ci(fig) -> str:
    if not isinstance(fig, dict) or fig.get("ci_low") is None or fig.get("ci_high") is None:
        return ""
    return f" [{fig['ci_low']:.3g}, {fig['ci_high']:.3g}]"


def _gate(c: dict, metric: str) -> str:
    g = next((g for g in c.get("gates") or [] if g["metric"] == metric), None)
    return g.get("outcome", "?") if g else "-"


def _rows(results: dict, name: str) -> list[tuple[str, dict, dict | None]]:
    """(label, record, config) for the baseline and every configuration that has the scenario."""
    b = ((results.get("baseline") or {}).get("scenarios") or {}).get(name)
    out = [("baseline", b, None)] if b else []
    for c in results.get("configs") or []:
        rec = (c.get("scenarios") or {}).get(name)
        if rec:
            out.append((c["spec"], rec, c))
    return out


def has_scenarios(results: dict) -> bool:
    return bool((results.get("baseline") or {}).get("scenarios"))


# ---- tables: (header, rows of cells) shared by markdown and html ----


def streaming_table(results) -> tuple[list[str], list[list[str]]]:
    head = [
        "model",
        "loss full",
        "loss sink+window",
        "loss window only",
        "gap sink+window",
        "collapse window only",
        "gap vs baseline (gated)",
        "collapse vs baseline",
        "KL sink+window",
        "gate",
    ]
    rows = []
    for label, r, c in _rows(results, "streaming"):
        if "skipped" in r:
            rows.append([label, r["skipped"]] + [""] * (len(head) - 2))
            continue
        vs = r.get("vs_baseline") or {}
        rows.append(
            [label]
            + [_f(_v(r.get(k))) + _ci(r.get(k)) for k in ("loss_full", "loss_sink_window", "loss_window_only")]
            + [_d(_v(r.get(k))) for k in ("gap_sink_window", "collapse_window_only")]
            + [
                _d(_v(vs.get("gap_delta"))) + _ci(vs.get("gap_delta")) if c else "-",
                _d(_v(vs.get("collapse_delta"))) + _ci(vs.get("collapse_delta")) if c else "-",
                _f(_v(r.get("kl_sink_window"))) if c else "-",
                _gate(c, "stream_gap_delta") if c else "-",
            ]
        )
    return head, rows


def packed_table(results) -> tuple[list[str], list[list[str]]]:
    head = [
        "model",
        "sub-scenario",
        "loss per document",
        "start mass per document",
        "secondary-sink rate per document",
        "mass on position 0 per document",
        "loss shift per document",
    ]
    rows = []
    for label, r, c in _rows(results, "packed"):
        if "skipped" in r:
            rows.append([label, r["skipped"]] + [""] * (len(head) - 2))
            continue
        for sub, s in (r.get("subs") or {}).items():
            if "skipped" in s:
                rows.append([label, sub, s["skipped"], "", "", "", ""])
                continue
            docs = s.get("docs") or []
            col = lambda k, docs=docs: " / ".join(_f(_v(d.get(k)), 3) for d in docs)  # noqa: E731
            rows.append(
                [
                    label,
                    sub,
                    col("loss"),
                    col("start_mass"),
                    col("start_rate"),
                    col("zero_mass"),
                    " / ".join(_d(_v(d.get("loss_shift"))) for d in docs) if c else "-",
                ]
            )
    return head, rows


def bos_table(results) -> tuple[list[str], list[list[str]]]:
    head = [
        "model",
        "loss BOS always",
        "loss BOS never",
        "auto (tokenizer)",
        "removal (never - always)",
        "sink_rate always",
        "sink_rate never",
        "removal vs baseline (gated)",
        "gate",
    ]
    rows = []
    for label, r, c in _rows(results, "bos"):
        if "skipped" in r:
            rows.append([label, r["skipped"]] + [""] * (len(head) - 2))
            continue
        vs = (r.get("vs_baseline") or {}).get("removal_delta")
        rows.append(
            [
                label,
                _f(_v((r.get("always") or {}).get("loss"))) + _ci((r.get("always") or {}).get("loss")),
                _f(_v((r.get("never") or {}).get("loss"))) + _ci((r.get("never") or {}).get("loss")),
                f"= {(r.get('auto') or {}).get('same_as', '?')}",
                _d(_v(r.get("removal"))) + _ci(r.get("removal")),
                _f(_v((r.get("always") or {}).get("sink_rate")), 3),
                _f(_v((r.get("never") or {}).get("sink_rate")), 3),
                (_d(_v(vs)) + _ci(vs)) if c else "-",
                _gate(c, "bos_removal_delta") if c else "-",
            ]
        )
    return head, rows


def reading(c: dict) -> str:
    """One line per configuration: what each scenario says about it."""
    sc = c.get("scenarios") or {}
    parts = []
    st = sc.get("streaming") or {}
    if "vs_baseline" in st:
        g, k = st["vs_baseline"].get("gap_delta"), st["vs_baseline"].get("collapse_delta")
        parts.append(
            f"streaming (sink + window) costs {_d(_v(g))} nats{_ci(g)} more than it costs the baseline "
            f"({_gate(c, 'stream_gap_delta')}); without the sink it collapses by {_d(_v(k))} nats more"
        )
    pk = ((sc.get("packed") or {}).get("subs") or {}).get("eos") or {}
    if pk.get("docs"):
        shifts = [_v(d.get("loss_shift")) for d in pk["docs"]]
        parts.append(
            "packed (EOS): loss shift per document "
            + " / ".join(_d(x) for x in shifts)
            + f" ({_gate(c, 'packed_doc_loss_delta')}, sink rate at starts {_gate(c, 'packed_start_rate_delta')})"
        )
    bo = sc.get("bos") or {}
    if "vs_baseline" in bo:
        d = bo["vs_baseline"].get("removal_delta")
        parts.append(
            f"removing BOS costs {_d(_v(d))} nats{_ci(d)} more than for the baseline ({_gate(c, 'bos_removal_delta')})"
        )
    for name, rec in sc.items():
        if isinstance(rec, dict) and "skipped" in rec:
            parts.append(f"{name}: {rec['skipped']}")
    return "; ".join(parts)


# ---- summary.md ----


def markdown(results: dict) -> list[str]:
    if not has_scenarios(results):
        return []
    out = [
        "",
        "## Deployment scenarios",
        "",
        "Figures with 95% intervals over resampled corpus documents; plots in [report.html](report.html#scenarios).",
    ]
    for title, fn in (
        ("Streaming (loss in nats over positions past the window)", streaming_table),
        ("Packed documents (per document position 1 / 2 / ...)", packed_table),
        ("BOS policy", bos_table),
    ):
        head, rows = fn(results)
        if not rows:
            continue
        out += ["", f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(md_cell(x) for x in row) + " |" for row in rows]
    lines = [(c["spec"], reading(c)) for c in results.get("configs") or []]
    out += [""] + [f"- `{md_cell(s)}`: {md_cell(t)}" for s, t in lines if t]
    return out


# ---- report.html ----


def _html_row(row) -> str:
    """A table row; a note followed by empty cells (a skipped record's reason) spans them, so a long reason
    does not widen one figure column and squeeze the table."""
    n = len(row)
    while n > 1 and row[n - 1] == "":
        n -= 1
    cells = [f"<td>{esc(str(x))}</td>" for x in row[: n - 1]]
    span = len(row) - n + 1
    last = esc(str(row[n - 1]))
    cells.append(f"<td colspan={span} class=skipped>{last}</td>" if span > 1 else f"<td>{last}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _html_table(head, rows) -> str:
    return (
        "<table><tr>"
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr>"
        + "".join(_html_row(row) for row in rows)
        + "</table>"
    )


def _streaming_plot(results, plt) -> str:
    rows = _rows(results, "streaming")
    if not any("curve" in r for _, r, _ in rows):
        return ""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    for k, (label, r, _) in enumerate(rows):
        cv = r.get("curve") or {}
        w = cv.get("bin_width", 1)
        for p, style in _STYLE.items():
            ys = cv.get(p)
            if ys:
                ax.plot(
                    [(i + 0.5) * w for i in range(len(ys))],
                    ys,
                    style,
                    lw=1.2,
                    color="k" if label == "baseline" else COLORS[(k - 1) % len(COLORS)],
                    label=f"{label}: {_POLICY[p]}",
                )
    w = (
        (((results.get("baseline") or {}).get("scenarios") or {}).get("streaming") or {})
        .get("settings", {})
        .get("window")
    )
    if w:
        ax.axvline(w, color="#888", lw=0.8, ls="-.")  # eviction begins
    ax.set_xlabel("position (dash-dot: the window fills)")
    ax.set_ylabel("NLL (nats), mean per bin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=3)
    return svg(fig)


def _packed_plot(results, plt) -> str:
    rows = [(label, r) for label, r, _ in _rows(results, "packed") if "subs" in r]
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    for k, (label, r) in enumerate(rows):
        for sub, style in (("eos", "-o"), ("eos_masked", "--s"), ("none", ":^")):
            docs = ((r["subs"].get(sub) or {}).get("docs")) or []
            if docs:
                ax.plot(
                    range(1, len(docs) + 1),
                    [_v(d.get("start_mass")) for d in docs],
                    style,
                    ms=3,
                    lw=1.2,
                    color="k" if label == "baseline" else COLORS[(k - 1) % len(COLORS)],
                    label=f"{label}: {sub}",
                )
    ax.locator_params(axis="x", integer=True)
    ax.set_xlabel("document position in the packed sequence")
    ax.set_ylabel("attention on the document's start")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=3)
    return svg(fig)


def _bos_plot(results, plt) -> str:
    """Loss increase when BOS is removed (never - always) per model, with its 95% interval."""
    rows = [(label, r["removal"]) for label, r, _ in _rows(results, "bos") if isinstance(r.get("removal"), dict)]
    if not rows:
        return ""
    fig, ax = plt.subplots(figsize=(7.5, 2.4))
    for k, (label, f) in enumerate(rows):
        v = _v(f)
        err = [[v - f["ci_low"]], [f["ci_high"] - v]] if v is not None and f.get("ci_low") is not None else None
        ax.bar(
            k,
            math.nan if v is None else v,
            0.6,
            yerr=err,
            capsize=3,
            color="k" if label == "baseline" else COLORS[(k - 1) % len(COLORS)],
        )
    ax.axhline(0, color="#888", lw=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([label for label, _ in rows], fontsize=7)
    ax.set_ylabel("loss without BOS - with (nats)")
    ax.grid(alpha=0.3, axis="y")
    return svg(fig)


def html_section(results: dict) -> str:
    """The report.html section (empty when the run measured no scenario)."""
    if not has_scenarios(results):
        return ""
    parts = ["<h2 id=scenarios>Deployment scenarios</h2>"]
    for title, fn, plot in (
        ("Streaming with KV eviction", streaming_table, _streaming_plot),
        ("Packed documents", packed_table, _packed_plot),
        ("BOS policy", bos_table, _bos_plot),
    ):
        head, rows = fn(results)
        if rows:
            parts += [
                f"<h3>{esc(title)}</h3>",
                _html_table(head, rows),
                f"<div class=plot>{plot(results, pyplot())}</div>",
            ]
    lines = [(c["spec"], reading(c)) for c in results.get("configs") or []]
    parts.append("<ul>" + "".join(f"<li><b>{esc(s)}</b>: {esc(t)}</li>" for s, t in lines if t) + "</ul>")
    return "".join(parts)
