"""Devices and cores: which device each pytest-xdist worker measures on (`pytest -n N --devices 0,1,2,3`), the
default torch thread count."""

from __future__ import annotations

import os

from harness.errors import UsageError


def parse_devices(text: str | None, visible: int) -> list[int]:
    """CUDA indices from --devices (default: every visible GPU); UsageError for a bad or absent index."""
    if not text:
        return list(range(visible))
    try:
        ids = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--devices takes comma-separated CUDA indices such as 0,1 (got '{text}')") from None
    bad = [i for i in ids if i < 0 or i >= visible]
    if not ids or bad:
        raise UsageError(
            f"--devices {text}: this machine has {visible} visible GPU(s) (indices 0..{visible - 1}); "
            f"give indices among them"
        )
    return ids


def worker_device(device: str, devices: str | None, worker_id: str | None, visible: int) -> str:
    """Worker gw<i> gets the i-th device of the list (cycling); the controller, a single process, a CPU
    run, and an explicit --device cuda:N without --devices keep the device they were given."""
    if worker_id is None or not worker_id.startswith("gw") or not device.startswith("cuda"):
        return device
    if device != "cuda" and not devices:
        return device
    ids = parse_devices(devices, visible)
    return f"cuda:{ids[int(worker_id[2:]) % len(ids)]}" if ids else device


def default_threads() -> int:
    """Thread count when neither --qs-threads nor OMP_NUM_THREADS is set.

    Measured with bench/threads.py on the 2-core CI machine (SmolLM2-135M): 2 threads ran the
    captured forward 2.6x and generation 1.5x faster than 1, so use every core.
    """
    return os.cpu_count() or 1
