"""The sign-off suite: one item per configuration (quantize and measure) and one per gate."""
import pytest


def _entry(qs_session, q):
    entry = qs_session.measure(q)
    if entry["verdict"] == "skipped":
        if qs_session.spec.signoff:
            pytest.fail(f"{q.spec} skipped under --signoff: {entry['skip_reason']}", pytrace=False)
        pytest.skip(entry["skip_reason"])
    if entry.get("error"):
        pytest.fail(f"{q.spec}: measurement failed: {entry['error']}", pytrace=False)
    return entry


def test_measure(qs_session, qs_config, record_property, record_testsuite_property):
    """Quantize, capture and measure one configuration against the baseline."""
    entry = _entry(qs_session, qs_config)
    scalars = {k: v for k, v in entry["metrics"].items() if isinstance(v, (int, float))}  # lists stay in results.json
    scalars["quantize_seconds"] = entry["quantize_seconds"]
    for k, v in scalars.items():
        # Suite-level properties work under every junit_family; per-item ones need xunit1 (set in
        # pyproject.toml), so they are only recorded there.
        record_testsuite_property(f"{qs_config.spec}.{k}", v)
        if qs_session.junit_per_item:
            record_property(k, v)


def _judge(qs_session, record_property, result: dict, **props) -> None:
    """Record the item's figures (xunit1) and fail with the result's message when it did not pass."""
    if qs_session.junit_per_item:
        for k, v in props.items():
            record_property(k, v)
    if not result["passed"]:
        pytest.fail(result["detail"], pytrace=False)


def test_gate(qs_session, qs_gate, record_property):
    """One gate: metric against the policy limit for the configuration's bit-width class."""
    q, metric = qs_gate
    _entry(qs_session, q)
    g = qs_session.gate_result(q, metric)
    _judge(qs_session, record_property, g, value=g["value"],
           limit=f"{'<=' if g['op'] == 'max' else '>='} {g['limit']}")


def test_regression(qs_session, qs_regression, record_property):
    """One metric against the earlier run (--compare): worse beyond tolerance and outside the CI fails."""
    q, metric = qs_regression
    _entry(qs_session, q)
    r = qs_session.regression_result(q, metric)
    _judge(qs_session, record_property, r, value=r["value"], earlier=r["earlier"], tolerance=r["tolerance"])
