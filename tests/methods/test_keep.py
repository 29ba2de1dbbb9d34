"""Keeping modules at baseline precision: the `-keep:` grammar, module names checked against the model, and the
effective bits per weight."""

import json

import pytest

from harness.errors import UsageError
from harness.methods import parse_spec, parse_specs


def test_keep_specs_parse_round_trip_and_split_on_commas():
    from harness.methods.base import QuantConfig

    qs = parse_specs("rtn-w3g32-keep:layers.1.mlp.down_proj,layers.2,bnb-nf4,rtn-w4-keep:layers.0+kv-quanto-w4")
    assert [q.spec for q in qs] == [
        "rtn-w3g32-keep:layers.1.mlp.down_proj,layers.2",
        "bnb-nf4",
        "rtn-w4-keep:layers.0+kv-quanto-w4",
    ]
    k = qs[0]
    assert (k.method, k.inner.spec, k.keep, k.bits, k.group_size, k.bit_class) == (
        "keep",
        "rtn-w3g32",
        ("layers.1.mlp.down_proj", "layers.2"),
        3,
        32,
        "3",
    )
    assert QuantConfig.from_dict(json.loads(json.dumps(k.to_dict()))) == k
    assert parse_spec(k.spec) == k


@pytest.mark.parametrize(
    "spec, words",
    [
        ("kv-quanto-w4-keep:layers.1", ["kv-quanto-w4 cannot keep modules", "KV-cache"]),
        ("rtn-w4-keep:", ["needs comma-separated module names"]),
        ("rtn-w4-keep:model.layers.1", ["'model.layers.1' is not a module name", "layers.<i>"]),
        ("rtn-w4-keep:layers.1,layers.1", ["listed twice"]),
    ],
)
def test_bad_keep_lists_are_one_line_usage_errors(spec, words):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_unknown_module_lists_the_closest_names_and_exits_4(tiny_run):
    """Through `python -m harness`: the model's module names are checked before anything loads."""
    for spec, want in (
        ("rtn-w4g16-keep:layers.1.mlp.down_prj", "layers.1.mlp.down_proj"),
        ("bnb-nf4,kv-quanto-w4-keep:layers.1", "cannot keep modules"),
    ):
        out = tiny_run.python_m(quant=spec)
        assert out.returncode == 4, out.stderr[-2000:]
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0], out.stderr


def test_bits_per_weight_by_hand(tiny):
    from harness.methods.footprint import footprint, linear_bits
    from harness.models.structure import linear_modules

    model, _ = tiny("llama")
    lins = {n: m.weight.numel() for n, m, _ in linear_modules(model)}
    every = sum(p.numel() for p in model.parameters())
    other = every - sum(lins.values())
    f = footprint(parse_spec("rtn-w4g16"), model)
    assert f["bits_per_weight"] == pytest.approx(4 + 16 / 16)  # 4 bits and an fp16 scale per 16 weights
    assert f["model_size_mb"] == pytest.approx((sum(lins.values()) * 5 + other * 32) / 8e6)
    kept = footprint(parse_spec("rtn-w4g16-keep:layers.1.mlp.down_proj,layers.3"), model)
    n_keep = lins["layers.1.mlp.down_proj"] + sum(v for k, v in lins.items() if k.startswith("layers.3."))
    want = ((sum(lins.values()) - n_keep) * 5 + n_keep * 32) / sum(lins.values())
    assert kept["bits_per_weight"] == pytest.approx(want)
    assert kept["quantized_params"] == sum(lins.values()) - n_keep
    assert linear_bits(parse_spec("gptq-w3g128"), 4096) == pytest.approx(3 + (16 + 3) / 128)
    assert linear_bits(parse_spec("bnb-nf4"), 64) == 4.5  # an fp32 absmax per block of 64
    assert footprint(parse_spec("kv-quanto-w4"), model)["bits_per_weight"] == 32  # weights stay the baseline's
