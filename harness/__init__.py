"""quantsink: sink-aware sign-off of quantized LLMs. Importing this imports no heavy backend."""

__version__ = "0.1.0"


def run(spec):
    """Run every configuration of a RunSpec, write the run directory, return results (dict)."""
    from harness.cli import run as _run

    return _run(spec)
