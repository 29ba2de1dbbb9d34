"""RunSpec: every input of a run, resolved from command line > ini > profile default."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import UsageError
from .profiles import PROFILES
from .quant.configs import QuantConfig

DEFAULT_QUANT = "bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32"


@dataclass
class RunSpec:
    model: str = "smollm2-135m"
    revision: str | None = None
    quant: list[QuantConfig] = field(default_factory=list)
    device: str = "cpu"
    baseline_dtype: str = "fp32"
    corpus: str = "bundled"
    prompts: str = "bundled"
    bos: str = "auto"
    sink_positions: tuple[int, ...] = (0,)
    policy: str | None = None
    profile: str = "smoke"
    report_dir: str = "reports"
    compare: str = "none"
    compare_explicit: bool = False  # named by the user (a missing earlier run is then an error)
    pin: str | None = None
    signoff: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    seed: int = 0
    n_sequences: int = 16
    seq_len: int = 128
    batch_size: int = 4
    max_new_tokens: int = 16
    n_prompts: int = 48  # 0: all; else an evenly spread subset (covers every family)
    gen_batch_size: int = 16
    gptq_samples: int = 32
    threads: int | None = None
    unavailable: str | None = None  # why nothing can run here (e.g. CUDA asked, none present)
    lockstep: str = "auto"  # auto | on | off: hold all quantized models, baseline forward once per batch
    protect_sink: bool = False  # add a sink-protected variant of every configuration (sink_recovery)
    long_new_tokens: int = 64  # long generations: tokens per prompt (EOS suppressed until then)
    long_n_prompts: int = 4  # long generations: prompts (those marked long in the prompt file)
    n_probe_sequences: int = 8  # corpus sequences for perturbation_spread and bos_ablation
    n_stability_prompts: int = 12  # reference prompts whose variants are generated (0: all)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["quant"] = [q.spec for q in self.quant]
        d["sink_positions"] = list(self.sink_positions)
        return d


def resolve_device(device: str) -> str:
    if device in ("auto", "", None):
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
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
        raise UsageError(f"--sink-positions takes comma-separated token positions such as 0 or 0,1 "
                         f"(got '{text}')") from None
    if not pos or pos[0] < 0:
        raise UsageError(f"--sink-positions needs non-negative positions (got '{text}')")
    return pos


def build_spec(values: dict) -> RunSpec:
    """RunSpec from option values (None = not given); profile fills what is missing."""
    from .quant.registry import expand_shorthand, parse_specs

    profile = values.get("profile") or "smoke"
    if profile not in PROFILES:
        raise UsageError(f"unknown --profile '{profile}'; valid: {', '.join(PROFILES)}")
    base = dict(PROFILES[profile])
    spec = RunSpec(profile=profile)
    for k, v in base.items():
        setattr(spec, k, v)
    for k, v in values.items():
        if v is None or k in ("quant", "bits", "methods", "sink_positions", "device", "profile"):
            continue
        if not hasattr(spec, k):
            raise UsageError(f"unknown setting '{k}'")
        setattr(spec, k, v)
    if values.get("quant") and (values.get("bits") or values.get("methods")):
        raise UsageError("give either --quant or --bits/--methods, not both")
    if values.get("bits") or values.get("methods"):
        if not (values.get("bits") and values.get("methods")):
            raise UsageError("--bits and --methods go together, e.g. --bits 8,4 --methods bnb,gptq")
        spec.quant = expand_shorthand(values["bits"], values["methods"])
    else:
        spec.quant = parse_specs(values.get("quant") or DEFAULT_QUANT)
    spec.device = resolve_device(values.get("device") or "auto")
    if spec.device.startswith("cuda") and not _cuda_available():
        msg = (f"--device {spec.device} asks for CUDA but torch sees no GPU on this machine; "
               f"run on a CUDA machine or use --device cpu")
        if spec.signoff:
            raise UsageError(msg)
        spec.unavailable = msg  # every configuration is skipped with this reason
    spec.compare_explicit = values.get("compare") is not None
    if values.get("sink_positions") is not None:
        spec.sink_positions = parse_sink_positions(values["sink_positions"])
    if spec.lockstep not in ("auto", "on", "off"):
        raise UsageError(f"unknown --lockstep '{spec.lockstep}'; valid: auto, on, off")
    if spec.bos not in ("auto", "always", "never"):
        raise UsageError(f"unknown --bos '{spec.bos}'; valid: auto, always, never")
    if values.get("baseline_dtype") is None:
        spec.baseline_dtype = "fp16" if spec.device.startswith("cuda") else "fp32"
    if spec.baseline_dtype not in ("fp16", "bf16", "fp32"):
        raise UsageError(f"unknown --baseline-dtype '{spec.baseline_dtype}'; valid: fp16, bf16, fp32")
    for k in ("n_sequences", "seq_len", "batch_size", "max_new_tokens", "gen_batch_size", "long_new_tokens",
              "long_n_prompts", "n_probe_sequences"):
        if int(getattr(spec, k)) < 1:
            raise UsageError(f"{k} must be at least 1")
    if max(spec.sink_positions) >= spec.seq_len - 1:
        raise UsageError(f"--sink-positions {spec.sink_positions} must lie before the last position "
                         f"of a sequence (seq_len {spec.seq_len})")
    return spec
