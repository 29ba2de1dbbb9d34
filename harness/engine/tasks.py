"""The user's tasks (--tasks) on the models the run holds: the baseline's side once per task, each configuration's
side on its own model, paired per sample into the task gates.

Plain-format tasks are scored natively (measure/tasks.py); lm-eval tasks through lm-eval's own API over the same
models (measure/lmeval.py). The baseline's per-sample results are computed once per task and model and cached on
disk (keyed by the task's content, the weights and everything that changes the scores).
"""

from __future__ import annotations

import contextlib
import importlib.util

import numpy as np

from harness.config.identity import generation_key
from harness.data.tasksets import LMEVAL_INSTALL, gen_context, mc_context
from harness.errors import QuantsinkError
from harness.metrics.tasks import margin, task_metrics
from harness.system.files import cache_get, cache_put, cache_root, file_lock


def _untimed(name: str):
    return contextlib.nullcontext()


def lmeval_installed() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def skipped_reason(task) -> str | None:
    """Why a task cannot run here (an lm-eval task without lm-eval installed), else None."""
    if task.kind == "lmeval" and not lmeval_installed():
        return f"lm-eval task '{task.name}' skipped: lm-eval is not installed; {LMEVAL_INSTALL}"
    return None


def score_plain(task, model, tok, spec, kv=None) -> dict:
    """Per-sample results of a plain task under one model, and its accuracies (acc, acc_norm / exact_match)."""
    from harness.measure.tasks import exact_match, greedy, loglikelihoods

    mc = [it for it in task.items if it.multiple_choice]
    pairs = [(mc_context(it.text), " " + c) for it in mc for c in it.choices]
    lls = iter(loglikelihoods(model, tok, pairs, spec.bos, spec.gen_batch_size, kv) if pairs else [])
    gen = [it for it in task.items if not it.multiple_choice]
    outs = iter(
        greedy(model, tok, [gen_context(it.text) for it in gen], spec.max_new_tokens, spec.bos, spec.gen_batch_size, kv)
        if gen
        else []
    )
    samples = []
    for it in task.items:
        if it.multiple_choice:
            ll = [next(lls)[0] for _ in it.choices]
            pred = int(np.argmax(ll))
            norm = int(np.argmax(np.asarray(ll) / [len(c) for c in it.choices]))  # lm-eval's acc_norm
            samples.append(
                {
                    "id": it.id,
                    "family": it.family,
                    "correct": pred == it.answer,
                    "correct_norm": norm == it.answer,
                    "choice": it.choices[pred],
                    "ll": ll,
                    "margin": margin(ll, it.answer),
                }
            )
        else:
            out = next(outs)
            samples.append({"id": it.id, "family": it.family, "correct": exact_match(out, it.answers), "choice": out})
    metrics = {}
    if mc:
        metrics["acc"] = float(np.mean([s["correct"] for s in samples if "ll" in s]))
        metrics["acc_norm"] = float(np.mean([s["correct_norm"] for s in samples if "ll" in s]))
    if gen:
        metrics["exact_match"] = float(np.mean([s["correct"] for s in samples if "ll" not in s]))
    return {"samples": samples, "metrics": metrics}


def score_lmeval(task, model, tok, spec, kv=None) -> dict:
    """Per-sample results of an lm-eval task as lm-eval logged them, and the task's metrics as lm-eval computes them."""
    from harness.measure.lmeval import evaluate, wrap

    raw, metrics = evaluate(wrap(model, tok, spec.bos, spec.gen_batch_size, kv), task.name, task.include)
    samples = []
    for s in raw:
        names = s.get("metrics") or []
        correct = bool(s.get(names[0], 0)) if names else False
        resps = s.get("filtered_resps") or []
        target = s.get("target")
        args = s.get("arguments") or []
        if resps and isinstance(resps[0], list | tuple) and len(resps[0]) == 2:  # log-likelihoods per choice
            ll = [float(r[0]) for r in resps]
            pred = int(np.argmax(ll))
            choice = str(args[pred][1]).strip() if pred < len(args) else str(pred)
            m = margin(ll, target) if isinstance(target, int) else None
        else:
            ll, m = None, None
            choice = str(resps[0]) if resps else ""
        doc = s.get("doc") or {}
        samples.append(
            {
                "id": str(doc.get("id", s.get("doc_id"))),
                "family": str(doc.get("family", task.name)),
                "correct": correct,
                "choice": choice,
                "ll": ll,
                "margin": m,
                **{k: s[k] for k in names if isinstance(s.get(k), int | float)},
            }
        )
    return {"samples": samples, "metrics": metrics}


