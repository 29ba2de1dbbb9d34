"""Earlier runs: which are comparable (the data's identity, not libraries or configurations), --compare targets,
pins, and run ids that stay inside the report directory."""

import json

import pytest

from harness.config.identity import check_comparable, comparable_identity
from harness.errors import UsageError
from harness.history.runs import compare_details, resolve, run_path


def _results(**over):
    r = {
        "model": {"id": "m", "revision": "main", "source": {"sha256": "a" * 64}, "baseline_dtype": "fp32"},
        "corpus": {"sha256": "c" * 64, "seq_len": 128},
        "prompts": {"sha256": "p" * 64, "n": 48},
        "environment": {"device": "cpu", "torch": "2.12.0", "transformers": "4.50.0"},
        "settings": {
            "n_sequences": 16,
            "spec": ["rtn-w4g32"],
            "bos": "auto",
            "sink_positions": [0],
            "seed": 0,
            "max_new_tokens": 16,
            "long_new_tokens": 64,
            "batch_size": 4,
        },
        "harness_version": "0.1.0",
    }
    for k, v in over.items():
        r[k] = {**r[k], **v} if isinstance(v, dict) else v
    return r


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"model": {"id": "other"}}, "model differs (m in r0, other now)"),
        ({"corpus": {"sha256": "d" * 64}}, f"corpus sha256 differs ({'c' * 12} in r0, {'d' * 12} now)"),
        ({"prompts": {"sha256": "q" * 64}}, "prompts sha256 differs"),
        ({"model": {"revision": "v2"}}, "revision differs"),
    ],
)
def test_incomparable_runs_name_the_difference(over, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_comparable(comparable_identity(_results(**over)), comparable_identity(_results()), "r0")
    check_comparable(comparable_identity(_results()), comparable_identity(_results()), "r0")


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"model": {"source": {"sha256": "b" * 64}}}, "weights sha256 differs"),
        ({"settings": {"bos": "never"}}, "bos differs (auto in r0, never now)"),
        ({"settings": {"sink_positions": [0, 1]}}, "sink positions differs (0 in r0, 0,1 now)"),
        ({"corpus": {"seq_len": 256}}, "seq_len differs (128 in r0, 256 now)"),
        ({"settings": {"n_sequences": 48}}, "n_sequences differs"),
        ({"settings": {"max_new_tokens": 32}}, "max_new_tokens differs"),
        ({"settings": {"long_new_tokens": 256}}, "long_new_tokens differs"),
        ({"settings": {"seed": 1}}, "seed differs"),
        ({"model": {"baseline_dtype": "fp16"}}, "baseline dtype differs (fp32 in r0, fp16 now)"),
        ({"environment": {"device": "cuda:0"}}, "device type differs (cpu in r0, cuda now)"),
        ({"settings": {"batch_size": 2}}, "batch size differs (4 in r0, 2 now)"),
        ({"harness_version": "1.0.0"}, "harness major version differs (0 in r0, 1 now)"),
    ],
)
def test_each_difference_in_the_data_makes_runs_incomparable_in_one_clause(over, needle):
    with pytest.raises(UsageError) as e:
        check_comparable(comparable_identity(_results(**over)), comparable_identity(_results()), "r0")
    msg = str(e.value)
    assert needle in msg and msg.count("differs") == 1 and len(msg) < 200, msg


def test_configurations_library_versions_and_unrecorded_keys_keep_runs_comparable():
    now = _results(settings={"spec": ["rtn-w4g32", "bnb-int8"]}, environment={"device": "cuda:1", "torch": "2.13"})
    before = _results(settings={"spec": ["rtn-w4g32", "rtn-w3g32"]}, environment={"device": "cuda:0"})
    check_comparable(
        comparable_identity(now), comparable_identity(before), "r0"
    )  # spec list, device index, torch version
    old = _results()  # written before results.json recorded batch_size and long_new_tokens: unknown
    del old["settings"]["batch_size"], old["settings"]["long_new_tokens"]
    check_comparable(
        comparable_identity(_results(settings={"batch_size": 1, "long_new_tokens": 8})), comparable_identity(old), "r0"
    )
    note = compare_details(before, now["settings"]["spec"], {"torch": "2.13", "transformers": "4.50.0"})
    assert note == (
        "; not in the earlier run: bnb-int8; not measured now: rtn-w3g32; "
        "changed since the earlier run: torch 2.12.0 -> 2.13"
    )
    assert compare_details(before, ["rtn-w4g32", "rtn-w3g32"], {"torch": "2.12.0", "transformers": "4.50.0"}) == ""


