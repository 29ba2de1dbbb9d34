"""Test-only pytest plugin: measure one configuration in place of another.

    QS_MEASURE_AS="rtn-w4g32=rtn-w3g32" pytest suites -p harness.testing ...

measures rtn-w3g32 under the name rtn-w4g32 (results.json records `measured_as`), to show
that regression gates catch a worse model. Never loaded unless named with -p.
"""
import os


def pytest_quantsink_measure_as(qconfig):
    pairs = dict(p.split("=", 1) for p in os.environ.get("QS_MEASURE_AS", "").split(",") if "=" in p)
    return pairs.get(qconfig.spec)