def score(task, model, tok, spec, kv=None) -> dict:
    return (score_lmeval if task.kind == "lmeval" else score_plain)(task, model, tok, spec, kv)


def baseline_side(base) -> dict:
    """{task name: the baseline's results} for every runnable task, computed once per run and cached on disk."""
    got = base.__dict__.get("_task_results")
    if got is not None:
        return got
    got = {}
    for t in base.inputs.tasks or ():
        if skipped_reason(t):
            continue
        key = generation_key(base.spec, base.inputs, base.threads, f"task:{t.kind}:{t.name}:{t.sha256}", [], 0)
        path = cache_root() / "baseline-tasks" / f"{key}.json"
        with file_lock(path.with_suffix(".lock")):
            hit = cache_get(path)
            if hit is None:
                base.progress(f"baseline: task {t.name} ({t.kind})")
                with base.phases.time(f"task: {t.name}"):
                    hit = score(t, base.model, base.tokenizer, base.spec)
                cache_put(path, hit)
            else:
                base.progress(f"baseline: task {t.name}: cached ({path.name})")
        got[t.name] = hit
    base.__dict__["_task_results"] = got
    return got


def pair_rows(task: str, base_res: dict, q_res: dict) -> list[dict]:
    """Paired per-sample rows (results.json's evidence.tasks) of one task."""
    rows = []
    for b, q in zip(base_res["samples"], q_res["samples"]):
        if b["id"] != q["id"]:
            raise QuantsinkError(f"task {task}: sample order differs between the models ({b['id']} vs {q['id']})")
        rows.append(
            {
                "task": task,
                "id": b["id"],
                "family": b["family"],
                "correct_baseline": bool(b["correct"]),
                "correct_quantized": bool(q["correct"]),
                "choice_baseline": b["choice"],
                "choice_quantized": q["choice"],
                "margin_baseline": b.get("margin"),
                "margin_quantized": q.get("margin"),
                "ll_baseline": b.get("ll"),
                "ll_quantized": q.get("ll"),
            }
        )
    return rows


def designs(rows: list[dict], task: str | None = None) -> dict:
    """How the task gates' sample count is set (every task's rows, or one task's: its own gates)."""
    n = len(rows)
    return {
        "tasks": {
            "option": "--tasks",
            "value": n,
            "max_value": n,
            "unit": "task samples" if task is None else f"samples of task {task}",
            "more": "give a task with more samples and families (--tasks PATH)"
            if task is None
            else f"give task {task} more samples and families",
        }
    }


def measure(base, participant, timed=_untimed) -> tuple[dict, dict, list[dict]]:
    """(metrics, gate views, paired per-sample rows) of one configuration on every task of the run. An lm-eval task
    without lm-eval is skipped with the install line; under --signoff that fails the configuration."""
    tasks = base.inputs.tasks or ()
    if not tasks:
        return {}, {}, []
    skipped = {t.name: skipped_reason(t) for t in tasks if skipped_reason(t)}
    if skipped and base.spec.signoff:
        raise QuantsinkError(next(iter(skipped.values())) + " (--signoff runs every task)")
    for why in skipped.values():
        base.progress(why)
    side = baseline_side(base)
    rows, scores = [], {n: {"skipped": w} for n, w in skipped.items()}
    for t in tasks:
        if t.name in skipped:
            continue
        with timed(f"task: {t.name}"):
            mine = score(t, participant.model, base.tokenizer, base.spec, participant.kv)
        rows += pair_rows(t.name, side[t.name], mine)
        n = len(mine["samples"])
        scores[t.name] = {
            "kind": t.kind,
            "samples": n,
            "baseline": side[t.name]["metrics"],
            "quantized": mine["metrics"],
        }
    absent = "; ".join(skipped.values()) if not rows else None
    met, views = task_metrics(rows, designs, absent, {t.name: skipped.get(t.name) for t in tasks})
    met["task_scores"] = scores
    return met, views, rows
