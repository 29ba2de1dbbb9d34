"""What every report writer shares: escaping for HTML and for markdown table cells, matplotlib set-up
and inline-SVG export, the colour cycle. Everything from a model, a prompt or a user passes through
esc (HTML) or md_cell (markdown) before it reaches a report."""

from __future__ import annotations

import html
import io
import math
import os

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def esc(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def md_cell(text) -> str:
    """Safe inside a markdown table cell: no column breaks, no line breaks, no raw HTML."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported only when a plot is drawn."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"svg.fonttype": "none", "font.size": 9, "figure.dpi": 96, "svg.hashsalt": "quantsink"}
    )  # stable ids: same run, same file
    return plt


def svg(fig) -> str:
    """The figure as inline SVG (no XML prologue, no date: same run, same file), then closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    pyplot().close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def num(v, digits=4) -> str:
    """A number as reports show it: 4 significant digits, n/a for None and non-finite values."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}g}" if isinstance(v, float) else esc(v)
