"""Policy files: the bundled one loads; bad ones are one-line usage errors."""
import math

import pytest

from harness.errors import UsageError
from harness.gates import GateView, evaluate_gate
from harness.policy import load_policy


def test_bundled_policy_gates_every_class():
    p = load_policy()
    for cls in ("8", "4", "3", "2"):
        g = p.gates_for(cls)
        assert "ppl_ratio" in g and "logit_delta_max" in g and "flip_rate" in g
    assert p.gates_for("8")["ppl_ratio"].bound < p.gates_for("4")["ppl_ratio"].bound


@pytest.mark.parametrize("body,needle", [
    ("[limits.8]\nppl_ratoi = { max = 1 }\n", "did you mean 'ppl_ratio'"),
    ("[limits.8]\nppl_ratio = 1.05\n", "must look like"),
    ("[limits.9]\nppl_ratio = { max = 1 }\n", "unknown bit-width class"),
    ("[limits.8\n", "not valid TOML"),
])
def test_bad_policy(tmp_path, body, needle):
    f = tmp_path / "p.toml"
    f.write_text(body)
    with pytest.raises(UsageError, match=needle):
        load_policy(f)


def test_nan_never_passes():
    lim = load_policy().gates_for("8")["ppl_ratio"]
    g = evaluate_gate("x", "ppl_ratio", lim, GateView(math.nan), "NaN first at layer 3")
    assert not g["passed"] and "layer 3" in g["detail"] and g["value"] is None
    ok = evaluate_gate("x", "ppl_ratio", lim, GateView(1.0, (0.99, 1.01), "layer 2"))
    assert ok["passed"] and "1" in ok["detail"]
