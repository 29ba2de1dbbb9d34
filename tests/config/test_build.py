"""build_spec: profiles, overrides and one-line messages for bad option values."""

import pytest

from harness.config.build import build_spec
from harness.errors import UsageError


def test_build_spec_profile_defaults_and_overrides():
    s = build_spec({"profile": "nightly", "quant": "rtn-w8", "seq_len": 64})
    assert s.corpus == "python-docs" and s.seq_len == 64 and s.compare == "latest"
    with pytest.raises(UsageError, match="smoke, nightly, signoff"):
        build_spec({"profile": "weekly"})
    with pytest.raises(UsageError, match="--bits and --methods"):
        build_spec({"bits": "4"})
    with pytest.raises(UsageError, match="auto, always, never"):
        build_spec({"bos": "sometimes"})
    with pytest.raises(UsageError, match="sink-positions"):
        build_spec({"sink_positions": "a"})


@pytest.mark.parametrize(
    "values,needle",
    [
        ({"n_prompts": "-1"}, "--n-prompts must be at least 0 (got -1)"),
        ({"sink_positions": "200"}, "--sink-positions 200 must lie before"),
        ({"n_sequences": "x"}, "--n-sequences takes an integer (got 'x')"),
    ],
)
def test_bad_option_values_name_the_flag_and_the_fix(values, needle):
    with pytest.raises(UsageError) as e:
        build_spec(values)
    assert needle in str(e.value)


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"scenarios": "bos"}, "--scenarios"),
        ({"protect_sink": True}, "--protect-sink"),
        ({"sensitivity": "all"}, "--sensitivity"),
    ],
)
def test_reference_mode_names_what_it_does_not_cover(extra, named):
    with pytest.raises(UsageError, match=f"--reference does not cover {named}"):
        build_spec({"reference": True, **extra})
