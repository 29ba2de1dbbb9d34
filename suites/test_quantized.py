"""The sign-off suite: one item per configuration (quantize and measure) and one per gate."""

import pytest

from harness.metrics.catalogue import BY_NAME
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


def test_measure(request, qs_session, qs_config, record_property):
    """Quantize, capture and measure one configuration against the baseline."""
    r = _result(request, qs_session, qs_config)
    # Per-item properties need junit_family xunit1 (set in pyproject.toml); the suite-level ones
    # (`<spec>.<metric>`, every junit_family) are recorded from results.json at the end of the run.
    if junit_per_item(request.config):
        for k, v in r.metrics.items():
            if k in BY_NAME and isinstance(v, (int, float)) and not isinstance(v, bool):
                record_property(k, v)
        record_property("quantize_seconds", r.quantize_seconds)


def _judge(request, qs_session, record_property, result: dict, **props) -> None:
    """Record the item's figures (xunit1); fail on a failed result; an undecided one (inconclusive,
    insufficient, not applicable) is a visible skip, or a failure under --signoff."""
    if junit_per_item(request.config):
        for k, v in props.items():
            record_property(k, v)
    outcome = result.get("outcome", "pass" if result["passed"] else "fail")
    if outcome == "fail":
        pytest.fail(result["detail"], pytrace=False)
    if outcome != "pass":
        msg = f"{outcome.upper().replace('_', ' ')}: {result['detail']}"
        if qs_session.spec.signoff:
            pytest.fail(msg + " (--signoff passes only on pass)", pytrace=False)
        pytest.skip(msg)


def test_gate(request, qs_session, qs_gate, record_property):
    """One gate: metric against the policy limit for the configuration's bit-width class."""
    q, metric = qs_gate
    _result(request, qs_session, q)
    g = qs_session.gate_result(q, metric)
    if g is None:
        pytest.fail(
            f"{q.spec}: no {metric} gate was evaluated ({qs_session.measure(q).error or 'no measurement'})",
            pytrace=False,
        )
    _judge(
        request,
        qs_session,
        record_property,
        g,
        value=g["value"],
        limit=f"{'<=' if g['op'] == 'max' else '>='} {g['limit']}",
    )


def test_regression(request, qs_session, qs_regression, record_property):
    """One metric against the earlier run (--compare): worse beyond tolerance and a systematic change fails."""
    q, metric = qs_regression
    _result(request, qs_session, q)
    r = qs_session.regression_result(q, metric)
    _judge(request, qs_session, record_property, r, value=r["value"], earlier=r["earlier"], tolerance=r["tolerance"])


def test_drift(request, qs_session, qs_drift, record_property):
    """One metric against the pinned anchor: the cumulative change since the approved run, same tolerance."""
    q, metric = qs_drift
    _result(request, qs_session, q)
    r = qs_session.regression_result(q, metric, "anchor")
    _judge(request, qs_session, record_property, r, value=r["value"], earlier=r["earlier"], tolerance=r["tolerance"])
