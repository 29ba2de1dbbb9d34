"""Models larger than one device: accelerate device maps, memory limits and where each layer went.

`--device-map auto|balanced|sequential` with `--max-memory 0=70GiB,cpu=200GiB` loads the baseline
through accelerate's dispatch (layers on GPUs, then CPU, then disk under the cache's offload
directory). Methods that rewrite weights (RTN, FP8...) quantize a full copy in CPU memory first and
are dispatched the same way afterwards: offloaded weights live on the meta device, where an
in-place rewrite would change nothing.
"""

from __future__ import annotations

import re

from harness.errors import UsageError
from harness.system.files import cache_root

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.I)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_max_memory(text: str | None) -> dict | None:
    """{0: bytes, 'cpu': bytes} from '0=20GiB,cpu=60GiB' (bytes without a unit)."""
    if not text:
        return None
    out = {}
    for item in str(text).split(","):
        dev, _, size = item.partition("=")
        dev, m = dev.strip().lower(), _SIZE.match(size)
        if not m or not (dev.isdigit() or dev in ("cpu", "disk") or re.fullmatch(r"cuda:\d+", dev)):
            raise UsageError(f"--max-memory takes DEVICE=SIZE pairs such as 0=20GiB,cpu=60GiB (got '{item.strip()}')")
        key = int(dev.split(":")[-1]) if dev[-1].isdigit() else dev
        out[key] = int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])
    return out


def check_fits_one_layer(max_memory: dict | None, layer_bytes: int) -> None:
    """A limit under which no device can hold the largest decoder layer cannot run at all."""
    if not max_memory:
        return
    room = max(v for k, v in max_memory.items() if k != "disk")
    if room < layer_bytes:
        raise UsageError(
            f"--max-memory gives at most {room} bytes to any device, but one decoder layer needs "
            f"{layer_bytes} bytes; raise the limit of at least one device above that"
        )


def load_kwargs(device_map: str, max_memory: dict | None, offload_dir) -> dict:
    """from_pretrained arguments that place a model by the device map (none: {})."""
    if device_map in (None, "none"):
        return {}
    kw = {"device_map": device_map, "offload_folder": str(offload_dir)}
    if max_memory:
        kw["max_memory"] = max_memory
    return kw


def placement_kwargs(spec) -> dict:
    """Loader kwargs of --device-map for handlers that load quantized weights themselves (bitsandbytes)."""
    if spec.device_map == "none":
        return {}
    return load_kwargs(spec.device_map, parse_max_memory(spec.max_memory), offload_dir())


def dispatch(model, device_map: str, max_memory: dict | None, offload_dir):
    """Place an already built (e.g. just quantized) model by the device map, as from_pretrained would."""
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    no_split = getattr(model, "_no_split_modules", None) or []
    mem = max_memory
    if device_map == "balanced" and max_memory:
        mem = get_balanced_memory(model, max_memory=max_memory, no_split_module_classes=no_split)
    dmap = infer_auto_device_map(model, max_memory=mem, no_split_module_classes=no_split)
    return dispatch_model(model, device_map=dmap, offload_dir=str(offload_dir))


def describe(model) -> dict | None:
    """{device: [module names, runs of decoder layers folded as layers.A-B]} of a dispatched model."""
    dmap = getattr(model, "hf_device_map", None)
    if not dmap:
        return None
    out: dict[str, list[str]] = {}
    for name, dev in dmap.items():
        out.setdefault(str(dev), []).append(name)
    return {dev: _fold(names) for dev, names in out.items()}


def _fold(names: list[str]) -> list[str]:
    """['m.layers.0', 'm.layers.1', 'm.layers.2', 'lm_head'] -> ['m.layers.0-2', 'lm_head']."""
    runs, out = {}, []
    for n in names:
        m = re.match(r"^(.*\.)(\d+)$", n)
        if m:
            runs.setdefault(m.group(1), []).append(int(m.group(2)))
        else:
            out.append(n)
    for prefix, idx in runs.items():
        idx.sort()
        start = prev = idx[0]
        for i in idx[1:] + [None]:
            if i is not None and i == prev + 1:
                prev = i
                continue
            out.append(f"{prefix}{start}" if start == prev else f"{prefix}{start}-{prev}")
            if i is not None:
                start = prev = i
    return out


def place_quantized(spec, label: str, model, result, is_baseline: bool, progress):
    """--device-map: spread a quantized model built whole in memory like the baseline (not the baseline's own
    model, which a KV-cache configuration runs on); record where its layers went in result.info."""
    hf = getattr(model, "hf_device_map", None)  # {"": device}: loaded whole on one device (GPTQ, AWQ loaders)
    if spec.device_map != "none" and not is_baseline and (not hf or set(hf) == {""}):
        progress(f"{label}: placing by device map {spec.device_map}")
        model = dispatch(model, spec.device_map, parse_max_memory(spec.max_memory), offload_dir())
    where = describe(model)
    if where:
        result.info = {**(result.info or {}), "placement": where}
    return model


def offload_dir():
    """A fresh directory for accelerate's disk offload, removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    root = cache_root() / "offload"
    root.mkdir(parents=True, exist_ok=True)
    path = tempfile.mkdtemp(prefix="run-", dir=root)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
