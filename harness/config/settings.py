"""Every setting of a run declared once: flag, ini name, type, choices, check, help and default.

The pytest option group, `python -m harness`'s argparse, `RunSpec` and the pytest header are all
generated from SETTINGS; profiles are declared as changes over a parent profile.
Command line beats ini beats the profile's default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from harness.errors import UsageError, did_you_mean

DEFAULT_QUANT = "bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32"


ROLES = ("baseline", "measuring", "run")


@dataclass(frozen=True)
class Setting:
    """One option. `role` says what a change of it changes, so no setting escapes the run's identity:
    baseline: the baseline's passes and generations (and so every measurement); measuring: a configuration's
    measurement but not the baseline's side; run: which runs happen and how they are judged or shown
    (a cached measurement stays valid under it). config/identity.py derives every key from it."""

    name: str  # RunSpec field
    role: str
    help: str
    default: Any = None  # the root profile's value
    type: str = "str"  # str | int | bool
    choices: tuple[str, ...] | None = None
    minimum: int | None = None  # for int settings
    flag: str = ""  # command-line flag; default --<name with dashes>
    metavar: str | None = None
    stated_default: str | None = None  # how help states a default that is resolved later
    const: Any = None  # the value of the bare flag (the flag then takes an optional value)

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"setting {self.name}: role {self.role!r} is not one of {ROLES}")

    @property
    def meta(self) -> str:
        """The value's name in help: given, the choices, or NAME."""
        return self.metavar or ("|".join(self.choices) if self.choices else self.name.upper())

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "qs_" + self.name

    def convert(self, value):
        """A command-line, ini or API value as this setting's type; UsageError naming the flag."""
        if value is None:
            return None
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise UsageError(f"{self.option} takes true or false (got '{value}')")
        if self.type == "float":
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise UsageError(f"{self.option} takes a number such as 0.1 (got '{value}')") from None
            if not 0 < v <= 1:
                raise UsageError(
                    f"{self.option} is a share of the quantized parameters, above 0 and at most 1 "
                    f"(got {value}), e.g. 0.1 for 10%"
                )
            return v
        if self.type == "int":
            try:
                v = int(value)
            except (TypeError, ValueError):
                raise UsageError(f"{self.option} takes an integer (got '{value}')") from None
            if self.minimum is not None and v < self.minimum:
                raise UsageError(f"{self.option} must be at least {self.minimum} (got {v})")
            return v
        v = str(value)
        if self.choices is not None and v not in self.choices:
            raise UsageError(
                f"unknown {self.option} '{v}'{did_you_mean(v, self.choices)}; valid: {', '.join(self.choices)}"
            )
        return v

    def help_text(self) -> str:
        """Help with its stated default: one value, or the value per profile when profiles differ."""
        if self.stated_default is not None:
            return f"{self.help} (default: {self.stated_default})"
        per = {p: profile_values(p).get(self.name) for p in PROFILES}
        if len(set(map(repr, per.values()))) > 1:
            return f"{self.help} (default: " + ", ".join(f"{p} {_show(v)}" for p, v in per.items()) + ")"
        if self.default is None or self.type == "bool" and not self.default:
            return self.help
        return f"{self.help} (default: {_show(self.default)})"


def _show(v) -> str:
    return "on" if v is True else "off" if v is False else str(v)


