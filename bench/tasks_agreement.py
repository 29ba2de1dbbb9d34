"""Native scoring vs lm-eval's own API on the same items: per-sample log-likelihoods and accuracies.

    python bench/tasks_agreement.py --model smollm2-135m [--task basics] [--limit 0]

Writes the plain task's items as an lm-eval YAML over a local JSONL (harness.data.tasksets.lmeval_yaml), scores
both with the model loaded once (native: harness.engine.tasks.score_plain; lm-eval: simple_evaluate over the
wrapped model, harness.measure.lmeval), and prints the largest |difference| of any choice's log-likelihood, the
samples whose correctness differs, and each path's acc and acc_norm; then the same against lm-eval's own HFLM over
the same loaded model (its own tokenization and scoring: an independent check). Needs lm-eval (quantsink[lmeval]).
Last line: `max_abs_diff=<nats> acc_native=<a> acc_lmeval=<a> acc_norm_native=<a> acc_norm_lmeval=<a> mismatches=<n>
max_abs_diff_hflm=<nats> acc_hflm=<a> acc_norm_hflm=<a>`.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness.config.build import build_spec
from harness.data.tasksets import TASKS_DIR, lmeval_yaml, load_plain, load_tasks
from harness.engine.session import Session
from harness.engine.tasks import score_lmeval, score_plain


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="basics", help="a bundled plain task or a plain .jsonl (multiple-choice)")
    ap.add_argument("--limit", type=int, default=0, help="first N items only (0: all)")
    a = ap.parse_args()
    path = Path(a.task) if a.task.endswith(".jsonl") else TASKS_DIR / f"{a.task}.jsonl"
    lines = path.read_text().splitlines()
    lines = lines[: a.limit] if a.limit else lines
    folder = Path(tempfile.mkdtemp(prefix="qs-agree-"))
    data = folder / "items.jsonl"
    data.write_text("\n".join(lines) + "\n")
    (folder / "items.yaml").write_text(lmeval_yaml("items_lmeval", str(data)))
    spec = build_spec({"model": a.model, "quant": "rtn-w8"})
    base = Session(spec, progress=lambda m: print(f"  {m}", flush=True)).prepare().baseline
    model, tok = base.model, base.tokenizer
    t0 = time.perf_counter()
    native = score_plain(load_plain(data), model, tok, spec)
    t1 = time.perf_counter()
    (task,) = load_tasks(str(folder / "items.yaml"))
    via = score_lmeval(task, model, tok, spec)
    t2 = time.perf_counter()
    from lm_eval.models.huggingface import HFLM

    from harness.measure.lmeval import evaluate

    hf_samples, hf_metrics = evaluate(HFLM(pretrained=model, tokenizer=tok, batch_size=16), "items_lmeval", str(folder))
    t3 = time.perf_counter()
    hf = [
        abs(x - float(r[0]))
        for n, v in zip(native["samples"], hf_samples)
        for x, r in zip(n["ll"], v["filtered_resps"])
    ]
    print(f"lm-eval HFLM ({t3 - t2:.1f} s): max |native - HFLM| = {max(hf):.3g} nats, metrics {hf_metrics}")
    diffs = [abs(x - y) for n, v in zip(native["samples"], via["samples"]) for x, y in zip(n["ll"], v["ll"] or [])]
    mism = [n["id"] for n, v in zip(native["samples"], via["samples"]) if n["correct"] != v["correct"]]
    print(f"{len(lines)} items, {len(diffs)} choices; native {t1 - t0:.1f} s, lm-eval {t2 - t1:.1f} s")
    print(json.dumps({"native": native["metrics"], "lm-eval": via["metrics"], "mismatched samples": mism[:20]}))
    print(
        f"max_abs_diff={max(diffs):.3g} acc_native={native['metrics']['acc']:.4f} "
        f"acc_lmeval={via['metrics']['acc']:.4f} acc_norm_native={native['metrics']['acc_norm']:.4f} "
        f"acc_norm_lmeval={via['metrics']['acc_norm']:.4f} mismatches={len(mism)} max_abs_diff_hflm={max(hf):.3g} "
        f"acc_hflm={hf_metrics['acc']:.4f} acc_norm_hflm={hf_metrics['acc_norm']:.4f}"
    )


if __name__ == "__main__":
    main()
