"""Which device each pytest-xdist worker measures on."""

import pytest


def test_xdist_workers_get_their_own_gpu():
    from harness.errors import UsageError
    from harness.system.devices import worker_device

    got = [worker_device("cuda", None, f"gw{i}", visible=4) for i in range(6)]
    assert got == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert [worker_device("cuda", "2,3", f"gw{i}", 4) for i in range(3)] == ["cuda:2", "cuda:3", "cuda:2"]
    assert worker_device("cuda:1", None, "gw3", 4) == "cuda:1"  # explicit device, no list: kept
    assert worker_device("cuda", None, None, 4) == "cuda"  # not a worker
    assert worker_device("cpu", "0,1", "gw1", 0) == "cpu"
    for bad in ("4", "x", "-1"):
        with pytest.raises(UsageError, match="--devices"):
            worker_device("cuda", bad, "gw0", 4)
