"""A run fanned out over a Ray cluster: one Ray task per configuration, merged into one run.

    python -m harness --ray-address local|auto|HOST:PORT [run options]   (or the same pytest option)

Each task measures its configuration like a shard of one (harness.scale.shard.measure_share), asking Ray
for the GPUs its method needs (gpus_needed); the driver checks and merges the parts with the same
code as `python -m harness merge`, so gates, regression checks and results.json are those of a
single run. `local` starts a private cluster on this machine, bound to loopback, and stops it at the
end; a HOST:PORT that does not answer within CONNECT_TIMEOUT seconds is a usage error. Needs the
optional extra `quantsink[ray]`.
"""

from __future__ import annotations

import math
import os
import socket

from harness.engine.inputs import ModelInfo
from harness.engine.refmode import reference_for
from harness.errors import UsageError
from harness.scale.shard import check_parts, measure_share, spec_values
from harness.system.environment import ENV_VARS

CONNECT_TIMEOUT = 10.0  # seconds to reach a named Ray head before giving up
# What a Ray task inherits from the driver: quantsink's own variables (harness.system.environment) and the threads
_PASS_ENV = tuple(v.name for v in ENV_VARS if v.scope == "harness") + ("OMP_NUM_THREADS", "HF_HUB_OFFLINE")


def gpus_needed(
    n_params: int, bits: int | None, gpu_bytes: int | None, baseline_bytes_per_param: int = 2, reference: bool = False
) -> float:
    """GPUs one task asks for: its own baseline (fp16) plus the quantized copy plus 20% for activations
    (with --reference the larger of the two: the baseline only scores continuations after the quantized
    model is gone), in units of one GPU's memory (a fraction when it fits in part of one; 0 without GPUs)."""
    if not gpu_bytes:
        return 0
    base, quant = baseline_bytes_per_param, (bits or 16) / 8
    need = n_params * (max(base, quant) if reference else base + quant) * 1.2
    share = need / gpu_bytes
    return round(share, 2) if share <= 1 else float(math.ceil(share))


def _check_reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address takes local, auto or HOST:PORT (got '{address}')")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise UsageError(
            f"--ray-address {address}: no Ray head answers there within {CONNECT_TIMEOUT:.0f} s "
            f"({type(e).__name__}); start one with `ray start --head` or use --ray-address local"
        ) from None


def connect(address: str, num_cpus: int | None = None):
    """ray.init for the address; returns a function that ends what this process started."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray-address needs Ray: pip install 'quantsink[ray]'") from None
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    common = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}, ignore_reinit_error=True)
    if address == "local":
        ray.init(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1", **common)
    else:
        if address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError) as e:
            raise UsageError(
                f"--ray-address {address}: cannot join a Ray cluster ({str(e).splitlines()[0]}); "
                f"use --ray-address local for a cluster on this machine"
            ) from None
    return ray.shutdown


def _measure_remote(values: dict, index: int, count: int) -> dict:
    return measure_share(values, index, count, progress=lambda m: None)


def measure_on_ray(values: dict, quant: list, n_params: int, progress, reference: bool = False) -> list[dict]:
    """Every configuration of the run as its own Ray task; the parts, in configuration order."""
    import ray

    gpu_bytes = _gpu_bytes()
    refs = []
    for i, q in enumerate(quant):
        gpus = gpus_needed(n_params, q.bits, gpu_bytes, reference=reference)
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_measure_remote)
        refs.append(task.remote(values, i, len(quant)))
        progress(f"{q.spec}: sent to Ray ({gpus} GPU)" if gpus else f"{q.spec}: sent to Ray")
    parts = []
    for q, ref in zip(quant, refs):
        try:
            parts.append(ray.get(ref))
        except Exception as e:  # a task's crash ends the run with its reason, never silently
            raise RuntimeError(f"{q.spec}: its Ray task failed: {str(e).splitlines()[-1]}") from None
        progress(f"{q.spec}: measured on Ray")
    return parts


def _gpu_bytes() -> int | None:
    """Memory of one GPU of the cluster (the smallest Ray reports), None on a cluster without GPUs."""
    import ray

    if not ray.cluster_resources().get("GPU"):
        return None
    import torch

    return (
        min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))
        if torch.cuda.is_available()
        else 80 * 2**30
    )  # driver without a GPU: assume an 80 GiB part


def fanout_for(spec):
    """The session's fan-out: Ray when --ray-address is given, else None (measure in this process)."""
    return measure_session if spec.ray_address else None


def measure_session(session) -> list[dict]:
    """Measure every configuration of the session on Ray; the checked parts (one per configuration)."""

    spec, progress = session.spec, session.progress
    values = {**spec_values(spec), "ray_address": None, "compare": "none"}  # the driver compares
    n_params = sum(p.numel() for p in ModelInfo(session.inputs.source, spec.trust_remote_code).meta.parameters())
    if spec.reference:  # built once here, before the tasks (they find it by key under --reference-dir)
        from harness.measure.reference import root_dir

        reference_for(session.baseline)
        values["reference_dir"] = str(root_dir(spec))  # tasks on this node need not share our cache variable
    stop = connect(spec.ray_address)
    try:
        parts = measure_on_ray(values, list(spec.quant), n_params, progress, spec.reference)
    finally:
        if spec.ray_address == "local":
            stop()
    return check_parts(parts)
