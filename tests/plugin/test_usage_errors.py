"""Usage errors of `pytest suites`: exit 4 before collection, one ERROR: line naming the fix, no traceback."""

import pytest

BAD = [
    ("--quant", "rtn-w9", "rtn takes 2 to 8 bits"),
    ("--quant", "bnb-w3", "bitsandbytes has no 3-bit mode"),
    ("--quant", "gptq-w5", "GPTQ takes 2, 3, 4, 8 bits"),
    ("--quant", "foo-w4", "unknown quantization method 'foo'"),
    ("--quant", "auto-gptq-w4", "auto-gptq is archived"),
    ("--model", "./no/such/model", "not found"),
    ("--model", "missing.gguf", "does not exist"),
]


@pytest.mark.parametrize("flag,value,needle", BAD)
def test_usage_errors_exit_4_one_line_no_traceback(suite_dir, flag, value, needle):
    args = ["suites", "-p", "no:cacheprovider", flag, value]
    if flag == "--model":
        args += ["--quant", "rtn-w8"]
    else:
        args += ["--model", "tiny-llama"]
    res = suite_dir.runpytest_subprocess(*args)
    assert res.ret == 4
    err = res.stderr.str()
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1 and needle in lines[0], err
    assert "valid" in lines[0] or "instead" in lines[0]
    assert "Traceback" not in err + res.stdout.str()


def test_a_bad_checkpoint_path_is_a_usage_error_before_collection(tiny_run):
    res = tiny_run.pytest(quant="path:../../../../etc")
    assert res.ret == 4
    err = [ln for ln in res.stderr.str().splitlines() if ln.startswith("ERROR:")]
    assert len(err) == 1 and "--quant path:../../../../etc" in err[0] and "config.json" in err[0]
    assert "Traceback" not in res.stdout.str() + res.stderr.str()


def test_quantsink_options_without_the_suites_say_run_pytest_suites(pytester):
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    pytester.makepyfile("def test_x():\n    pass\n")
    for extra in ([], ["--report-dir", "X"]):
        res = pytester.runpytest_subprocess("--model", "tiny-llama", "--quant", "rtn-w8", *extra)
        assert res.ret == 4
        err = res.stderr.str()
        assert "run `pytest suites --model tiny-llama --quant rtn-w8" in err and "unrecognized" not in err
