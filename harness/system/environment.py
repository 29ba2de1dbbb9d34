"""The process's environment: quantsink's own environment variables (declared once, here), installed package
versions, and the environment block of results.json."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from importlib import metadata

from harness import __version__


@dataclass(frozen=True)
class EnvVar:
    name: str
    meaning: str
    default: str
    scope: str = "harness"  # harness: read by the package; tooling: read by tests, scripts or CI only


# Every QS_* variable the repository reads (tests/system/test_environment.py checks none is missing).
# Run options belong in the settings table (harness/config/settings.py); these are machine or tooling switches.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "QS_CACHE_DIR",
        "root of every cache (converted models, quantized checkpoints, baseline generations, references, results)",
        "$XDG_CACHE_HOME/quantsink, else ~/.cache/quantsink",
    ),
    EnvVar(
        "QS_RESULTS_CACHE",
        "off: never reuse a configuration measured before (like --no-cache, for a whole "
        "environment; the harness's own tests set it)",
        "on",
    ),
    EnvVar("QS_GPTQ_COMPILE", "1: let GPTQModel compile its packer extension (slow first use on CPU)", "0"),
    EnvVar(
        "QS_GPTQ_KERNEL",
        "1: run GPTQ layers through GPTQModel's kernel instead of dense Linear layers holding "
        "the kernel's own dequantized weights",
        "0",
    ),
    EnvVar(
        "QS_BNB_KERNEL",
        "1: run bitsandbytes layers on the CPU through its own modules instead of dense Linear layers holding "
        "its dequantized weights (4-bit) or Int8MixedLinear, its LLM.int8 forward op for op (int8)",
        "0",
    ),
    EnvVar("QS_AWQ_KERNEL", "1: run AWQ layers through GPTQModel's kernel instead of dense Linear layers", "0"),
    EnvVar(
        "QS_GEN_VERIFY",
        "0: a configuration decodes every prompt instead of first checking the baseline's continuation in one "
        "teacher-forced pass (rows it proves are not generated; measure/generation.py)",
        "1",
    ),
    EnvVar("QS_MEASURE_AS", "with -p harness.testing: SPEC=OTHER,... measures OTHER under SPEC's name", ""),
    EnvVar(
        "QS_REQUIRE_BROWSER",
        "1: the report's browser test fails instead of skipping without Chromium (CI)",
        "0",
        "tooling",
    ),
    EnvVar("QS_SCREENSHOT_OUT", "where the browser test saves its screenshot of report.html", "", "tooling"),
    EnvVar("QS_UPDATE_GOLDEN", "1: the golden test rewrites tests/golden/ instead of comparing", "0", "tooling"),
    EnvVar("QS_TORCH_VERSION", "torch version scripts/setup.sh installs (the CPU wheel)", "2.13.0", "tooling"),
    EnvVar(
        "QS_RANDOM_MODEL",
        "scripts/cuda_check.sh: directory of the random-weight model to time",
        "/tmp/llama3-8b-random",
        "tooling",
    ),
    EnvVar(
        "QS_TOKENIZER", "scripts/cuda_check.sh: tokenizer directory for the random-weight model", ".gpu/tok", "tooling"
    ),
)
BY_NAME: dict[str, EnvVar] = {v.name: v for v in ENV_VARS}


def env(name: str) -> str | None:
    """The value of a declared QS_* variable (None when unset); an undeclared name is a programming error."""
    if name not in BY_NAME:
        raise KeyError(f"{name} is not declared in harness.system.environment.ENV_VARS")
    return os.environ.get(name) or None


def package_version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    """{import name: [distribution names]}: scans every installed package, so once per process."""
    return metadata.packages_distributions()


def installed_versions(packages=()) -> dict:
    """Versions of the harness, torch, transformers and the distributions behind the given import names."""
    dists = _distributions()
    out = {"harness": __version__, "torch": package_version("torch"), "transformers": package_version("transformers")}
    for p in packages:
        for d in dists.get(p.split(".")[0], [p.split(".")[0]]):
            out[d] = package_version(d)
    return out


def environment(device: str, threads: int | None) -> dict:
    """The environment block of results.json."""
    return {
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "bitsandbytes": package_version("bitsandbytes"),
        "gptqmodel": package_version("gptqmodel"),
        "device": device,
        "threads": threads,
        "platform": platform.platform(),
    }
