"""Nightly history: twelve real runs of a tiny model with a step planted at run 7, read back by `python -m harness
history`, REPORT_DIR/history.html (also in a real browser at 1400 px) and `history --prune`.

The runs go through the real run path (Session -> results.json -> index -> history.html). Runs 7-12 measure rtn-w8
as rtn-w2g16 under its name (the measure-as test hook), so from run 7 on the configuration is far worse; run 3 is
pinned; run 10 uses another --seq-len, so it is comparable with no other run.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from test_report_in_browser import CHROMIUM, _browse, _measure

from harness.cli import main
from harness.config.build import build_spec
from harness.engine.session import Session
from harness.history.runs import pin
from harness.methods import parse_spec

pytestmark = pytest.mark.slow

STEP_AT, PIN_AT, OTHER_INPUTS_AT, N_RUNS = 7, 3, 10, 12


@pytest.fixture(scope="module")
def nightly(tmp_path_factory, tiny_run_in):
    """(report directory, run ids oldest first) of the twelve runs."""
    tmp = tmp_path_factory.mktemp("nightly")
    tiny = tiny_run_in(tmp)
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        # Nights with unchanged inputs reuse the measurement (the results cache, as a nightly job would). The cache
        # key does not see the measure-as substitution, so the stored measurements go when the damage starts.
        mp.setenv("QS_RESULTS_CACHE", "on")
        mp.setenv("QS_CACHE_DIR", str(tmp / "cache"))
        for n in range(1, N_RUNS + 1):
            damaged = n >= STEP_AT
            if n == STEP_AT:
                shutil.rmtree(tmp / "cache" / "results")
            opts = tiny.options(quant="rtn-w8", n_sequences=4, n_open_prompts=8, compare="latest" if n > 1 else "none")
            if n == OTHER_INPUTS_AT:
                opts["seq_len"] = 48
            sub = (lambda q: parse_spec("rtn-w2g16")) if damaged else None
            session = Session(build_spec(opts), progress=lambda m: None, substitute=sub)
            session.run_all()
            run_dir = session.write()
            ids.append(run_dir.name)
            if n == PIN_AT:
                pin(tiny.report_dir, run_dir.name, anyway=True)  # tiny runs are inconclusive: too few items to pass
    return tiny.report_dir, ids


def _history(capsys, *args) -> tuple[int, str, str]:
    code = main(["history", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_history_names_the_step_the_pin_and_the_incomparable_run(nightly, capsys):
    rep, ids = nightly
    code, out, err = _history(capsys, rep)
    assert code == 0, err
    lines = out.splitlines()
    # newest first, each run with its configuration's verdict
    run_lines = [ln for ln in lines if re.match(r"#\d+ ", ln)]
    assert [ln.split()[1] for ln in run_lines] == ids[::-1]
    assert all("tiny-llama" in ln and "rtn-w8" in ln for ln in run_lines)
    assert "PINNED" in run_lines[N_RUNS - PIN_AT] and sum("PINNED" in ln for ln in run_lines) == 1
    # run 10 (another seq_len) is marked with what differs from the newest run
    i10 = lines.index(run_lines[N_RUNS - OTHER_INPUTS_AT])
    assert lines[i10 + 1].strip() == "not comparable with the newest run: seq_len 48 -> 32"
    assert sum("not comparable" in ln for ln in lines) == 1
    # every step is at run 7, and ppl_ratio's is among them; the drift from the pin fails
    steps = [ln for ln in lines if ": step at run " in ln]
    assert steps and all(f"step at run #{STEP_AT} {ids[STEP_AT - 1]} (" in ln for ln in steps), steps
    kld = [ln for ln in steps if ln.strip().startswith("rtn-w8 kld_mean: step")]
    assert kld and "(worse than #6" in kld[0] and "paired change" in kld[0] and "over 4 sequences" in kld[0]
    assert f"drift of the newest run from the pinned anchor #{PIN_AT} {ids[PIN_AT - 1]}:" in out
    assert re.search(r"rtn-w8 kld_mean: drift fail from pinned anchor #3 .*paired change", out)

    code, out, err = _history(capsys, rep, "--metric", "kld_mean", "--config", "rtn-w8")
    assert code == 0, err
    points = [ln for ln in out.splitlines() if re.match(r"#\d+ ", ln)]
    assert len(points) == N_RUNS and all(re.search(r"\[[-\d.e]+, [-\d.e]+\]", p) for p in points)
    step_points = [p for p in points if "STEP" in p]
    assert [p.split()[0] for p in step_points] == [f"#{STEP_AT}"]
    assert "--- break" in out and out.count("--- break") == 2  # before run 10 and after it

    assert _history(capsys, rep, "--metric", "ppl_ratio")[0] == 4
    code, _, err = _history(capsys, rep, "--metric", "ppl_ratoi", "--config", "rtn-w8")
    assert code == 4 and "did you mean 'ppl_ratio'" in err


def test_history_page_marks_step_pin_breaks_and_links_runs(nightly, capsys):
    rep, ids = nightly
    page = (rep / "history.html").read_text()  # written by the last run
    assert "<script" not in page.lower() and "default-src 'none'" in page
    panel = re.search(r'<div class=panel data-spec="rtn-w8" data-metric="kld_mean">(.*?)</div>', page, re.S).group(1)
    assert panel.count("<circle class=") == N_RUNS + 1 and panel.count(" data-run=") == N_RUNS  # + the pin ring
    for rid in ids:
        assert f'<a href="{rid}/report.html">' in panel
    assert f">step #{STEP_AT}<" in panel and panel.count('class="step"') == 1
    assert panel.count('class="pin"') == 1
    assert panel.count('class="break"') == 2 and "seq_len 32 -&gt; 48" in panel
    assert re.search(rf'<circle class="incomparable" data-run="{ids[OTHER_INPUTS_AT - 1]}"', panel)
    assert panel.count('class="incomparable"') == 1
    assert 'class="limit"' in panel and 'class="band"' in panel
    # the summary on top: what changed since the pin, with the step and the failed drift
    summary = page[page.index("<h2>Since the last pin") : page.index("<h2>Steps")]
    assert f"#{PIN_AT} {ids[PIN_AT - 1]}" in summary
    row = re.search(r"<tr><td>rtn-w8</td><td>kld_mean</td>.*?</tr>", summary).group(0)
    assert "<td class=fail>fail</td>" in row and f">#{STEP_AT}</a> (worse)" in row
    # `history --html` writes the same page again
    before = page
    assert _history(capsys, rep, "--html")[0] == 0
    assert (rep / "history.html").read_text() == before


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("QS_REQUIRE_BROWSER") != "1",
    reason="chromium not installed (apt-get install chromium)",
)
def test_history_page_in_a_real_browser(nightly, tmp_path):
    assert CHROMIUM, "QS_REQUIRE_BROWSER=1 but chromium is not installed"
    rep, _ = nightly
    dom, problems, requests, shot = _browse(rep / "history.html", tmp_path / "page")
    assert problems == [] and requests == []
    assert dom.count("<svg") >= 10 and "step #7" in dom
    assert shot.stat().st_size > 30_000
    metrics = ["ppl_ratio", "kld_mean", "flip_rate", "sink_hidden_cos", "attn_js"]
    m = _measure(rep / "history.html", tmp_path / "measure", metrics)
    assert m["vw"] == 1400, m
    for metric, boxes in m["metrics"].items():
        assert boxes, f"no panel for {metric}"
        off = [b for b in boxes if b["right"] > 1400 or b["left"] < 0]
        assert not off, f"{metric}'s panel lies outside the 1400 px viewport: {off}"


def test_prune_keeps_pins_and_the_newest_of_each_input_set(nightly, tmp_path, capsys):
    src, ids = nightly
    rep = tmp_path / "rep"
    shutil.copytree(src, rep)
    assert _history(capsys, rep, "--prune", "-1")[0] == 4
    code, out, err = _history(capsys, rep, "--prune", "2")
    assert code == 0, err
    kept = {ids[i - 1] for i in (PIN_AT, OTHER_INPUTS_AT, N_RUNS - 1, N_RUNS)}
    index = [json.loads(ln)["run_id"] for ln in (rep / "index.jsonl").read_text().splitlines()]
    assert set(index) == kept and index == [i for i in ids if i in kept]
    assert {d.name for d in rep.iterdir() if d.is_dir()} == kept  # no run directory, no leftover
    assert f"pruned {N_RUNS - len(kept)} run(s)" in out
    pins = [json.loads(ln)["run_id"] for ln in (rep / "pins.jsonl").read_text().splitlines()]
    assert pins == [ids[PIN_AT - 1]]
    page = (rep / "history.html").read_text()
    assert ids[0] not in page and ids[PIN_AT - 1] in page
    code, out, _ = _history(capsys, rep)
    assert code == 0 and "PINNED" in out
    # pruning to nothing still keeps the pin and the newest run of each input set
    assert _history(capsys, rep, "--prune", "0")[0] == 0
    index = [json.loads(ln)["run_id"] for ln in (rep / "index.jsonl").read_text().splitlines()]
    assert set(index) == {ids[PIN_AT - 1], ids[OTHER_INPUTS_AT - 1], ids[-1]}
