"""Policy files: the bundled one loads; bad ones are one-line usage errors."""

import math
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.gates.decide import evaluate_gate
from harness.gates.policy import load_policy
from harness.metrics.views import GateView

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_policy_is_one_standard_for_every_bit_width():
    p = load_policy()
    assert not p.by_class  # a pass means the same at 8 and at 2 bits
    every = p.gates_for(None)
    for cls in ("8", "6", "5", "4", "3", "2"):
        assert p.gates_for(cls) == every
    assert {"ppl_ratio", "kld_mean", "flip_rate", "sink_hidden_cos", "attn_js", "logit_delta_max"} <= set(every)
    lenient = load_policy(ROOT / "docs" / "examples" / "policy-lenient.toml")
    assert lenient.by_class and lenient.gates_for("8")["ppl_ratio"].bound < lenient.gates_for("4")["ppl_ratio"].bound


@pytest.mark.parametrize(
    "body,needle",
    [
        ("[limits.8]\nppl_ratoi = { max = 1 }\n", "did you mean 'ppl_ratio'"),
        ("[limits.8]\nppl_ratio = 1.05\n", "must look like"),
        ("[limits.9]\nppl_ratio = { max = 1 }\n", "unknown bit-width class"),
        ("[limits.8\n", "not valid TOML"),
    ],
)
def test_bad_policy(tmp_path, body, needle):
    f = tmp_path / "p.toml"
    f.write_text(body)
    with pytest.raises(UsageError, match=needle):
        load_policy(f)


def test_nan_never_passes():
    lim = load_policy().gates_for("8")["ppl_ratio"]
    g = evaluate_gate("x", "ppl_ratio", lim, GateView(math.nan), "NaN first at layer 3")
    assert not g["passed"] and "layer 3" in g["detail"] and g["value"] is None
    ok = evaluate_gate("x", "ppl_ratio", lim, GateView(1.0, (0.99, 1.01), "layer 2", n=16))
    assert ok["passed"] and ok["detail"] == (
        "x: ppl_ratio = 1 [95% CI 0.99, 1.01] within limit <= 1.05, n=16 (worst at layer 2)"
    )


BAD_PART = "[limits.all]\nlogit_delta_max = { min = 1e-6 }\n"


@pytest.mark.parametrize(
    "body,needles",
    [
        ("[limit.4]\nppl_ratio = { max = 1.3 }\n", ["unknown table [limit]", "did you mean 'limits'"]),
        ("[regresion]\nkld_mean = { rel = 0.1 }\n", ["unknown table [regresion]", "did you mean 'regression'"]),
        ("[limitz]\n", ["unknown table [limitz]", "did you mean 'limits'"]),
        ("treshold = 3\n", ["unknown key 'treshold'"]),
        ("[limits.al]\nppl_ratio = { max = 1.3 }\n", ["unknown bit-width class [limits.al]", "did you mean 'all'"]),
        ("[limits.ppl_ratio]\nmax = 1.3\n", ["unknown bit-width class", "inside a class table"]),
        (
            "[limits.4]\nppl_ratio = { maxx = 1.3 }\n",
            ["unknown key 'maxx' in limits.4.ppl_ratio", "did you mean 'max'"],
        ),
        (
            "[regression]\nkld_mean = { rell = 0.1 }\n",
            ["unknown key 'rell' in regression.kld_mean", "did you mean 'rel'"],
        ),
        (
            "[regression]\nkld_maen = { rel = 0.1 }\n",
            ["unknown metric 'kld_maen' in [regression]", "did you mean 'kld_mean'"],
        ),
        (
            "[limits.4]\nflip_rat = { max = 0.3 }\n",
            ["unknown metric 'flip_rat' in [limits.4]", "did you mean 'flip_rate'"],
        ),
    ],
)
def test_a_misspelled_table_class_metric_or_key_is_a_usage_error(tmp_path, body, needles):
    """A misspelled table, class, metric or key used to drop its gates silently; now each is named."""
    f = tmp_path / "p.toml"
    f.write_text(body + BAD_PART)  # a top-level key must come before the first table
    with pytest.raises(UsageError) as e:
        load_policy(f)
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_bundled_and_example_policies_pass_the_strict_schema():
    load_policy()
    examples = sorted((ROOT / "docs" / "examples").glob("*.toml"))
    assert examples
    for f in examples:
        assert load_policy(f).regression, f
