"""The code's shape: no import cycles, small modules and classes, a light package import, docs in step with
the catalogue and the results schema."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "harness"
GOLDEN = ROOT / "tests" / "golden" / "tiny_run_results.json"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every harness module a file imports, at module level or inside functions (lazy imports count)."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("harness"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names}  # `from . import x` imports module x
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {t for t in _imports(p) if t in files and t != m} for m, p in files.items()}


def _cycle(graph):
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in sorted(graph[n]):
            if state.get(t) == 1:
                return stack[stack.index(t) :] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycle_inside_harness():
    graph = _graph()
    # A package __init__ that only re-exports its own submodules is not a cycle through them.
    for pkg in [m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").exists()]:
        for m in graph:
            if m.startswith(pkg + "."):
                graph[m].discard(pkg)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_400_lines_and_no_class_over_200():
    too_big = []
    for path in PKG.rglob("*.py"):
        lines = path.read_text().splitlines()
        if len(lines) > 400:
            too_big.append(f"{path.relative_to(ROOT)} has {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 200:
                too_big.append(
                    f"{path.relative_to(ROOT)}: class {node.name} has {node.end_lineno - node.lineno + 1} lines"
                )
    assert not too_big, "; ".join(too_big)


def test_importing_the_package_imports_no_heavy_backend():
    code = (
        "import sys, harness, harness.methods, harness.metrics.catalogue, harness.config.settings, "
        "harness.gates.policy;"
        "harness.methods.methods();"
        "print(sorted(m for m in ('torch', 'transformers', 'bitsandbytes', 'gptqmodel', 'hqq', 'optimum')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_docs_metric_table_is_the_catalogue():
    from harness.metrics.catalogue import markdown_table

    text = (ROOT / "docs" / "results.md").read_text()
    m = re.search(r"<!-- metric-table:begin -->\n(.*?)\n<!-- metric-table:end -->", text, re.S)
    assert m, "docs/results.md lacks the generated metric table (python -m harness metrics --markdown)"
    assert m.group(1).strip() == markdown_table().strip(), "regenerate: python -m harness metrics --markdown"


def test_every_metric_in_results_is_catalogued_and_every_gate_view_is_gateable():
    from harness.metrics.catalogue import BY_NAME, GATE_METRICS

    r = json.loads(GOLDEN.read_text())
    for c in r["configs"]:
        assert set(c["metrics"]) <= set(BY_NAME), set(c["metrics"]) - set(BY_NAME)
        # the golden run measures no deployment scenario (--scenarios) and no task (--tasks): no view there
        assert set(c["gate_views"]) == {m for m in GATE_METRICS if BY_NAME[m].family not in ("scenario", "task")}


def test_docs_describe_every_results_field():
    """Every key a run writes is documented in docs/results.md (top level, settings, configs, metrics)."""
    docs = (ROOT / "docs" / "results.md").read_text()
    r = json.loads(GOLDEN.read_text())
    keys = set(r) | set(r["settings"]) | set(r["configs"][0]) | set(r["configs"][0]["metrics"])
    keys |= set(r["configs"][0]["gates"][0]) | {k for c in r["configs"] for v in c["gate_views"].values() for k in v}
    missing = sorted(k for k in keys if f"`{k}`" not in docs)
    assert not missing, f"document these in docs/results.md: {missing}"
    for path in ("README.md", "docs/results.md"):
        assert "shared project folder" not in (ROOT / path).read_text()
