"""RunSpec from option values: command line > ini > profile default, every value checked."""

from __future__ import annotations

from harness.config.settings import BY_NAME, DEFAULT_QUANT, RunSpec, profile_values
from harness.errors import UsageError, did_you_mean
from harness.methods import expand_shorthand, parse_specs
from harness.models.placement import parse_max_memory
from harness.scenarios import check as check_scenarios
from harness.scenarios import selected
from harness.system.devices import parse_devices

__all__ = ["RunSpec", "build_spec", "resolve_device", "parse_sink_positions"]


def resolve_device(device: str) -> str:
    if device in ("auto", "", None):
        return "cuda" if _cuda_available() else "cpu"
    if device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise UsageError(f"unknown --device '{device}'; valid: auto, cpu, cuda, cuda:N")


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def parse_sink_positions(text: str) -> tuple[int, ...]:
    try:
        pos = tuple(sorted({int(x) for x in str(text).split(",") if x.strip()}))
    except ValueError:
        raise UsageError(
            f"--sink-positions takes comma-separated token positions such as 0 or 0,1 (got '{text}')"
        ) from None
    if not pos or pos[0] < 0:
        raise UsageError(f"--sink-positions needs non-negative positions (got '{text}')")
    return pos


def build_spec(values: dict) -> RunSpec:
    """RunSpec from option values (None = not given); the profile fills what is missing."""

    unknown = [k for k in values if k not in BY_NAME]
    if unknown:
        raise UsageError(f"unknown setting '{unknown[0]}'{did_you_mean(unknown[0], BY_NAME)}")
    given = {k: BY_NAME[k].convert(v) for k, v in values.items() if v is not None}
    if "quant" in given and not str(given["quant"]).strip(" ,"):
        raise UsageError(
            "--quant is empty; give one or more specs such as bnb-int8,rtn-w4g32, or leave it out for "
            f"the default list ({DEFAULT_QUANT})"
        )
    if "reference_dir" in given and not given.get("reference"):
        raise UsageError("--reference-dir names where baseline references live; it needs --reference")
    profile = given.get("profile", "smoke")
    spec = RunSpec()
    for k, v in {**profile_values(profile), **given}.items():
        if k not in ("quant", "sink_positions"):
            setattr(spec, k, v)
    if given.get("quant") and (given.get("bits") or given.get("methods")):
        raise UsageError("give either --quant or --bits/--methods, not both")
    if given.get("bits") or given.get("methods"):
        if not (given.get("bits") and given.get("methods")):
            raise UsageError("--bits and --methods go together, e.g. --bits 8,4 --methods bnb,gptq")
        expand_shorthand(given["bits"], given["methods"])  # checks names and widths now
        spec.quant = []  # expanded by RunInputs.load, with a group size that fits the model's layers
    else:
        spec.quant = parse_specs(given.get("quant") or DEFAULT_QUANT)
    spec.device = resolve_device(given.get("device") or "auto")
    if spec.device.startswith("cuda") and not _cuda_available():
        msg = (
            f"--device {spec.device} asks for CUDA but torch sees no GPU on this machine; "
            f"run on a CUDA machine or use --device cpu"
        )
        if spec.signoff:
            raise UsageError(msg)
        spec.unavailable = msg  # every configuration is skipped with this reason
    if spec.devices and spec.device.startswith("cuda") and not spec.unavailable:
        import torch

        parse_devices(spec.devices, torch.cuda.device_count())  # a bad index stops the run before it starts
    if spec.max_memory:
        parse_max_memory(spec.max_memory)
        if spec.device_map == "none":
            raise UsageError("--max-memory limits a device map: add --device-map auto (or balanced, sequential)")
    spec.compare_explicit = "compare" in given
    spec.sink_positions = parse_sink_positions(given.get("sink_positions", "0"))
    if "baseline_dtype" not in given:
        spec.baseline_dtype = "fp16" if spec.device.startswith("cuda") else "fp32"

    stream_opts = [f"--{k.replace('_', '-')}" for k in ("stream_sinks", "stream_window", "stream_len") if k in given]
    if stream_opts and "streaming" not in selected(spec):
        raise UsageError(
            f"{', '.join(stream_opts)} set the streaming scenario, which this run does not measure; add "
            f"--scenarios streaming or drop {stream_opts[0]}"
        )
    if spec.reference and "scenarios" not in given and selected(spec):
        spec.scenarios = "none"  # the profile's scenarios run beside the baseline model: not in reference mode
    check_scenarios(spec)  # --scenarios and the streaming window: usage errors now
    if spec.reference:
        clash = [
            f
            for f, on in (
                ("--scenarios", bool(selected(spec))),
                ("--protect-sink", spec.protect_sink),
                ("--sensitivity", spec.sensitivity != "off"),
                ("--lockstep on", spec.lockstep == "on"),
            )
            if on
        ]
        if clash:
            raise UsageError(
                f"--reference does not cover {', '.join(clash)} (they run beside the baseline model): "
                f"drop --reference or {clash[0]}" + (" (--scenarios none)" if clash[0] == "--scenarios" else "")
            )
    if max(spec.sink_positions) >= spec.seq_len - 1:
        raise UsageError(
            f"--sink-positions {','.join(map(str, spec.sink_positions))} must lie before the last position "
            f"of a sequence (seq_len {spec.seq_len})"
        )
    return spec
