"""report.html's Task samples section: both models' choices of the worst samples, every model or task text escaped."""

from harness.report.tasks import html_section


def _results(rows, scores):
    return {"configs": [{"spec": "rtn<w4>", "metrics": {"task_scores": scores}, "evidence": {"tasks": rows}}]}


def test_worst_samples_with_both_choices_escaped():
    rows = [
        {"task": "t<1>", "id": "a-1", "correct_baseline": True, "correct_quantized": False,
         "choice_baseline": "Paris", "choice_quantized": "<script>alert(1)</script>",
         "margin_baseline": 1.5, "margin_quantized": -0.5},
        {"task": "t<1>", "id": "a-2", "correct_baseline": True, "correct_quantized": True,
         "choice_baseline": "4", "choice_quantized": "4", "margin_baseline": 2.0, "margin_quantized": 1.9},
    ]  # fmt: skip
    html = html_section(_results(rows, {"t<1>": {"samples": 2, "baseline": {"acc": 1.0}, "quantized": {"acc": 0.5}}}))
    assert "<h2>Task samples</h2>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert "t&lt;1&gt;" in html and "rtn&lt;w4&gt;" in html and "Paris" in html
    assert html.index("a-1") < html.index("a-2")  # the break first
    assert "class='flip'" in html


def test_skipped_task_and_no_tasks():
    html = html_section(_results([], {"lm": {"skipped": "lm-eval task 'lm' skipped: pip install 'quantsink[lmeval]'"}}))
    assert "skipped: pip install &#x27;quantsink[lmeval]&#x27;" in html
    assert html_section({"configs": [{"spec": "x", "metrics": {}}]}) == ""
