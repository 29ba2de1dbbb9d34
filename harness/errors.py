"""Exception types: usage errors (bad input, exit code 4) versus measurement faults."""

# One exit-code table for `pytest suites`, `python -m harness` and `python -m harness merge` (the values are
# pytest's own: OK, TESTS_FAILED, INTERRUPTED, USAGE_ERROR). An inconclusive run exits 0 (its undecided gates are
# shown, never hidden); under --signoff the run verdict of anything short of a pass is already "fail".
EXIT_CODES = {"pass": 0, "inconclusive": 0, "fail": 1, "interrupted": 2, "usage": 4}


def exit_code(verdict: str) -> int:
    """The process exit code of a run verdict (pass, inconclusive, fail)."""
    return EXIT_CODES[verdict]


class QuantsinkError(Exception):
    """Base class for every error the harness raises on purpose."""


class UsageError(QuantsinkError):
    """Bad input from the user: unknown spec, missing path, malformed file.

    The message is a single line that names the fix; the pytest plugin turns it
    into pytest's own usage error (exit code 4) before collection.
    """

    def __init__(self, message: str):
        # one line by contract: user input echoed in a message must not break it
        super().__init__(" ".join(str(message).replace("\r", "\n").split("\n")))


class MissingBackend(QuantsinkError):
    """An optional package a quantization method needs is not installed."""

    def __init__(self, method: str, package: str, install: str):
        self.method, self.package, self.install = method, package, install
        super().__init__(f"{method} needs the '{package}' package: {install}")


class QuantsinkWarning(UserWarning):
    """Something the run noticed and went on past (a malformed index line, a corrupt cache entry): shown once,
    in one line (python -m harness) or in pytest's warnings summary."""


class CaptureError(QuantsinkError):
    """Attention weights or hidden states did not come back from a forward pass."""


class NotComparable(UsageError):
    """Two runs cannot be compared (different model, corpus, prompts or spec)."""


def did_you_mean(name: str, choices) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def one_line(e: BaseException) -> str:
    """An exception as one line for results.json: its type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def guarded(result, fn, *args):
    """Run one configuration's step; errors end that configuration (result.skip / result.fail), never
    the session. Returns fn's value, or None when it raised."""
    try:
        return fn(*args)
    except MissingBackend as e:
        result.skip(str(e))
    except QuantsinkError as e:  # a UsageError here (e.g. a bad path: checkpoint) ends this configuration only
        result.fail(f"{type(e).__name__}: {e}")
    except Exception as e:  # a crash in one configuration must not end the session
        result.fail(one_line(e))
    return None
