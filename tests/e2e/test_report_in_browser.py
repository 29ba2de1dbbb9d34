"""report.html of a real run: every section, hostile prompt text escaped, and a headless browser's view.

The browser test needs Debian's chromium (CI installs it; set QS_REQUIRE_BROWSER=1 to make its
absence a failure instead of a skip).
"""

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.metrics.catalogue import BY_NAME, GATE_METRICS
from harness.report.html import render

pytestmark = pytest.mark.slow

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "</table></td><b>unbalanced",
    "\"quotes' & <!-- comment",
]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _wide_results():
    """Six configurations with long names, a gate on every gate metric, long failure details and a long note."""

    def gate(i, metric):
        op = "min" if BY_NAME[metric].higher_is_better else "max"
        detail = f"{metric} = 0.1235 <b>detail</b>"
        return dict(metric=metric, value=0.123456, limit=0.1, op=op, passed=i % 3 != 0, detail=detail)

    gates = [{**gate(i, m), "ci_low": 0.0123456, "ci_high": 0.3456789} for i, m in enumerate(GATE_METRICS)]

    def config(spec, gates, **extra):
        verdict = "fail" if any(not g["passed"] for g in gates) else "pass"
        views = {"sink_hidden_cos": {"value": 0.8812, "where": "layer <3>"}}
        return {"spec": spec, "verdict": verdict, "gates": gates, "metrics": {}, "gate_views": views, **extra}

    configs = [config(f"gptq-w4g128+kv-quanto-w{b}-g64-r128", gates) for b in (2, 3, 4, 6, 8)]
    skip = "needs autoawq: pip install 'quantsink[awq]' " + "x" * 120
    configs.append(config("awq-w4g128", [], verdict="skipped", skip_reason=skip))
    return {"run_id": "r", "verdict": "fail", "model": {"id": "m"}, "corpus": {}, "prompts": {}, "configs": configs}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_run_in):
    """A real tiny run whose prompts are hostile markup."""
    tmp = tmp_path_factory.mktemp("html")
    prompts = tmp / "p.jsonl"
    prompts.write_text(
        "".join(json.dumps({"id": f"h{i}", "prompt": p, "references": [p[:5]]}) + "\n" for i, p in enumerate(HOSTILE))
    )
    run = tiny_run_in(tmp)
    res = run(quant="rtn-w8,rtn-w2g16", n_sequences=4, seq_len=48, max_new_tokens=6, prompts=str(prompts))
    assert res["verdict"] == "inconclusive"
    return run.run_dir


def test_report_has_every_section_and_escapes(run_dir):
    page = (run_dir / "report.html").read_text()
    for section in (
        "<h2>Verdict</h2>",
        "Sink mass per layer",
        "Head heatmaps",
        "Next-token KL distribution",
        "Sink hidden-state cosine per layer",
        "Sink key/value error per layer",
        "Behaviour probes",
        "Loss and perplexity",
        "<h2>Generations</h2>",
        "Environment and inputs",
        "corpus sha256",
        "prompts sha256",
    ):
        assert section in page, section
    assert page.count("<svg") >= 4
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;/table&gt;&lt;/td&gt;&lt;b&gt;unbalanced" in page
    assert "Content-Security-Policy" in page


def _chromium(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={out / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--log-net-log={out / 'net.json'}",
    ]
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
    shot = _chromium(
        path.as_uri(), out, "--hide-scrollbars", "--window-size=1300,2600", f"--screenshot={out / 'shot.png'}"
    )
    return dom.stdout, problems + _console_problems(shot.stderr), requests, out / "shot.png"


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("QS_REQUIRE_BROWSER") != "1",
    reason="chromium not installed (apt-get install chromium)",
)
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
    assert "rtn-w2g16" in dom and any(v in dom for v in ("FAIL", "PASS", "INCONCLUSIVE"))
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    if os.environ.get("QS_SCREENSHOT_OUT"):
        shutil.copy(shot, os.environ["QS_SCREENSHOT_OUT"])

    # At 1400 px the sink gates lie within the viewport's width, in the real run's report and
    # in a wide one (six configurations with long names, every gate metric, long failure details);
    # in the real run's report they are on the first screen.
    wide = tmp_path / "wide.html"
    wide.write_text(render(_wide_results()))
    for page, out in ((run_dir / "report.html", tmp_path / "m-run"), (wide, tmp_path / "m-wide")):
        m = _measure(page, out, ["sink_hidden_cos", "attn_js"])
        assert m["vw"] == 1400, m
        assert m["sw"] <= 1400, f"{page.name} is {m['sw']} px wide: wider than the 1400 px window"
        for metric, boxes in m["metrics"].items():
            assert boxes, f"{page.name}: no element for {metric}"
            off = [b for b in boxes if b["right"] > 1400 or b["left"] < 0]
            assert not off, f"{page.name}: {metric} lies outside the 1400 px viewport: {off}"
            if page.name == "report.html":
                assert any(b["bottom"] <= m["vh"] for b in boxes), f"{metric} below the first screen"


MEASURE_JS = """<script>
addEventListener('load', () => {
  const r = {vw: document.documentElement.clientWidth, sw: document.documentElement.scrollWidth, vh: innerHeight,
    metrics: {}};
  for (const m of %s) {
    const els = new Set([...document.querySelectorAll('[data-metric]')].filter(e => e.dataset.metric === m)
      .concat([...document.querySelectorAll('th')].filter(e => e.textContent.trim() === m)));
    r.metrics[m] = [...els].map(e => { const b = e.getBoundingClientRect();
      return {tag: e.tagName, left: b.left, right: b.right, top: b.top, bottom: b.bottom}; });
  }
  const p = document.createElement('pre'); p.id = 'qs-measure'; p.textContent = JSON.stringify(r);
  document.body.appendChild(p);
});
</script>"""


def _measure(page: Path, out: Path, metrics: list[str], width=1400, height=1000) -> dict:
    """Layout boxes of the elements for `metrics` (marked data-metric, or a <th> holding the name) in a
    headless window `width` px wide. The report forbids scripts, so a copy whose CSP also allows one
    inline script is measured: the same markup and style, laid out the same way."""
    out.mkdir(parents=True, exist_ok=True)
    src = page.read_text()
    assert "default-src 'none';" in src
    probe = out / "probe.html"
    probe.write_text(
        src.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1).replace(
            "</body>", MEASURE_JS % json.dumps(metrics) + "</body>", 1
        )
    )
    res = _chromium(probe.as_uri(), out, "--hide-scrollbars", f"--window-size={width},{height}", "--dump-dom")
    found = re.search(r'<pre id="qs-measure">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))
