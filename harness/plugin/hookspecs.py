"""Hook specifications quantsink adds to pytest (registered by the plugin)."""

import pytest


@pytest.hookspec(firstresult=True)
def pytest_quantsink_measure_as(qconfig):
    """Return a QuantConfig or spec string to measure in place of `qconfig`, or None.

    For testing regression gates and reports: the substitute is measured under the original
    name and results.json records `measured_as`, so it is never silent.
    """