# A table, one declaration per setting: kept in this compact form rather than the formatter's one argument per line.
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("model", "baseline",
            "Hub id, local directory, .gguf file or alias (smollm2-135m, tiny-<arch>)", "smollm2-135m",
            metavar="ID"),
    Setting("revision", "baseline", "Hub revision / commit", stated_default="main", metavar="REV"),
    Setting("quant", "run", "comma-separated quantization specs, e.g. bnb-int8,gptq-w4g128,rtn-w3g32",
            stated_default=DEFAULT_QUANT, metavar="SPEC,..."),
    Setting("bits", "run", "shorthand with --methods: bit-widths, e.g. 8,4", metavar="B,..."),
    Setting("methods", "run", "shorthand with --bits: methods, e.g. bnb,gptq,rtn", metavar="M,..."),
    Setting("bit_class", "run", "policy class for configurations whose bit width cannot be read",
            choices=("8", "6", "5", "4", "3", "2")),
    Setting("device", "baseline", "where models run: auto, cpu, cuda or cuda:N", "auto"),
    Setting("device_map", "run",
            "spread the baseline and each quantized model over devices (accelerate): auto, balanced "
            "or sequential; with --max-memory, what does not fit is offloaded to CPU, then disk", "none",
            choices=("none", "auto", "balanced", "sequential")),
    Setting("max_memory", "run",
            "per-device limits for --device-map, e.g. 0=70GiB,1=70GiB,cpu=200GiB", metavar="DEV=SIZE,..."),
    Setting("ray_address", "run", "measure each configuration as its own Ray task: local (a private cluster on this "
            "machine), auto (the cluster this machine belongs to) or HOST:PORT; needs quantsink[ray]",
            metavar="ADDRESS"),
    Setting("devices", "run", "GPUs for pytest -n N: worker i measures on the i-th of these CUDA indices (cycling)",
            stated_default="every visible GPU", metavar="I,J,..."),
    Setting("baseline_dtype", "baseline", "baseline precision", choices=("fp16", "bf16", "fp32"),
            stated_default="fp16 on CUDA, fp32 on CPU"),
    Setting("corpus", "baseline",
            "text for loss and attention statistics: bundled, python-docs or PATH (.txt, .jsonl or "
            "directory)", "bundled"),
    Setting("corpus_split", "baseline",
            "how a .txt corpus file is cut into documents, the units intervals are over (docs/policy.md): auto "
            "(separator lines ---, else # headings, else blank-line sections of >= 1000 characters), none, "
            "paragraphs, headings, or a separator line of your own", "auto", metavar="RULE"),
    Setting("prompts", "baseline", "generation prompts: bundled or PATH (.jsonl)", "bundled"),
    Setting("bos", "baseline",
            "start sequences with the tokenizer's BOS: auto follows the tokenizer's own rule", "auto",
            choices=("auto", "always", "never")),
    Setting("sink_positions", "baseline", "comma-separated key positions treated as sinks", "0", metavar="0[,K...]"),
    Setting("policy", "run", "gate thresholds (TOML)", stated_default="the bundled policy", metavar="PATH"),
    Setting("profile", "run", "sizes and strictness", "smoke", choices=("smoke", "nightly", "signoff")),
    Setting("report_dir", "run", "where runs are written", "reports", metavar="DIR"),
    Setting("compare", "run", "earlier run to compare with: latest, pinned, RUN_ID, PATH or none", "none"),
    Setting("mlflow", "run", "log the run to MLflow, one nested run per configuration (needs quantsink[mlflow]): "
            "the bare flag uses MLFLOW_TRACKING_URI, else a local mlruns directory in --report-dir", metavar="URI",
            const="auto"),
    Setting("pin", "run", "mark RUN_ID as the approved sign-off baseline (for --compare pinned), then exit",
            metavar="RUN_ID"),
    Setting("pin_anyway", "run", "allow pinning a run whose verdict is not pass", False, type="bool"),
    Setting("signoff", "run", "strict: a skipped or missing measurement fails the run", False, type="bool"),
    Setting("allow_pickle", "baseline", "allow pickle (*.bin) checkpoints", False, type="bool"),
    Setting("trust_remote_code", "baseline", "allow a checkpoint's own Python code", False, type="bool"),
    Setting("lockstep", "run", "measure all configurations together, running the baseline once per corpus batch "
            "(auto: when the models fit in memory)", "auto", choices=("auto", "on", "off")),
    Setting("reference", "measuring",
            "measure configurations one at a time against a stored baseline reference (built once "
            "per weights, data and settings; docs/scale.md) instead of beside the baseline model", False, type="bool"),
    Setting("reference_dir", "run", "where baseline references are stored (or one reference to use)",
            stated_default="<cache>/references", metavar="DIR"),
    Setting("protect_sink", "measuring",
            "also measure each configuration with the sink prefix's hidden states and K/V taken "
            "from the baseline (IntactKV-style) and report how much of the gap that recovers", False, type="bool"),
    Setting("no_cache", "run", "measure every configuration again, even one measured before on identical inputs "
            "(the results cache)", False, type="bool"),
    Setting("sensitivity", "run",
            "per-module sensitivity, a keep-in-high-precision recommendation measured in the same "
            "run, and a diagnosis (docs/diagnosis.md): auto (the bare flag) for failing or inconclusive "
            "configurations, all for every one", "off", choices=("off", "auto", "all"), const="auto"),
    Setting("keep_budget", "run", "largest share of the quantized parameters a recommendation may keep at baseline "
            "precision", 0.10, type="float", metavar="SHARE"),
    Setting("seed", "baseline", "seed of calibration samples and bootstrap resamples", 0, type="int", minimum=0),
    Setting("n_sequences", "baseline", "corpus sequences measured", 16, type="int", minimum=1),
    Setting("seq_len", "baseline", "tokens per corpus sequence", 128, type="int", minimum=2),
    Setting("batch_size", "baseline", "corpus sequences per forward pass", 4, type="int", minimum=1),
    Setting("max_new_tokens", "baseline", "greedy tokens generated per prompt", 16, type="int", minimum=1),
    Setting("n_prompts", "baseline", "prompts generated, an evenly spread subset (0 = all)", 96, type="int", minimum=0),
    Setting("open_prompts", "baseline",
            "open prompts (no reference answers) for the degeneration gates: bundled (52 families), none, or PATH "
            "(.jsonl)", "bundled", metavar="NAME|PATH"),
    Setting("tasks", "baseline",
            "your own tasks, paired per sample (task gates): comma-separated bundled task names (basics), plain-format "
            ".jsonl files, lm-eval task .yaml files or folders, names of tasks in --tasks-dir, or none", "none",
            metavar="SPEC,..."),
    Setting("tasks_dir", "baseline", "a folder of lm-eval task YAMLs whose tasks --tasks may name", metavar="DIR"),
    Setting("n_open_prompts", "baseline", "open prompts generated, an evenly spread subset (0 = all)", 256,
            type="int", minimum=0),
    Setting("gen_batch_size", "baseline", "prompts per generate call", 16, type="int", minimum=1),
    Setting("gptq_samples", "measuring", "calibration samples for GPTQ and AWQ", 32, type="int", minimum=1),
    Setting("long_new_tokens", "baseline", "long generations: new tokens per prompt (EOS suppressed until then)", 64,
            type="int", minimum=1),
    Setting("long_n_prompts", "baseline",
            "long generations: prompts (those marked long in the prompt file)", 4, type="int",
            minimum=1),
    Setting("n_probe_sequences", "baseline", "corpus sequences for perturbation_spread and the deployment scenarios "
            "(long streaming sequences, packed sequences, BOS policy)", 8, type="int", minimum=1),
    Setting("scenarios", "measuring",
            "deployment scenarios measured per configuration (docs/scenarios.md): comma-separated "
            "streaming, packed, bos, or none", "none", metavar="S,..."),
    Setting("stream_sinks", "measuring",
            "streaming: first tokens the KV cache keeps (StreamingLLM's attention sinks)", 4,
            type="int", minimum=1, metavar="K"),
    Setting("stream_window", "measuring",
            "streaming: most recent tokens the KV cache keeps", 256, type="int", minimum=1,
            metavar="W"),
    Setting("stream_len", "measuring",
            "streaming: tokens per long sequence (corpus documents joined when shorter)", 1024,
            type="int", minimum=16, metavar="T"),
    Setting("n_stability_prompts", "baseline", "reference prompts whose neutral variants are generated (0 = all)", 12,
            type="int", minimum=0),
    Setting("threads", "measuring", "torch threads", type="int", minimum=1, flag="--qs-threads",
            stated_default="OMP_NUM_THREADS, else every core"),
)
# fmt: on

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Profile:
    parent: str | None
    changes: dict = field(default_factory=dict)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(None),  # the settings' own defaults
    "nightly": Profile(
        "smoke",
        dict(
            corpus="python-docs",
            n_sequences=48,
            seq_len=256,
            max_new_tokens=32,
            n_prompts=0,
            n_open_prompts=0,
            tasks="basics",
            gptq_samples=64,
            compare="latest",
            long_new_tokens=256,
            long_n_prompts=8,
            n_probe_sequences=16,
            n_stability_prompts=48,
            scenarios="bos",
            stream_len=2048,
        ),
    ),
    "signoff": Profile(
        "nightly",
        dict(
            n_sequences=96,
            seq_len=512,
            batch_size=2,
            max_new_tokens=48,
            gptq_samples=128,
            compare="pinned",
            signoff=True,
            long_n_prompts=12,
            n_probe_sequences=32,
            n_stability_prompts=96,
            scenarios="streaming,packed,bos",
        ),
    ),
}


