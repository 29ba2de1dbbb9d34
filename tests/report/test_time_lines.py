"""Where the time went: the terminal line and summary.md count only phases spent in this run."""

from harness.report.summary import time_line, time_markdown


def _results():
    return {
        "phases": {"total": 9.0, "reports": 0.5, "baseline": {"load": 1.2, "corpus pass": 3.0}},
        "configs": [
            {"spec": "bnb-int8", "phases": {"generation: prompts": 195.0}, "cache": {"run_id": "r1", "key": "k"}},
            {"spec": "rtn-w4g32", "phases": {"generation: prompts": 2.0, "quantize": 0.5}},
        ],
    }


def test_time_line_leaves_out_measurements_reused_from_the_cache():
    line = time_line(_results())
    assert line.startswith("  time: 9 s in all; slowest: ")
    assert "bnb-int8" not in line  # its 195 s were spent in run r1
    assert line.endswith(
        "baseline corpus pass 3 s, rtn-w4g32 generation: prompts 2 s, baseline load 1 s, rtn-w4g32 quantize 0 s"
    )


def test_time_markdown_sums_each_part():
    md = "\n".join(time_markdown(_results()))
    assert "Total 9.0 s (reports 0.5 s); per part: baseline 4.2 s, rtn-w4g32 2.5 s." in md
    assert "| baseline | corpus pass | 3.0 |" in md and "bnb-int8" not in md
