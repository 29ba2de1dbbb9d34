"""The sign-off suite: one item per configuration (quantize and measure) and one per gate."""
import pytest

from harness.catalogue import BY_NAME
from harness.plugin import junit_per_item


def _result(request, qs_session, q):
    r = qs_session.measure(q)
    if r.verdict == "skipped":
        if qs_session.spec.signoff:
            pytest.fail(f"{q.spec} skipped under --signoff: {r.skip_reason}", pytrace=False)
        pytest.skip(r.skip_reason)
    if r.error:
        pytest.fail(f"{q.spec}: measurement failed: {r.error}", pytrace=False)
    return r


def test_measure(request, qs_session, qs_config, record_property, record_testsuite_property):
    """Quantize, capture and measure one configuration against the baseline."""
    r = _result(request, qs_session, qs_config)
    # Scalar metrics of the catalogue (per-layer lists stay in results.json).
    scalars = {k: v for k, v in r.metrics.items() if k in BY_NAME and isinstance(v, (int, float))}
    scalars["quantize_seconds"] = r.quantize_seconds
    for k, v in scalars.items():
        # Suite-level properties work under every junit_family; per-item ones need xunit1 (set in
        # pyproject.toml), so they are only recorded there.
        record_testsuite_property(f"{qs_config.spec}.{k}", v)
        if junit_per_item(request.config):
            record_property(k, v)


def _judge(request, record_property, result: dict, **props) -> None:
    """Record the item's figures (xunit1) and fail with the result's message when it did not pass."""
    if junit_per_item(request.config):
        for k, v in props.items():
            record_property(k, v)
    if not result["passed"]:
        pytest.fail(result["detail"], pytrace=False)


def test_gate(request, qs_session, qs_gate, record_property):
    """One gate: metric against the policy limit for the configuration's bit-width class."""
    q, metric = qs_gate
    _result(request, qs_session, q)
    g = qs_session.gate_result(q, metric)
    _judge(request, record_property, g, value=g["value"], limit=f"{'<=' if g['op'] == 'max' else '>='} {g['limit']}")


def test_regression(request, qs_session, qs_regression, record_property):
    """One metric against the earlier run (--compare): worse beyond tolerance and outside the CI fails."""
    q, metric = qs_regression
    _result(request, qs_session, q)
    r = qs_session.regression_result(q, metric)
    _judge(request, record_property, r, value=r["value"], earlier=r["earlier"], tolerance=r["tolerance"])
