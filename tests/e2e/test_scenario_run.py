"""A run with every deployment scenario: each scenario gate has an interval and an outcome."""

import pytest

from harness.metrics.catalogue import METRICS

pytestmark = pytest.mark.slow

SCENARIO_METRICS = [m for m in METRICS if m.family == "scenario"]
LINES: list[str] = []  # the scenario run's progress lines


def _figures(obj, path=""):
    """Every {"value": ...} figure inside a scenarios record, with its path."""
    if isinstance(obj, dict):
        if "value" in obj and "ci_low" in obj:
            yield path, obj
            return
        for k, v in obj.items():
            if k != "items":
                yield from _figures(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _figures(v, f"{path}[{i}]")


@pytest.fixture(scope="module")
def scenario_run(tmp_path_factory, tiny_run_in):
    run = tiny_run_in(tmp_path_factory.mktemp("scen"))
    results = run(
        quant="rtn-w4g32",
        scenarios="streaming,packed,bos",
        stream_len=64,
        stream_window=16,
        stream_sinks=2,
        n_sequences=4,
        n_prompts=2,
        n_probe_sequences=4,
        n_stability_prompts=1,
        long_new_tokens=2,
        max_new_tokens=2,
    )
    LINES[:] = run.lines
    return results


def test_every_scenario_metric_has_an_interval_and_a_gate_outcome(scenario_run):
    c = scenario_run["configs"][0]
    for m in SCENARIO_METRICS:
        g = c.gate(m.name) if hasattr(c, "gate") else next(x for x in c["gates"] if x["metric"] == m.name)
        assert g["outcome"] in ("pass", "fail", "inconclusive", "insufficient", "not_applicable"), m.name
        assert g["ci_low"] is not None and g["ci_high"] is not None, m.name
        assert g["ci_low"] <= g["value"] + 1e-12 and g["value"] <= g["ci_high"] + 1e-12, m.name
    for block in (scenario_run["baseline"]["scenarios"], c["scenarios"]):
        figs = list(_figures(block))
        assert len(figs) > 30
        for path, f in figs:
            assert f["ci_low"] is not None and f["ci_high"] is not None, path
    st_ = c["scenarios"]["streaming"]
    assert {"loss_full", "loss_sink_window", "loss_window_only"} <= set(st_) and len(st_["items"]) == 4
    assert all("doc" in it for it in st_["items"])
    assert scenario_run["baseline"]["scenarios"]["streaming"]["settings"]["seq_len"] == 64
    assert scenario_run["verdict"] == "inconclusive"


def test_scenario_progress_lines_name_the_baseline_and_each_configuration(scenario_run):
    scen = [ln for ln in LINES if ln.startswith("scenario ")]
    assert scen and not [ln for ln in LINES if "__baseline__" in ln]
    packed = [ln for ln in scen if ln.startswith("scenario packed: ")]
    assert {ln.split(": ", 1)[1].split(",", 1)[0] for ln in packed} == {"baseline", "rtn-w4g32"}, packed
