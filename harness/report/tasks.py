"""report.html's "Task samples" section: per task each model's scores, then per configuration the worst samples
(breaks first, then the largest losses of margin) with both models' choices. Every model or task text is escaped."""

from __future__ import annotations

from harness.metrics.tasks import worst
from harness.report.kit import esc, num


def _scores(c: dict) -> str:
    rows = []
    for name, s in (c.get("metrics", {}).get("task_scores") or {}).items():
        if "skipped" in s:
            rows.append(f"<tr><td>{esc(name)}</td><td colspan=3>{esc(s['skipped'])}</td></tr>")
            continue
        for metric, b in (s.get("baseline") or {}).items():
            q = (s.get("quantized") or {}).get(metric)
            rows.append(
                f"<tr><td>{esc(name)} ({esc(s.get('samples'))} samples)</td><td>{esc(metric)}</td>"
                f"<td>{num(b)}</td><td>{num(q)}</td></tr>"
            )
    return "".join(rows)


def _margin(r: dict) -> str:
    b, q = r.get("margin_baseline"), r.get("margin_quantized")
    return "" if b is None or q is None else f"{num(b)} &rarr; {num(q)}"


def html_section(results: dict) -> str:
    """The section, or "" when no configuration has task evidence."""
    parts = []
    for c in results.get("configs") or []:
        rows = (c.get("evidence") or {}).get("tasks") or []
        scores = _scores(c)
        if not rows and not scores:
            continue
        worst_rows = "".join(
            f"<tr class='{'flip' if r['correct_baseline'] and not r['correct_quantized'] else ''}'>"
            f"<td>{esc(r['task'])}</td><td>{esc(r['id'])}</td><td><pre>{esc(r.get('choice_baseline'))}</pre>"
            f"{'right' if r['correct_baseline'] else 'wrong'}</td><td><pre>{esc(r.get('choice_quantized'))}</pre>"
            f"{'right' if r['correct_quantized'] else 'wrong'}</td><td>{_margin(r)}</td></tr>"
            for r in worst(rows)
        )
        parts.append(
            f"<details open><summary>{esc(c.get('spec'))}: {len(rows)} task samples</summary>"
            f"<table><tr><th>task</th><th>metric</th><th>baseline</th><th>quantized</th></tr>{scores}</table>"
            f"<table class=gens><tr><th>task</th><th>sample</th><th>baseline's choice</th>"
            f"<th>quantized choice</th><th>margin (nats)</th></tr>{worst_rows}</table></details>"
        )
    return "<h2>Task samples</h2>" + "".join(parts) if parts else ""
