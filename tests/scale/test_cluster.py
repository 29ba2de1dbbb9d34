"""Ray: the GPUs each task requests."""

import pytest


def test_gpu_request_per_task_follows_size_and_bits():
    from harness.scale.cluster import gpus_needed

    assert gpus_needed(135_000_000, 4, None) == 0  # no GPUs in the cluster
    eight_b, seventy_b, h100 = 8_000_000_000, 70_000_000_000, 80 * 2**30
    assert gpus_needed(eight_b, 4, h100) == pytest.approx(8e9 * 2.5 * 1.2 / h100, abs=0.01)  # a fraction
    assert gpus_needed(seventy_b, 4, h100) == 3.0  # 70B: fp16 baseline + 4-bit copy on three GPUs
    assert gpus_needed(seventy_b, 8, h100) > gpus_needed(seventy_b, 4, h100) - 1
