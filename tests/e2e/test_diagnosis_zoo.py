"""The fault zoo measured end to end on tiny-sink (a planted attention sink): each family's diagnosis names the
family and, for localized faults, the layer and heads its ground truth (info.planted) records."""

import pytest

pytestmark = pytest.mark.slow  # one whole run of nine configurations (about 60 s on 2 cores)

ZOO = {
    "fault-neuron": ("sink damage", 1),
    "fault-query-l2h1": ("head damage", 2),
    "fault-key-l2h1": ("head damage", 2),
    "fault-mlp-l2": ("local damage", 2),
    "fault-kvsink": ("kv-cache", None),
    "fault-late-n12": ("long-only", None),
    "fault-diffuse": ("diffuse damage", None),
    "fault-bf16": ("no damage", None),
    "fault-fp16": ("no damage", None),
}


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory, tiny_run_in):
    run = tiny_run_in(tmp_path_factory.mktemp("zoo"))
    res = run(
        model="tiny-sink",
        quant=",".join(ZOO),
        protect_sink=True,
        n_sequences=4,
        seq_len=48,
        max_new_tokens=8,
        n_prompts=4,
        n_open_prompts=2,
        long_new_tokens=36,
        long_n_prompts=2,
    )
    return {c["spec"]: c for c in res["configs"]}


def _predicted(c):
    d = c.get("diagnosis")
    return (d["family"], d["layer"]) if d else ("no damage" if c["verdict"] == "pass" else "unclear", None)


@pytest.mark.parametrize("spec", list(ZOO))
def test_each_planted_fault_is_named(zoo_run, spec):
    c = zoo_run[spec]
    truth = c["info"]["planted"]
    assert (truth["family"], truth["layer"]) == ZOO[spec]
    assert _predicted(c) == ZOO[spec], c.get("diagnosis")
    d = c.get("diagnosis") or {}
    if truth["family"] == "head damage":
        assert d["heads"] == truth["heads"]
    if truth["family"] == "no damage":  # a benign round trip is never called damage, whatever its verdict
        assert c["verdict"] in ("pass", "inconclusive") and not [g for g in c["gates"] if g["outcome"] == "fail"]
