"""report.html: content, escaping of hostile model/prompt text, and a real headless-browser check.

The browser test needs Debian's chromium (CI installs it; set QS_REQUIRE_BROWSER=1 to make its
absence a failure instead of a skip).
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.html_report import render

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "</table></td><b>unbalanced",
           "\"quotes' & <!-- comment"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real tiny run whose prompts are hostile markup."""
    from harness.api import run

    tmp = tmp_path_factory.mktemp("html")
    prompts = tmp / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"h{i}", "prompt": p, "references": [p[:5]]}) + "\n"
                               for i, p in enumerate(HOSTILE)))
    res = run(dict(model="tiny-llama", quant="rtn-w8,rtn-w2g16", n_sequences=4, seq_len=48, max_new_tokens=6,
                   prompts=str(prompts), report_dir=str(tmp / "rep")))
    return tmp / "rep" / res["run_id"]


def test_report_has_every_section_and_escapes(run_dir):
    page = (run_dir / "report.html").read_text()
    for section in ("<h2>Verdict</h2>", "Sink mass per layer", "Head heatmaps", "Next-token KL distribution",
                    "Sink hidden-state cosine per layer", "Sink key/value error per layer", "Behaviour probes",
                    "Loss and perplexity", "<h2>Generations</h2>",
                    "Environment and inputs", "corpus sha256", "prompts sha256"):
        assert section in page, section
    assert page.count("<svg") >= 4
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;/table&gt;&lt;/td&gt;&lt;b&gt;unbalanced" in page
    assert 'Content-Security-Policy' in page


def test_model_output_is_escaped_and_divergence_marked():
    results = {"run_id": "r", "verdict": "pass", "model": {"id": "<b>m</b>"}, "corpus": {}, "prompts": {},
               "configs": [{"spec": "rtn-w4", "verdict": "pass", "gates": [], "metrics": {},
                            "generations": [{"prompt": "p", "reference": None, "baseline": "same <i>x",
                                             "quantized": "same <script>y", "first_divergence": 1}]}]}
    page = render(results)
    assert "same &lt;<mark>script&gt;y</mark>" in page  # common prefix "same <", the rest marked
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<script>" not in page


def _chromium(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={out / 'profile'}", "--enable-logging=stderr", "--v=0",
             f"--log-net-log={out / 'net.json'}"]
    return subprocess.run([CHROMIUM, *flags, *extra, url], capture_output=True, text=True, timeout=120)


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (the browser's own background traffic has no file:// key)."""
    d = json.loads(netlog.read_text())
    start = {v: k for k, v in d["constants"]["logEventTypes"].items()}
    urls = []
    for e in d["events"]:
        p = e.get("params") or {}
        if start.get(e["type"]) == "URL_REQUEST_START_JOB" and "file://" in str(p.get("network_isolation_key")):
            if not str(p.get("url", "")).startswith(("file:", "data:")):
                urls.append(p["url"])
    return urls


def _console_problems(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln and re.search(r"Uncaught|violates|Error", ln)]


def _browse(path: Path, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    dom = _chromium(path.as_uri(), out, "--dump-dom")
    problems, requests = _console_problems(dom.stderr), _page_requests(out / "net.json")
    shot = _chromium(path.as_uri(), out, "--hide-scrollbars", "--window-size=1300,2600",
                     f"--screenshot={out / 'shot.png'}")
    return dom.stdout, problems + _console_problems(shot.stderr), requests, out / "shot.png"


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("QS_REQUIRE_BROWSER") != "1",
                    reason="chromium not installed (apt-get install chromium)")
def test_report_in_a_real_browser(run_dir, tmp_path):
    assert CHROMIUM, "QS_REQUIRE_BROWSER=1 but chromium is not installed"
    # The detectors work: a page with a failing script and a remote image is caught.
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='http://example.invalid/x.png'><script>nope()</script></body></html>")
    _, problems, requests, _ = _browse(bad, tmp_path / "bad")
    assert any("Uncaught" in p for p in problems) and requests == ["http://example.invalid/x.png"]

    dom, problems, requests, shot = _browse(run_dir / "report.html", tmp_path / "good")
    assert problems == [] and requests == []
    assert 'class="verdict"' in dom and dom.count("<svg") >= 4
    assert "<script" not in dom.lower()  # the hostile prompt stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "rtn-w2g16" in dom and ("FAIL" in dom or "PASS" in dom)
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    if os.environ.get("QS_SCREENSHOT_OUT"):
        shutil.copy(shot, os.environ["QS_SCREENSHOT_OUT"])