def profile_values(name: str) -> dict:
    """Every setting's value under a profile: the root defaults, then each ancestor's changes."""
    chain = []
    while name is not None:
        chain.append(PROFILES[name])
        name = PROFILES[name].parent
    out = {s.name: s.default for s in SETTINGS}
    for p in reversed(chain):
        out.update(p.changes)
    return out


def profile_changes(name: str) -> dict:
    """What a profile sets differently from the root profile."""
    root = profile_values("smoke")
    return {k: v for k, v in profile_values(name).items() if root.get(k) != v}


def _runspec_to_dict(self) -> dict:
    from dataclasses import asdict

    d = asdict(self)
    d["quant"] = [q.spec for q in self.quant]
    d["sink_positions"] = list(self.sink_positions)
    return d


_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float}
_DERIVED: tuple[tuple[str, Any, Any], ...] = (
    # quant: the parsed configurations (from --quant or --bits/--methods); sink_positions: parsed tuple
    ("compare_explicit", bool, False),  # named by the user (a missing earlier run is then an error)
    ("unavailable", Any, None),  # why nothing can run here (e.g. CUDA asked, none present)
)

RunSpec = make_dataclass(
    "RunSpec",
    [
        (
            s.name,
            Any if s.name in ("quant", "sink_positions") else _TYPES[s.type] | None,
            field(default_factory=list)
            if s.name == "quant"
            else field(default=(0,))
            if s.name == "sink_positions"
            else field(default=profile_values("smoke")[s.name]),
        )
        for s in SETTINGS
    ]
    + [(n, t, field(default=d)) for n, t, d in _DERIVED],
    namespace={
        "to_dict": _runspec_to_dict,
        "__doc__": "Every input of a run, resolved from command line > ini > profile default "
        "(fields generated from harness.config.settings.SETTINGS).",
    },
)
RunSpec.__module__ = __name__


def option_values(get: Callable[[Setting], Any]) -> dict:
    """{setting name: value or None} from a getter (pytest's options + ini, or argparse)."""
    return {s.name: get(s) for s in SETTINGS}
