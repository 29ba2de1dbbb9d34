"""Reference mode (--reference): agrees with lockstep, is built once and shared, refuses other inputs."""

import json

import numpy as np
import pytest

from harness.engine.refmode import EXACT_METRICS as EXACT
from harness.errors import UsageError

pytestmark = pytest.mark.slow

# 4 sequences of 48 tokens in batches of 2: two reference batches, 16 sampled query rows of 47
REFERENCED = dict(n_sequences=4, seq_len=48, batch_size=2)

# logit_delta_max: over the baseline's top-256 tokens in reference mode, every token in lockstep (<=)


def _cfg(res):
    return {c["spec"]: c for c in res["configs"]}


def test_reference_mode_agrees_with_lockstep_and_is_shared(tiny_run, isolated_cache):
    quant = "rtn-w4g16,kv-quanto-w4g32"
    lock = tiny_run(quant=quant, lockstep="on", **REFERENCED)
    ref = tiny_run(quant=quant, reference=True, **REFERENCED)
    lines = tiny_run.lines
    # the baseline model is loaded to build the reference, then only after the last configuration (scoring);
    # a KV-cache configuration's model under test is the baseline's own weights (loaded as its "quantizing")
    loads = [i for i, m in enumerate(lines) if m.startswith("loading baseline")]
    measured = [i for i, m in enumerate(lines) if "against the reference" in m]
    assert loads[0] < measured[0] and loads[-1] > measured[-1], lines
    assert all(lines[i - 1] == "kv-quanto-w4g32: quantizing" for i in loads[1:-1]) and len(loads) == 3, lines
    for spec, a in _cfg(lock).items():
        b = _cfg(ref)[spec]
        assert b["info"]["reference"]["built_in_this_run"] is True
        for m in EXACT:
            x, y = b["metrics"][m], a["metrics"][m]
            assert (x is None) == (y is None), m
            if y is not None:
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=m)
        # KL from the baseline's top-256 tokens + exact remainder: a lower bound within 10% (measured ~5%)
        assert a["metrics"]["kld_mean"] * 0.9 <= b["metrics"]["kld_mean"] <= a["metrics"]["kld_mean"] * (1 + 1e-5)
        # JS on 16 sampled query rows of 47: every head within 35% of the all-rows value (measured <= ~16%)
        ja, jb = np.asarray(a["metrics"]["attn_js"]), np.asarray(b["metrics"]["attn_js"])
        assert np.all(np.abs(jb - ja) <= 0.35 * ja + 1e-7), (ja, jb)
        assert 0 < b["metrics"]["logit_delta_max"] <= a["metrics"]["logit_delta_max"] + 1e-6
        assert [g["metric"] for g in b["gates"]] == [g["metric"] for g in a["gates"]]
    assert ref["baseline"]["loss"] == pytest.approx(lock["baseline"]["loss"], rel=1e-6)

    # a second run (another process, shard or Ray task would do the same) finds the reference by its key
    tiny_run(quant="rtn-w8", reference=True, **REFERENCED)
    again = tiny_run.lines
    assert any("baseline reference" in m and "found under" in m for m in again)
    assert not any("baseline reference: corpus batch" in m for m in again)
    roots = list((isolated_cache / "references").glob("*/meta.json"))
    assert len(roots) == 1
    files = sorted(p.name for p in roots[0].parent.iterdir())
    assert "batch-0000.safetensors" in files and not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)


def test_a_reference_of_other_inputs_is_a_usage_error(tiny_run, isolated_cache):
    tiny_run(quant="rtn-w8", reference=True, **REFERENCED)
    one = next((isolated_cache / "references").glob("*/meta.json")).parent
    meta = json.loads((one / "meta.json").read_text())
    assert meta["identity"]["settings"]["seq_len"] == 48
    with pytest.raises(UsageError, match=r"made for other inputs: settings\.seq_len \(48 there, 40 here\)"):
        tiny_run(quant="rtn-w8", reference=True, reference_dir=str(one), **{**REFERENCED, "seq_len": 40})
    # naming the reference itself works when the inputs match
    res = tiny_run(quant="rtn-w8", reference=True, reference_dir=str(one), **REFERENCED)
    assert res["configs"][0]["info"]["reference"]["built_in_this_run"] is False
