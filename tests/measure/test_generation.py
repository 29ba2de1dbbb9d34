"""Greedy generation in batches and the scoring of continuations."""

from harness.measure.generation import generate


def test_batched_equals_unbatched_on_tiny(tiny):
    model, tok = tiny("llama")
    prompts = ["hello", "a much longer prompt with many more bytes", "xyz", "The capital of France is"]
    batched = generate(model, tok, prompts, max_new_tokens=8, batch_size=4)
    single = [generate(model, tok, [p], max_new_tokens=8, batch_size=1)[0] for p in prompts]
    assert batched == single


def test_continuation_nll_equals_one_prompt_at_a_time_full_logits(tiny):
    """Batched, right-padded scoring that keeps only the continuation logits equals scoring each prompt
    alone from full-sequence logits (prompts of different lengths, an empty continuation)."""
    import torch

    from harness.measure.behaviour import continuation_nll
    from harness.measure.generation import encode_prompt

    model, tok = tiny("llama")
    prompts = ["The capital of France is", "1, 2, 3, 4,", "Once upon a time there was a long, long prompt", "Hi"]
    g = torch.Generator().manual_seed(0)
    conts = [torch.randint(0, 100, (n,), generator=g).tolist() for n in (5, 12, 3, 0)]
    got = continuation_nll(model, tok, prompts, conts, batch_size=3)
    for (nll, n), p, c in zip(got, prompts, conts):
        assert n == len(c)
        if not c:
            assert nll == 0.0
            continue
        ids = encode_prompt(tok, p, "auto")
        with torch.no_grad():
            lp = torch.log_softmax(model(input_ids=torch.tensor([ids + c])).logits[0].double(), -1)
        want = -sum(lp[len(ids) - 1 + k, t].item() for k, t in enumerate(c))
        assert abs(nll - want) <= 1e-5 * max(1.0, abs(want))
