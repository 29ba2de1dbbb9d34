"""Device maps and memory limits: bad limits are usage errors before anything is written."""

import pytest

from harness.errors import UsageError


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(device_map="auto", max_memory="cpu=1000"), "one decoder layer needs"),
        (dict(max_memory="cpu=1GiB"), "add --device-map"),
        (dict(device_map="auto", max_memory="cpu:1GiB"), "DEVICE=SIZE pairs"),
    ],
)
def test_bad_memory_limits_are_usage_errors(tiny_run, extra, message):
    with pytest.raises(UsageError, match=message):
        tiny_run(quant="rtn-w8", **extra)
    assert not tiny_run.report_dir.exists()
