"""Teacher-forced answer margins against a row-at-a-time computation with every logit kept."""

import torch

from harness.measure.answers import Deciding, _margins, deciding_tokens, margins_at
from harness.measure.generation import encode_prompt

PROMPTS = ["Q: 2+2=\nA:", "The capital of France is", "x", "Once upon a time, in a land far away, there"]


def _row_margins(model, row: list[int], pos: list[int]) -> torch.Tensor:
    """Margins of row's own tokens at pos, from one unpadded forward with the full logits."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([row])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    p = torch.tensor(pos)
    return _margins(logp[p - 1], torch.tensor(row)[p])


def test_deciding_tokens_and_margins_match_unbatched_full_logits(tiny):
    model, tok = tiny("llama")
    g = torch.Generator().manual_seed(0)
    conts = [torch.randint(5, 200, (n,), generator=g).tolist() for n in (3, 7, 1, 12)]
    got = deciding_tokens(model, tok, PROMPTS, conts, batch_size=3)  # batches mix lengths and are reordered
    for p, c, d in zip(PROMPTS, conts, got):
        head = encode_prompt(tok, p)
        pos = list(range(len(head), len(head) + len(c)))  # random ids hold no newline: the whole continuation
        m = _row_margins(model, head + c, pos)
        j = int(torch.argmin(m))
        assert (d.position, d.token) == (pos[j], c[j])
        assert abs(d.margin - float(m[j])) < 1e-4
    again = margins_at(model, tok, PROMPTS, conts, got, batch_size=2)
    assert all(abs(a - d.margin) < 1e-4 for a, d in zip(again, got))  # the same model reads the same margin


def test_margins_at_skips_texts_without_a_deciding_token(tiny):
    model, tok = tiny("llama")
    d = [Deciding(-1, -1, float("nan")), *deciding_tokens(model, tok, PROMPTS[1:2], [[17, 18]])]
    out = margins_at(model, tok, PROMPTS[:2], [[], [17, 18]], d)
    assert out[0] != out[0] and out[1] == out[1]  # NaN for the text without one, a number for the other
