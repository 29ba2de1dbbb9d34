"""Spec grammar and shorthand (pure Python: no torch); the test-only fault methods exist only with harness.testing."""

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.methods import QuantConfig, bit_class, expand_shorthand, parse_spec, parse_specs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "spec,method,bits,group",
    [
        ("bnb-int8", "bnb", 8, None),
        ("bnb-nf4", "bnb", 4, 64),
        ("bnb-fp4", "bnb", 4, 64),
        ("gptq-w4g128", "gptq", 4, 128),
        ("gptq-w3g128", "gptq", 3, 128),
        ("gptq-w2g64", "gptq", 2, 64),
        ("gptq-w8g128", "gptq", 8, 128),
        ("rtn-w4g32", "rtn", 4, 32),
        ("rtn-w8", "rtn", 8, None),
        ("rtn-w3g64-asym", "rtn", 3, 64),
        ("kv-quanto-w4", "kv", 4, 64),
        ("kv-hqq-w2g32-r16", "kv", 2, 32),
        ("gptq-w4g128+kv-quanto-w4", "combo", 4, 128),
        ("rtn-w3g32+kv-hqq-w4", "combo", 3, 32),
    ],
)
def test_valid_specs_roundtrip(spec, method, bits, group):
    cfg = parse_spec(spec)
    assert (cfg.spec, cfg.method, cfg.bits, cfg.group_size) == (spec, method, bits, group)
    assert QuantConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("rtn-w9", "2 to 8 bits"),
        ("bnb-w3", "no 3-bit mode"),
        ("gptq-w5", "2, 3, 4, 8"),
        ("foo-w4", "unknown quantization method 'foo'"),
        ("auto-gptq-w4", "gptq"),
        ("rtn-w4g32-sym", "unknown option"),
        ("bnb-nf3", "did you mean"),
        ("kv-quanto-w3", "takes 2, 4 bits"),
        ("kv-quant-w4", "did you mean 'quanto'"),
        ("kv-hqq-w4-x", "unknown option"),
        ("kv-quanto-w4+kv-hqq-w2", "one weight method and one KV-cache method"),
        ("rtn-w4g32+bnb-int8", "one weight method and one KV-cache method"),
    ],
)
def test_bad_specs_name_valid_choices(spec, needle):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert "valid" in msg or "instead" in msg


def test_gptq_group_defaults_to_128():
    assert parse_spec("gptq-w4").spec == "gptq-w4g128"


def test_auto_gptq_points_to_gptq():
    with pytest.raises(UsageError, match="archived.*gptq-w4g128"):
        parse_spec("auto-gptq-w4g128")


def test_shorthand_expands_valid_pairs():
    specs = [c.spec for c in expand_shorthand("8,4", "bnb,gptq")]
    assert specs == ["bnb-int8", "bnb-nf4", "bnb-fp4", "gptq-w8g128", "gptq-w4g128"]
    assert [c.spec for c in expand_shorthand("3", "bnb,rtn")] == ["rtn-w3g128"]
    with pytest.raises(UsageError):
        expand_shorthand("5", "bnb,gptq")
    with pytest.raises(UsageError, match="did you mean 'gptq'"):
        expand_shorthand("4", "gtpq")


def test_bit_classes():
    assert [
        bit_class(parse_spec(s))
        for s in ("bnb-int8", "bnb-nf4", "rtn-w3g32", "gptq-w2g64", "rtn-w6", "rtn-w5", "rtn-w7")
    ] == ["8", "4", "3", "2", "6", "5", "6"]


def test_a_configuration_whose_bit_width_cannot_be_read_needs_bit_class():
    cfg = parse_spec("path:some-org/some-model")  # a Hub id: no local config.json records its bits
    with pytest.raises(UsageError, match=r"its bit width cannot be read.*give one with --bit-class \(8, 6"):
        bit_class(cfg)  # never silently 4
    assert bit_class(cfg, "4") == "4"
    with pytest.raises(UsageError, match="--bit-class '7' is not a class; valid: 8, 6, 5, 4, 3, 2"):
        bit_class(cfg, "7")


def test_dedup_and_order():
    assert [c.spec for c in parse_specs("rtn-w8, bnb-int8,rtn-w8")] == ["rtn-w8", "bnb-int8"]


@given(st.text(max_size=30))
def test_any_string_parses_or_is_a_usage_error(text):
    try:
        cfgs = parse_specs(text)
    except UsageError as e:
        assert "\n" not in str(e)
    else:
        assert cfgs and all(parse_spec(c.spec) == c for c in cfgs if c.method != "path")


def test_combo_order_is_normalised_and_class_is_the_lower_width():
    a, b = parse_spec("kv-quanto-w2+gptq-w4g128"), parse_spec("gptq-w4g128+kv-quanto-w2")
    assert a == b and a.spec == "gptq-w4g128+kv-quanto-w2"
    assert bit_class(a) == "2" and bit_class(parse_spec("kv-quanto-w4")) == "4"


@pytest.mark.parametrize(
    "spec,hint",
    [
        ("rtn-w4-g32", "did you mean 'rtn-w4g32'?"),
        ("bnb-int4", "did you mean 'bnb-nf4'?"),
        ("RTN-W4G32", "did you mean 'rtn-w4g32'? specs are lower case"),
    ],
)
def test_misspelled_specs_suggest_the_fix(spec, hint):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    assert hint in str(e.value) and "\n" not in str(e.value)


def test_fault_methods_exist_only_with_harness_testing():
    code = "from harness.methods import parse_spec; parse_spec('fault-nan')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode != 0 and "unknown quantization method 'fault'" in out.stderr
    ok = subprocess.run(
        [sys.executable, "-c", "import harness.testing; " + code], capture_output=True, text=True, cwd=ROOT
    )
    assert ok.returncode == 0, ok.stderr
