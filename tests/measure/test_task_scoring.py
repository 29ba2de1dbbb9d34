"""Task scoring on a tiny model: the native path and lm-eval's path (same items as an lm-eval YAML over local JSONL,
run through lm-eval's own API on our model) agree per sample; exact match; lm-eval's acc_norm definition."""

import json

import numpy as np
import pytest

from harness.data.tasksets import TASKS_DIR, lmeval_yaml, load_plain, mc_context
from harness.measure.tasks import encode_pair, exact_match, loglikelihoods, normalise

TOL = 1e-4  # nats: the two paths batch the same rows differently (padding), so float sums may differ slightly


def _subset(n_per_family=2):
    rows, seen = [], {}
    for line in (TASKS_DIR / "basics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if seen.get(d["family"], 0) < n_per_family:
            rows.append(d)
            seen[d["family"]] = seen.get(d["family"], 0) + 1
    return rows


class _Spec:
    bos, gen_batch_size, max_new_tokens = "auto", 16, 8


def test_native_and_lmeval_loglikelihoods_and_accuracies_agree(tiny, tmp_path):
    pytest.importorskip("lm_eval")
    from harness.data.tasksets import load_tasks
    from harness.engine.tasks import score_lmeval, score_plain

    model, tok = tiny("llama")
    rows = _subset()
    data = tmp_path / "sub.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in rows))
    (tmp_path / "sub.yaml").write_text(lmeval_yaml("sub_lmeval", str(data)))
    native = score_plain(load_plain(data), model, tok, _Spec())
    (task,) = load_tasks(str(tmp_path / "sub.yaml"))
    via = score_lmeval(task, model, tok, _Spec())
    assert [s["id"] for s in via["samples"]] == [s["id"] for s in native["samples"]]
    diff = max(abs(a - b) for n, v in zip(native["samples"], via["samples"]) for a, b in zip(n["ll"], v["ll"]))
    print(f"largest |native - lm-eval| log-likelihood over {len(rows)} items: {diff:.3g} nats")
    assert diff <= TOL
    assert [s["correct"] for s in native["samples"]] == [s["correct"] for s in via["samples"]]
    assert native["metrics"]["acc"] == pytest.approx(via["metrics"]["acc"])
    assert native["metrics"]["acc_norm"] == pytest.approx(via["metrics"]["acc_norm"])


def test_loglikelihood_is_the_sum_over_continuation_tokens(tiny):
    import torch

    model, tok = tiny("llama")
    ctx, cont = mc_context("What is 2 plus 2?"), " 4"
    head, tail = encode_pair(tok, ctx, cont)
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0].float(), -1)
    want = sum(float(lp[len(head) + j - 1, t]) for j, t in enumerate(tail))
    ((got, _),) = loglikelihoods(model, tok, [(ctx, cont)])
    assert got == pytest.approx(want, abs=1e-4)
    # batched with other rows of other lengths: the same value
    many = loglikelihoods(model, tok, [(ctx + " and more words", cont), (ctx, cont), ("x", " y")], batch_size=3)
    assert many[1][0] == pytest.approx(want, abs=1e-4)


def test_trailing_space_moves_to_the_continuation(tiny):
    _, tok = tiny("llama")
    assert encode_pair(tok, "Answer: ", "4") == encode_pair(tok, "Answer:", " 4")


def test_acc_norm_is_loglik_over_choice_characters(tiny, tmp_path):
    from harness.engine.tasks import score_plain

    model, tok = tiny("llama")
    rows = _subset(1)[:6]
    data = tmp_path / "s.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in rows))
    out = score_plain(load_plain(data), model, tok, _Spec())
    for d, s in zip(rows, out["samples"]):
        ll = np.asarray(s["ll"])
        assert s["correct_norm"] == (int(np.argmax(ll / [len(c) for c in d["choices"]])) == d["answer"])
        assert s["correct"] == (int(np.argmax(ll)) == d["answer"])


def test_exact_match_normalises_case_space_and_first_line():
    assert normalise("  Paris.\nmore text") == "paris"
    assert exact_match("\n  PARIS  is it", ["paris is it"])
    assert not exact_match("Lyon", ["Paris"])


def test_generation_items_scored_by_exact_match(tiny, tmp_path):
    from harness.engine.tasks import score_plain

    model, tok = tiny("llama")
    data = tmp_path / "g.jsonl"
    data.write_text(json.dumps({"prompt": "Hello", "answers": ["zzz-never"], "family": "g"}) + "\n")
    (s,) = score_plain(load_plain(data), model, tok, _Spec())["samples"]
    assert s["correct"] is False and isinstance(s["choice"], str) and "ll" not in s


def test_native_agrees_with_lm_evals_own_hflm_on_the_same_loaded_model(tiny, tmp_path):
    """An independent check of the tokenization and scoring: lm-eval's own HFLM over the same model object."""
    pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM

    from harness.engine.tasks import score_plain
    from harness.measure.lmeval import evaluate

    model, tok = tiny("llama")
    rows = _subset()
    data = tmp_path / "h.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in rows))
    (tmp_path / "h.yaml").write_text(lmeval_yaml("h_lmeval", str(data)))
    native = score_plain(load_plain(data), model, tok, _Spec())
    samples, metrics = evaluate(HFLM(pretrained=model, tokenizer=tok, batch_size=16), "h_lmeval", str(tmp_path))
    diff = max(
        abs(a - float(r[0])) for n, s in zip(native["samples"], samples) for a, r in zip(n["ll"], s["filtered_resps"])
    )
    print(f"largest |native - lm-eval HFLM| log-likelihood over {len(rows)} items: {diff:.3g} nats")
    assert diff <= TOL
    assert metrics["acc"] == pytest.approx(native["metrics"]["acc"])
    assert metrics["acc_norm"] == pytest.approx(native["metrics"]["acc_norm"])
