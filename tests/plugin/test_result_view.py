"""qs_result's view of a configuration's results, for a team's own rules."""

import numpy as np
import pytest


def test_a_rule_about_a_missing_metric_says_which_exist():
    from harness.gates.records import ConfigResult
    from harness.plugin.view import ResultView

    r = ConfigResult(
        "rtn-w8",
        "rtn",
        8,
        None,
        "8",
        {},
        metrics={"sink_hidden_cos": [0.5, None]},
        gate_views={"ppl_ratio": {"value": 1.01}},
    )
    v = ResultView(r)
    assert np.isnan(v["sink_hidden_cos"][1]) and v["ppl_ratio"] == 1.01
    with pytest.raises(KeyError, match="did you mean 'sink_hidden_cos'"):
        v["sink_hiden_cos"]
