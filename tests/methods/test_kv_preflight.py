"""Issue 23 item 5: a KV-cache spec whose group cannot divide the model's KV width is a usage error before any
model loads, through both entry points, and leaves no run behind."""

import subprocess
import sys

import pytest

from harness.errors import UsageError


@pytest.mark.parametrize("quant", ["kv-quanto-w4", "rtn-w2g16-keep:layers.1.mlp.down_proj+kv-quanto-w4"])
def test_kv_group_that_cannot_divide_the_kv_width_is_a_usage_error_first(tiny_run, quant):
    with pytest.raises(UsageError, match=r"group 64 does not divide KV heads x head size = 32 .*kv-quanto-w4g32"):
        tiny_run(quant=quant)
    assert not tiny_run.report_dir.exists()


def test_kv_preflight_through_the_command_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "harness", "--model", "tiny-llama", "--quant", "kv-quanto-w4"]
        + ["--report-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 4, out.stderr[-1500:]
    lines = [ln for ln in out.stderr.splitlines() if "does not divide" in ln]
    assert len(lines) == 1 and "kv-quanto-w4g32" in lines[0]
    assert not (tmp_path / "r").exists()
