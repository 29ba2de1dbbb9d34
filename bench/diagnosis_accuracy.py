"""How often the diagnosis names what broke: the fault zoo (harness/testing/zoo.py) at two strengths, scored
against each fault's planted ground truth (results.json info.planted).

    python bench/diagnosis_accuracy.py                      # tiny-sink, then the default model (smollm2-135m)
    python bench/diagnosis_accuracy.py --model tiny-sink    # one model; --quick: one strength, fewer texts

Prints one row per configuration (true family and layer, predicted family and layer), the confusion of
predicted vs true family and the layer error of localized faults; the last line is
`family_accuracy=<share> layer_exact=<share> benign_called_damage=<count>`.
A configuration whose verdict is pass and that has no diagnosis counts as "no damage" (the run found none). A
planted fault on which no gate failed is listed apart and not scored: "no damage found" is then the right answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import harness.testing  # noqa: F401  (registers the fault zoo)
from harness.cli import run

TINY = "tiny-sink"
DEFAULT = "smollm2-135m"
STRENGTHS = (0.5, 1.0)
LOCALIZED = ("sink damage", "head damage", "local damage")


def zoo(model: str, strengths) -> list[str]:
    """The zoo's specs for a model: localized faults in a middle layer (tiny: layer 2 of 4; smollm2: 15 of 30)."""
    tiny = model.startswith("tiny-")
    mid, head = (2, 1) if tiny else (15, 4)
    mlp_layer = 2 if tiny else 20
    out = []
    for s in strengths:
        t = f"-s{s:g}" if s != 1.0 else ""
        out += [
            f"fault-neuron{t}",
            f"fault-query-l{mid}h{head}{t}",
            f"fault-key-l{mid}h{head % 2}{t}",
            f"fault-mlp-l{mlp_layer}{t}",
            f"fault-kvsink{t}",
            f"fault-late-n{LATE_AFTER[tiny]}{t}",
            f"fault-diffuse{t}",
        ]
    return out + ["fault-bf16", "fault-fp16"]


LATE_AFTER = {True: 12, False: 24}


def settings(model: str, quick: bool, report_dir: str, quant: str) -> dict:
    tiny = model.startswith("tiny-")
    s = dict(
        model=model,
        quant=quant,
        report_dir=report_dir,
        protect_sink=True,
        no_cache=True,  # the zoo's damage is not part of the results cache's key: measure every time
        n_sequences=8 if quick else 16,
        seq_len=64 if tiny else 128,
        max_new_tokens=LATE_AFTER[tiny] - 4,
        n_prompts=8 if quick else 16,
        long_new_tokens=LATE_AFTER[tiny] * 3,
        long_n_prompts=4 if quick else 8,
        n_open_prompts=8 if quick else 16,
        n_stability_prompts=2,
        n_probe_sequences=2,
    )
    return s


def predicted(c: dict) -> tuple[str, int | None, list]:
    d = c.get("diagnosis")
    if not d:
        return ("no damage" if c.get("verdict") == "pass" else "unclear"), None, []
    return d["family"], d.get("layer"), d.get("heads") or []


def undetected(r: dict) -> bool:
    """A planted fault no gate failed on: the diagnosis rightly says "no damage found" (inconclusive gates are
    thin evidence, not damage), so it is listed apart and not scored; benign ones are always scored."""
    return r["true"] != "no damage" and not r["failed"] and not r.get("error")


def score(rows: list[dict]) -> dict:
    rows = [r for r in rows if not undetected(r)]
    fam_ok = sum(r["true"] == r["pred"] for r in rows)
    loc = [r for r in rows if r["true"] in LOCALIZED]
    layer_ok = sum(r["true_layer"] == r["pred_layer"] for r in loc)
    benign = sum(r["true"] == "no damage" and r["pred"] != "no damage" for r in rows)
    return {
        "family_accuracy": fam_ok / len(rows) if rows else 0.0,
        "layer_exact": layer_ok / len(loc) if loc else 0.0,
        "benign_called_damage": benign,
    }


def confusion(rows: list[dict]) -> str:
    trues = sorted({r["true"] for r in rows})
    preds = sorted({r["pred"] for r in rows} | set(trues))
    counts = Counter((r["true"], r["pred"]) for r in rows)
    head = "| true \\ predicted | " + " | ".join(preds) + " |"
    lines = [head, "|" + "---|" * (len(preds) + 1)]
    for t in trues:
        lines.append(f"| {t} | " + " | ".join(str(counts[(t, p)] or "") for p in preds) + " |")
    return "\n".join(lines)


def measure(model: str, quick: bool, report_root: Path) -> list[dict]:
    strengths = STRENGTHS[1:] if quick else STRENGTHS
    specs = zoo(model, strengths)
    t0 = time.perf_counter()
    res = run(settings(model, quick, str(report_root / model), ",".join(specs)), progress=lambda m: None)
    print(f"{model}: {len(specs)} configurations in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for c in res["configs"]:
        if c.get("recommended_for"):
            continue
        truth = (c.get("info") or {}).get("planted") or {}
        fam, layer, heads = predicted(c)
        rows.append(
            {
                "model": model,
                "spec": c["spec"],
                "verdict": c.get("verdict"),
                "failed": [g["metric"] for g in c.get("gates") or [] if g.get("outcome") == "fail"],
                "error": c.get("error"),  # a measurement that ended in an error is scored (a miss), never skipped
                "true": truth.get("family"),
                "true_layer": truth.get("layer"),
                "true_heads": truth.get("heads"),
                "pred": fam,
                "pred_layer": layer,
                "pred_heads": heads,
                "summary": (c.get("diagnosis") or {}).get("summary", ""),
            }
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help=f"model(s) to run (default: {TINY} and {DEFAULT})")
    ap.add_argument("--quick", action="store_true", help="one strength (1.0) and fewer texts")
    ap.add_argument("--json", help="write every row here")
    a = ap.parse_args(argv)
    models = a.model or [TINY, DEFAULT]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in models:
            rows += measure(m, a.quick, Path(tmp))
    for r in rows:
        print(
            f"{r['model']:14} {r['spec']:26} {r['verdict'] or '':12} true {r['true']} @{r['true_layer']}"
            f" {r['true_heads'] or ''} | predicted {r['pred']} @{r['pred_layer']} {r['pred_heads'] or ''}"
        )
    missed = [r for r in rows if undetected(r)]
    names = ", ".join(f"{r['model']} {r['spec']}" for r in missed) or "none"
    print(f"\nplanted faults no gate failed on (not scored): {names}")
    errors = [f"{r['model']} {r['spec']} ({r['error']})" for r in rows if r.get("error")]
    print(f"measurements that ended in an error (scored as misses): {', '.join(errors) or 'none'}")
    rows = [r for r in rows if not undetected(r)]
    print()
    print(confusion(rows))
    loc = [r for r in rows if r["true"] in LOCALIZED]
    errs = [abs(r["pred_layer"] - r["true_layer"]) for r in loc if r["pred_layer"] is not None]
    print(f"\nlayer error of localized faults: {Counter(errs)} (none named: {len(loc) - len(errs)})")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    s = score(rows)
    print(
        f"family_accuracy={s['family_accuracy']:.3f} layer_exact={s['layer_exact']:.3f} "
        f"benign_called_damage={s['benign_called_damage']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
