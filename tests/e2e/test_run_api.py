"""Whole runs through the Python API (harness.cli.run): deterministic, lockstep equal to one configuration at a
time, KV-cache read shares recorded."""

import pytest

from harness.config.build import build_spec
from harness.engine.session import Session
from harness.measure.passes import CHUNK
from harness.methods.kv import RESIDUAL

pytestmark = pytest.mark.slow


def test_plain_python_api_gives_same_metrics(tiny_run):
    a, b = tiny_run(quant="rtn-w4g16"), tiny_run(quant="rtn-w4g16")
    assert a["configs"][0]["metrics"] == b["configs"][0]["metrics"]
    assert (tiny_run.report_dir / a["run_id"] / "summary.md").read_text().startswith("# quantsink")
    assert a["verdict"] == b["verdict"] == "inconclusive"


def test_lockstep_gives_the_same_metrics_as_one_config_at_a_time(tiny_run):
    """Baseline once per batch for all configs (lockstep) or re-run per config: same numbers."""
    kw = dict(model="tiny-qwen2", quant="rtn-w4g16,rtn-w2g16,fault-nan")
    on, off = tiny_run(lockstep="on", **kw), tiny_run(lockstep="off", **kw)
    assert on["settings"]["lockstep"] is True and off["settings"]["lockstep"] is False
    for a, b in zip(on["configs"], off["configs"]):
        assert a["spec"] == b["spec"] and a["metrics"] == b["metrics"] and a["verdict"] == b["verdict"]
    # The baseline block comes from the comparison's own baseline passes: the same as a
    # baseline-only pass.
    alone = Session(build_spec(tiny_run.options(**{**kw, "quant": "rtn-w8"}))).prepare()
    assert on["baseline"] == off["baseline"] and _close(on["baseline"], alone.baseline.stats)
    nan = on["configs"][2]
    assert nan["verdict"] == "fail" and nan["nonfinite_layer"] is not None  # the session went on
    assert on["verdict"] == off["verdict"] == "fail"


def test_lockstep_groups_only_what_fits_in_memory(tiny_run, monkeypatch):
    """With room for two configurations' weights and working memory, three are measured in lockstep groups of
    two and one (the progress says so), with the numbers of one group holding all three."""
    from harness.engine import evaluator

    kw = dict(model="tiny-qwen2", quant="rtn-w4g16,rtn-w2g16,rtn-w8")
    together = tiny_run(lockstep="on", **kw)
    real = evaluator.config_bytes
    room = {}

    def counted(model, spec):
        room["per"] = real(model, spec)
        return room["per"]

    monkeypatch.setattr(evaluator, "config_bytes", counted)
    monkeypatch.setattr(evaluator, "_free_memory", lambda device: int(room.get("per", 1) * 2 / 0.4) + 1)
    grouped = tiny_run(lockstep="auto", **kw)
    assert room["per"] > 0 and grouped["settings"]["lockstep"] is True
    passes = list(grouped["phases"]["baseline"])
    assert any("2 participants" in ln for ln in passes) and not any("3 participants" in ln for ln in passes), passes
    for a, b in zip(together["configs"], grouped["configs"]):
        assert a["spec"] == b["spec"] and a["metrics"] == b["metrics"] and a["verdict"] == b["verdict"]


def _close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return abs(a - b) <= tol * max(1.0, abs(a))


def _share(T, C, R):
    """Quantized share of (query, key) reads for a sequence of T tokens prefilled in chunks of C through
    a KIVI-style cache that keeps R tokens in full precision (worked out independently of the harness)."""
    q = r = 0
    quantized = total = 0
    for a in range(0, T, C):
        c = min(C, T - a)
        if a == 0:
            q, total = c, c * (c + 1) // 2  # the first chunk is stored quantized, read as it came
            continue
        quantized += c * q
        total += c * (q + r) + c * (c + 1) // 2
        if r + c >= R:
            q, r = q + r + c, 0
        else:
            r += c
    return quantized / total


def test_kv_configurations_record_how_much_attention_read_quantized_kv(tiny_run):
    """With the defaults (chunks of 16, residual 32) most reads of a 128-token sequence go through the
    quantized cache, and results say how many."""
    r = tiny_run(quant="kv-hqq-w4g16", seq_len=128)
    got = r["configs"][0]["info"]["kv_cache"]["corpus_quantized_read_share"]
    assert got == pytest.approx(_share(128, CHUNK, RESIDUAL), abs=1e-4) and got > 0.7
    assert _share(128, 32, 128) == pytest.approx(0.372, abs=1e-3)  # transformers' defaults: the first chunk only
    assert r["verdict"] == "inconclusive"