def test_compare_pinned_takes_the_newest_comparable_pin(tmp_path):
    for rid, seq in (("r1", 128), ("r2", 256)):
        (tmp_path / rid).mkdir()
        res = _results(corpus={"seq_len": seq})
        res.update(schema="quantsink.results/1", run_id=rid, verdict="pass")
        (tmp_path / rid / "results.json").write_text(json.dumps(res))
        with open(tmp_path / "pins.jsonl", "a") as f:
            f.write(json.dumps({"run_id": rid, "model": "m"}) + "\n")
    cur = comparable_identity(_results())
    got, note = resolve("pinned", tmp_path, "m", True, cur)
    assert (
        got["run_id"] == "r1"
        and note == "comparing with pinned run r1, skipping 1 newer pinned run(s) with other inputs"
    )
    got, note = resolve("pinned", tmp_path, "m", True, comparable_identity(_results(settings={"seed": 5})))
    assert got is None and note.startswith("no comparable pinned run: no regression gates") and "seed" in note
    with pytest.raises(UsageError, match="seq_len differs"):
        resolve("r2", tmp_path, "m", True, cur)  # named explicitly: an error, not a fallback


def test_a_misspelled_compare_target_suggests_latest(tmp_path):
    with pytest.raises(UsageError, match="did you mean 'latest'"):
        resolve("lastest", tmp_path, "tiny-llama", True)


@pytest.mark.parametrize("bad", ["../../etc", "a/../../b", "..", "x/y", ""])
def test_run_ids_cannot_escape_the_report_dir(bad, tmp_path):
    with pytest.raises(UsageError, match="invalid run id"):
        run_path(tmp_path, bad)


def _fake_run(report, rid, verdict):
    (report / rid).mkdir(parents=True)
    (report / rid / "results.json").write_text(
        json.dumps({"schema": "quantsink.results/1", "run_id": rid, "verdict": verdict, "model": {"id": "tiny-llama"}})
    )


def test_pinning_a_run_that_did_not_pass_needs_pin_anyway(suite_dir, tmp_path):
    report = tmp_path / "rep"
    _fake_run(report, "r-fail", "fail")
    _fake_run(report, "r-pass", "pass")
    pin = ("suites", "--report-dir", str(report), "--pin")
    bad = suite_dir.runpytest_subprocess(*pin, "r-fail")
    errs = [ln for ln in bad.stderr.lines if ln.startswith("ERROR:")]
    err = errs[0] if len(errs) == 1 else bad.stderr.str()
    assert bad.ret == 4 and len(errs) == 1 and "--pin-anyway" in err and "fail" in err, err
    assert not (report / "pins.jsonl").exists()
    for rid, extra, word in (
        ("r-fail", ["--pin-anyway"], "verdict fail, pinned with --pin-anyway"),
        ("r-pass", [], "verdict pass"),
    ):
        ok = suite_dir.runpytest_subprocess(*pin, rid, *extra)
        line = f"quantsink: pinned run {rid} (tiny-llama, {word}) as the sign-off baseline for --compare pinned"
        assert ok.ret == 0 and ok.stdout.lines.count(line) == 1, ok.stdout.str()
        assert "pinned run" not in ok.stderr.str(), ok.stderr.str()  # not repeated as pytest's "Exit: ..." line
    pins = [json.loads(x) for x in (report / "pins.jsonl").read_text().splitlines()]
    assert [(p["run_id"], p["verdict"], p.get("pinned_anyway")) for p in pins] == [
        ("r-fail", "fail", True),
        ("r-pass", "pass", None),
    ]
