"""The figures of report.html: per-layer sink mass, hidden-state cosine, K/V error, head heatmaps, the KL
histogram (matplotlib to inline SVG through report/kit.py)."""

from __future__ import annotations

import math

from harness.report.kit import COLORS, pyplot, svg


def _finite_grid(rows):
    import numpy as np

    a = np.array([[math.nan if v is None else v for v in row] for row in rows], dtype=float)
    return a


def measured(results):
    return [c for c in results["configs"] if c.get("metrics") and c["metrics"].get("sink_mass")]


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator  # matplotlib loads with the first plot (report/ stays light)

    return MaxNLocator(integer=True)


def _per_layer_plot(series, ylabel: str, ylim=None) -> str:
    """One line per (label, values, style dict) over layers."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    for label, values, style in series:
        ax.plot([math.nan if v is None else v for v in values], label=label, **style)
    ax.set_xlabel("layer")
    ax.xaxis.set_major_locator(_integer_ticks())  # layers are whole numbers: no 0.5 ticks
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    return svg(fig)


def sink_mass_plot(results) -> str:
    # A layer with a non-finite head plots as a gap (NaN), not as the mean of the rest.
    base = results.get("baseline") or {}
    series = (
        [("baseline", _finite_grid(base["sink_mass"]).mean(axis=1), {"color": "k", "lw": 2.2})]
        if base.get("sink_mass")
        else []
    )
    series += [
        (c["spec"], _finite_grid(c["metrics"]["sink_mass"]).mean(axis=1), {"color": COLORS[i % 8], "lw": 1.2})
        for i, c in enumerate(measured(results))
    ]
    return _per_layer_plot(series, "attention on sink (mean over heads)", (0, 1))


def hidden_cos_plot(results) -> str:
    series = [
        (
            c["spec"],
            c["metrics"].get("sink_hidden_cos") or [],
            {"color": COLORS[i % 8], "lw": 1.2, "marker": "o", "ms": 2.5},
        )
        for i, c in enumerate(measured(results))
    ]
    return _per_layer_plot(series, "cosine to baseline")


def heatmaps(results) -> str:
    """Per configuration: [layer x head] sink-mass change and attention JS divergence."""
    import numpy as np

    cs = measured(results)
    base = results.get("baseline") or {}
    if not cs or not base.get("sink_mass"):
        return ""
    plt = pyplot()
    b = _finite_grid(base["sink_mass"])
    deltas = [_finite_grid(c["metrics"]["sink_mass"]) - b for c in cs]
    jss = [_finite_grid(c["metrics"]["attn_js"]) for c in cs]
    dmax = max(float(np.nanmax(np.abs(d))) if np.isfinite(d).any() else 0 for d in deltas) or 1e-6
    jmax = max(float(np.nanmax(j)) if np.isfinite(j).any() else 0 for j in jss) or 1e-6
    fig, axes = plt.subplots(len(cs), 2, figsize=(7.5, 2.6 * len(cs)), squeeze=False)
    for row, (c, d, j) in enumerate(zip(cs, deltas, jss)):
        im = axes[row][0].imshow(d.T, aspect="auto", cmap="RdBu_r", vmin=-dmax, vmax=dmax, interpolation="nearest")
        axes[row][0].set_title(f"{c['spec']}: sink mass change", fontsize=8)
        fig.colorbar(im, ax=axes[row][0], fraction=0.04)
        im = axes[row][1].imshow(j.T, aspect="auto", cmap="viridis", vmin=0, vmax=jmax, interpolation="nearest")
        axes[row][1].set_title(f"{c['spec']}: attention JS divergence (nats)", fontsize=8)
        fig.colorbar(im, ax=axes[row][1], fraction=0.04)
        for ax in axes[row]:
            ax.set_xlabel("layer")
            ax.xaxis.set_major_locator(_integer_ticks())
            ax.set_ylabel("head")
    fig.tight_layout()
    return svg(fig)


def kl_histogram(results) -> str:
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    edges = np.linspace(-8, 1, 31)  # summarize.corpus_metrics: 30 bins of log10 KL over [-8, 1]
    for i, c in enumerate(measured(results)):
        h = c["metrics"].get("kld_histogram") or []
        if len(h) == 30:
            ax.stairs(np.asarray(h, dtype=float) / max(1, sum(h)), edges, color=COLORS[i % 8], lw=1.4, label=c["spec"])
    ax.set_xlabel("log10 KL(baseline || quantized) per token (nats)")
    ax.set_ylabel("share of tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    return svg(fig)


def kv_relerr_plot(results) -> str:
    series = [
        (
            c["spec"],
            c["metrics"].get("sink_kv_relerr") or [],
            {"color": COLORS[i % 8], "lw": 1.2, "marker": "o", "ms": 2.5},
        )
        for i, c in enumerate(measured(results))
    ]
    return _per_layer_plot(series, "sink K/V relative error")
