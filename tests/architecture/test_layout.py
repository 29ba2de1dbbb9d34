"""The package's stated import order (docs/architecture.md), checked on the real import graph.

Each subpackage of harness/ imports only the packages before it in LAYERS (and itself); lazy imports inside
functions count. An import sits inside a function only where it buys laziness: the importing module is light at
import time and the target loads a heavy backend. metrics/ and report/ never load torch at import time; only
plugin/ and testing.py import pytest.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "harness"

# The stated order: the package root's own modules, then each subpackage, then the entry points.
LAYERS = (
    "errors",
    "system",
    "data",
    "models",
    "methods",
    "metrics",
    "measure",
    "gates",
    "scenarios",
    "config",
    "advice",
    "history",
    "report",
    "engine",
    "scale",
    "cli",
    "plugin",
    "testing",
    "__main__",
)
# Backends that make an import slow (seconds, or GPU initialisation); pytest is not one: plugin/ loads it anyway.
HEAVY = frozenset(
    {
        "torch",
        "transformers",
        "bitsandbytes",
        "gptqmodel",
        "hqq",
        "optimum",
        "torchao",
        "accelerate",
        "ray",
        "matplotlib",
        "safetensors",
        "gguf",
        "huggingface_hub",
        "mlflow",
        "lm_eval",
        "datasets",
        "compressed_tensors",
        "tokenizers",
    }
)
TORCH_FREE = ("metrics", "report")
PYTEST_ALLOWED = ("plugin", "testing")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str  # a harness module, or a third-party top-level package name
    lazy: bool  # inside a function
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def edges_of(name: str, source: str, is_package: bool, modules) -> list[Edge]:
    """Every import of one module: harness modules (a `from pkg import mod` names the module) and third-party
    top-level packages, each marked lazy when it sits inside a function."""
    out = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    out.append(Edge(name, a.name if a.name in modules else a.name.split(".")[0], inner, child.lineno))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target in modules:
                    subs = [f"{target}.{a.name}" for a in child.names if f"{target}.{a.name}" in modules]
                    out.extend(Edge(name, t, inner, child.lineno) for t in subs or [target])
                else:
                    out.append(Edge(name, target.split(".")[0], inner, child.lineno))
            visit(child, inner)

    visit(ast.parse(source), False)
    return [e for e in out if e.target != name]


def graph(sources: dict[str, tuple[str, bool]]) -> list[Edge]:
    """Edges of {module: (source, is_package)}."""
    return [e for m, (src, pkg) in sources.items() for e in edges_of(m, src, pkg, sources)]


def real_sources() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(), p.name == "__init__.py") for p in PKG.rglob("*.py")}


def layer(module: str) -> int | None:
    """Position of a harness module's package in LAYERS (None: the package root, harness/__init__.py)."""
    parts = module.split(".")
    return None if len(parts) == 1 else LAYERS.index(parts[1])


def violations(edges: list[Edge]) -> list[str]:
    """Every broken rule of the stated order, one line each."""
    harness = {e.source for e in edges}
    top: dict[str, set[str]] = {}
    for e in edges:
        if not e.lazy:
            top.setdefault(e.source, set()).add(e.target)

    @functools.cache
    def loads(module: str) -> frozenset[str]:
        """Third-party packages a module loads at import time, through harness modules too."""
        got = set()
        for t in top.get(module, ()):
            got |= loads(t) if t in harness else {t}
        return frozenset(got)

    def heavy(module: str) -> bool:
        return bool(loads(module) & HEAVY) if module in harness else module in HEAVY

    bad = []
    for e in edges:
        if e.source == "harness":  # the package root re-exports run() from cli lazily: the facade above all
            continue
        if e.target in harness:
            ls, lt = layer(e.source), layer(e.target)
            if ls is not None and lt is not None and lt > ls:
                bad.append(f"{e.source}:{e.line} imports {e.target}, a later package in the stated order")
            if e.lazy and e.target != "harness" and not (heavy(e.target) and not heavy(e.source)):
                bad.append(
                    f"{e.source}:{e.line} imports {e.target} inside a function: import it at module top "
                    f"(lazy only for a heavy target from a light module)"
                )
        if e.target in ("pytest", "_pytest") and e.source.split(".")[1:2] not in ([p] for p in PYTEST_ALLOWED):
            bad.append(f"{e.source}:{e.line} imports pytest (only plugin/ and testing.py may)")
    for m in harness:
        if m.split(".")[1:2] in ([p] for p in TORCH_FREE) and "torch" in loads(m):
            bad.append(f"{m} loads torch at import time (metrics/ and report/ are torch-free)")
    return sorted(set(bad))


def test_every_package_is_in_the_stated_order():
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    assert packages | modules == set(LAYERS), (packages | modules) ^ set(LAYERS)


def test_imports_follow_the_stated_order():
    assert violations(graph(real_sources())) == []


def _with(extra: dict[str, str]) -> dict[str, tuple[str, bool]]:
    sources = real_sources()
    for m, line in extra.items():
        src, pkg = sources[m]
        sources[m] = (src + "\n" + line + "\n", pkg)
    return sources


def test_one_upward_import_is_caught_at_module_top_and_inside_a_function():
    up = violations(graph(_with({"harness.metrics.stats": "from harness.report import kit"})))
    line = real_sources()["harness.metrics.stats"][0].count("\n") + 2
    assert up == [f"harness.metrics.stats:{line} imports harness.report.kit, a later package in the stated order"]
    lazy = violations(graph(_with({"harness.gates.decide": "def f():\n    from harness.engine import session"})))
    assert any("harness.gates.decide" in v and "later package" in v for v in lazy), lazy


def test_a_needless_lazy_import_torch_in_metrics_and_pytest_outside_the_plugin_are_caught():
    lazy = violations(graph(_with({"harness.report.kit": "def f():\n    from harness.metrics import stats"})))
    assert any("inside a function: import it at module top" in v for v in lazy), lazy
    torch = violations(graph(_with({"harness.metrics.stats": "import torch"})))
    assert "harness.metrics.stats loads torch at import time (metrics/ and report/ are torch-free)" in torch
    pyt = violations(graph(_with({"harness.engine.session": "import pytest"})))
    assert any("imports pytest" in v for v in pyt), pyt
