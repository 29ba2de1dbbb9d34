"""A team's own rules on top of the bundled gates, in its own test file.

    pytest suites docs/examples/test_custom_rules.py --model tiny-llama --quant rtn-w8,rtn-w4g16

`qs_result` is parametrized over the run's configurations (one item per configuration, measured
once and shared with the bundled gates); `qs_result[metric]` is a numpy array for per-layer
([layer]) and per-head ([layer, head]) metrics and a float for scalars (see docs/results.md).
"""

import numpy as np


def test_sink_hidden_state_survives_every_layer(qs_result):
    cos = qs_result["sink_hidden_cos"]  # [layer]
    assert cos.shape == (qs_result.num_layers,)
    worst = int(np.argmin(cos))
    assert cos.min() > 0.9, f"{qs_result.spec}: sink hidden-state cosine {cos.min():.3f} at layer {worst}"


def test_no_head_moves_its_attention_much(qs_result):
    js = qs_result["attn_js"]  # [layer, head], nats
    assert js.shape == (qs_result.num_layers, qs_result.num_heads)
    layer, head = np.unravel_index(np.argmax(js), js.shape)
    assert js.max() < 0.01, f"{qs_result.spec}: attention JS {js.max():.4f} at layer {layer} head {head}"


def test_perplexity_gate_has_an_interval(qs_result):
    view = qs_result.view("ppl_ratio")  # the gate's scalar, its 95% interval and where it is worst
    assert view["ci_low"] <= view["value"] <= view["ci_high"]
    assert qs_result["ppl_ratio"] < 1.05
