"""lm-evaluation-harness on a model the run already holds: an lm_eval LM over our model and tokenizer (no reload).

loglikelihood and generate_until score exactly as the native path does (measure/tasks.py), so a task written both
ways gives the same per-sample log-likelihoods; lm-eval builds the requests and computes the task's own metrics.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

from harness.measure.tasks import greedy, loglikelihoods

MAX_GEN_TOKS = 32  # generate_until's length when the task does not say


def wrap(model, tok, bos: str = "auto", batch_size: int = 16, kv=None):
    """An lm_eval.api.model.LM scoring with `model` (lm_eval imported here: the extra quantsink[lmeval])."""
    from lm_eval.api.model import LM

    class Wrapped(LM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return loglikelihoods(model, tok, [r.args for r in requests], bos, batch_size, kv)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            out = []
            for r in requests:  # the whole text after the start token, in windows of the model's positions
                (text,) = r.args
                ids = tok(text, add_special_tokens=False)["input_ids"]
                most = int(getattr(model.config, "max_position_embeddings", 2048)) - 1
                total = 0.0
                for a in range(0, len(ids), most):
                    ctx = tok.decode(ids[max(0, a - 1) : a]) if a else ""
                    total += loglikelihoods(model, tok, [(ctx, tok.decode(ids[a : a + most]))], bos, 1, kv)[0][0]
                out.append(total)
            return out

        def generate_until(self, requests, disable_tqdm: bool = False):
            out = []
            for r in requests:
                ctx, kw = r.args
                until = kw.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                (text,) = greedy(model, tok, [ctx], int(kw.get("max_gen_toks", MAX_GEN_TOKS)), bos, 1, kv)
                for u in until:
                    if u and u in text:
                        text = text[: text.index(u)]
                out.append(text)
            return out

    return Wrapped()


@contextlib.contextmanager
def _cwd(folder: str):
    """lm-eval reads relative data_files from the working directory: run it in the YAML's folder."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def evaluate(lm, name: str, include: str) -> tuple[list[dict], dict]:
    """Run one lm-eval task on lm: (per-sample records lm-eval logged, the task's own aggregated metrics)."""
    from lm_eval import evaluator
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm-eval").setLevel(logging.WARNING)  # its per-task INFO lines; warnings still show
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    with _cwd(include), contextlib.redirect_stderr(io.StringIO()):  # its progress bars (the run has its own)
        manager = TaskManager(include_path=str(Path(include)), include_defaults=False)
        res = evaluator.simple_evaluate(
            model=lm,
            tasks=[name],
            task_manager=manager,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=None,  # the run's global random state is left alone (nothing here samples)
            numpy_random_seed=None,
            torch_random_seed=None,
            fewshot_random_seed=0,  # a task's few-shot examples: seeded, so both models see the same ones
        )
    metrics = {
        k.split(",")[0]: v
        for k, v in (res["results"].get(name) or {}).items()
        if isinstance(v, int | float) and "," in k and "_stderr" not in k  # "metric,filter" keys only
    }
    return list(res["samples"].get(name) or []), metrics
