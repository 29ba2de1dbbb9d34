"""Verifying a reference continuation instead of decoding (measure/generation.py reference_ids): whatever the
reference, generate returns what greedy decoding returns; rows one teacher-forced pass proves are not decoded."""

import copy
from types import SimpleNamespace

import pytest
import torch

from harness.measure.generation import generate
from harness.methods.rtn import RTNConfig, apply_rtn

PROMPTS = [
    "The capital of France is",
    "1, 2, 3, 4,",
    "hello",
    "Once upon a time there was a long, long prompt",
    "Q: what?\nA:",
    "xyz abc",
    "a",
    "The quick brown fox jumps over",
    "Paris",
    "12345678901234567890",
    "def f(x):",
    "Roses are red,",
]
NEW = 12
EOS = 34  # a token the tiny Llama emits often: rows stop early on it
NEWLINE, LIKE = 198, 210  # byte-level "\n", made likelier than a token the model emits often


class _Tok:
    """The tiny tokenizer with another end-of-sequence token (generate reads only eos_token_id from it)."""

    def __init__(self, tok, eos):
        self._tok, self.eos_token_id = tok, eos

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.fixture(scope="module")
def models(tiny):
    """(tokenizer with EOS a likely token, {name: model}): the baseline (a tiny Llama whose newline logit is 1.25x
    that of a frequent token, so lines end) and its RTN w4 / w3 copies."""
    model, tok = tiny("llama")
    base = copy.deepcopy(model)
    with torch.no_grad():
        w = base.lm_head.weight
        w[NEWLINE] = 1.25 * w[LIKE]
    out = {"base": base}
    for bits in (4, 3):
        out[f"w{bits}"] = apply_rtn(copy.deepcopy(base), RTNConfig(w_bits=bits, group=16))
    return _Tok(tok, EOS), out


def _both(model, tok, ref, **kw):
    plain = generate(model, tok, PROMPTS, NEW, 5, return_ids=True, **kw)
    stats: dict = {}
    checked = generate(model, tok, PROMPTS, NEW, 5, return_ids=True, reference_ids=ref, stats=stats, **kw)
    return plain, checked, stats


@pytest.mark.parametrize("first_line", [False, True, "mixed"])
@pytest.mark.parametrize("min_new", [0, 4])
@pytest.mark.parametrize("every_batch", [False, True])
def test_verified_continuations_equal_decoded_ones(models, first_line, min_new, every_batch, monkeypatch):
    tok, ms = models
    if every_batch:  # check every batch, however few rows verify
        monkeypatch.setattr("harness.measure.generation.VERIFY_FLOOR", 0.0)
    fl = [i % 2 == 0 for i in range(len(PROMPTS))] if first_line == "mixed" else first_line
    kw = {"first_line": fl, "min_new_tokens": min_new}
    base_t, base_i = generate(ms["base"], tok, PROMPTS, NEW, 5, return_ids=True, **kw)
    # the case is what it claims: some rows stop early, on EOS only from min_new on, some (first_line) at a line's end
    assert any(len(x) < NEW for x in base_i) and all(len(x) >= min_new or NEWLINE in x for x in base_i)
    if first_line is True:
        assert any(NEWLINE in x for x in base_i)
    total = {}
    for name, model in ms.items():
        plain, checked, stats = _both(model, tok, base_i, **kw)
        assert checked == plain, name
        assert stats["verified"] + stats["generated"] == len(PROMPTS)
        total[name] = stats["verified"]
    assert plain[0] != base_t or plain[1] != base_i  # the quantized models do differ from the baseline
    assert total["base"] == len(PROMPTS)  # the baseline proves every one of its own rows
    assert total["w4"] < len(PROMPTS) or total["w3"] < len(PROMPTS)  # and some quantized rows are decoded
    assert total["w4"] + total["w3"] > 0  # while others are verified


def test_a_corrupted_reference_is_decoded_again(models):
    tok, ms = models
    _, base_i = generate(ms["base"], tok, PROMPTS, NEW, 5, return_ids=True, first_line=True)
    bad = [list(x) for x in base_i]
    hit = [r for r in (0, 3, 5, 8) if len(bad[r]) >= 2]
    assert len(hit) >= 2
    for r in hit:
        bad[r][0] = (bad[r][0] + 1) % 256
    bad[1] = bad[1] + [7, 7]  # tokens after the end the model itself stops at change nothing
    for name, model in ms.items():
        plain, checked, stats = _both(model, tok, bad, first_line=True)
        assert checked == plain, name
        if name == "base":
            assert stats == {"verified": len(PROMPTS) - len(hit), "generated": len(hit), "checked": len(PROMPTS)}


def test_checking_stops_once_too_few_rows_verify(models):
    """A reference that is wrong everywhere: the first batch checked shows it, the rest is only decoded."""
    from harness.measure.generation import VERIFY_FLOOR

    tok, ms = models
    _, base_i = generate(ms["base"], tok, PROMPTS, NEW, 5, return_ids=True)
    wrong = [[(t + 1) % 256 for t in x] for x in base_i]
    plain, checked, stats = _both(ms["base"], tok, wrong)
    assert checked == plain
    assert stats == {"verified": 0, "generated": len(PROMPTS), "checked": 2}  # the last batch: shortest prompts
    assert 0 < VERIFY_FLOOR < 1


def test_quantized_kv_and_sink_protection_keep_decoding(models, monkeypatch):
    from harness.measure.kvcache import KVSpec
    from harness.measure.protect import SinkSource

    tok, ms = models
    model = ms["base"]
    _, base_i = generate(model, tok, PROMPTS, NEW, 5, return_ids=True)
    for kw in ({"kv": KVSpec("quanto", 4, 32, 4)}, {"protect": SinkSource(model)}):
        plain, checked, stats = _both(model, tok, base_i, **kw)
        assert checked == plain
        assert stats == {"verified": 0, "generated": len(PROMPTS), "checked": 0}
    monkeypatch.setenv("QS_GEN_VERIFY", "0")
    assert _both(model, tok, base_i)[2] == {"verified": 0, "generated": len(PROMPTS), "checked": 0}


def test_a_generation_config_beyond_argmax_keeps_decoding(models):
    """A repetition penalty in the model's generation config changes decoding: no row is verified."""
    tok, ms = models
    model = copy.deepcopy(ms["base"])
    _, base_i = generate(model, tok, PROMPTS, NEW, 5, return_ids=True)
    model.generation_config.repetition_penalty = 1.5
    plain, checked, stats = _both(model, tok, base_i)
    assert checked == plain and plain[1] != base_i
    assert stats == {"verified": 0, "generated": len(PROMPTS), "checked": 0}


def test_reference_rows_must_match_the_prompts(models):
    tok, ms = models
    with pytest.raises(ValueError, match="reference_ids has 1 rows for 12 prompts"):
        generate(ms["base"], tok, PROMPTS, NEW, reference_ids=[[1]])


def test_the_progress_line_says_how_many_rows_were_verified(models):
    from harness.engine.continuations import generate as participant_generate

    tok, ms = models
    lines: list[str] = []
    base = SimpleNamespace(progress=lines.append, tokenizer=tok, spec=SimpleNamespace(gen_batch_size=5, bos="auto"))
    _, base_i = generate(ms["base"], tok, PROMPTS, NEW, 5, return_ids=True)
    for name in ("base", "w3"):
        part = SimpleNamespace(model=ms[name], kv=None, protect=None)
        out = participant_generate(base, part, PROMPTS, NEW, name, reference=base_i)
        assert out == generate(ms[name], tok, PROMPTS, NEW, 5, return_ids=True)
    # one line a set, at its end (the heartbeat speaks meanwhile): what ran and how much of it was verified
    n, what = len(PROMPTS), f"{len(PROMPTS)} prompts x {NEW} tokens"
    assert lines[0] == f"base: {what}: {n} of {n} rows verified against the baseline's, 0 generated"
    v = int(lines[1].split(": ")[2].split(" of ")[0])
    assert lines[1].startswith(f"w3: {what}: {v} of {n} rows verified against the baseline's, {n - v} ")
    assert v < n
    part = SimpleNamespace(model=ms["base"], kv=None, protect=None)
    participant_generate(base, part, PROMPTS, NEW, "wrong", reference=[[(t + 1) % 256 for t in x] for x in base_i])
    assert lines[2] == f"wrong: {what}: 0 of {n} rows verified against the baseline's, {n} generated " + (
        "(checked 2: too few verified to go on)"
    )
    assert len(lines) == 3


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_every_row_of_the_baseline_is_verified_on_other_architectures(tiny, arch):
    """Left padding with positions counted from each row's first token (gpt2's are learned, absolute)."""
    model, tok = tiny(arch)
    plain = generate(model, tok, PROMPTS, NEW, 5, return_ids=True)
    stats: dict = {}
    assert generate(model, tok, PROMPTS, NEW, 5, return_ids=True, reference_ids=plain[1], stats=stats) == plain
    assert stats == {"verified": len(PROMPTS), "generated": 0, "checked": len(PROMPTS)}


def test_a_model_that_counts_its_decode_steps_is_always_decoded(models, monkeypatch):
    """A forward that depends on how it is called (the test zoo's late fault) is not a function of the prefix: the
    teacher-forced pass would never reach its damage, so such a model marks itself and is decoded."""
    from harness.measure.generation import DECODE_ONLY, verify_enabled

    tok, ms = models
    model = ms["base"]
    _, base_i = generate(model, tok, PROMPTS, NEW, 5, return_ids=True)
    monkeypatch.setattr(model, DECODE_ONLY, True, raising=False)
    assert not verify_enabled(model)
    stats: dict = {}
    generate(model, tok, PROMPTS, NEW, 5, return_ids=True, reference_ids=base_i, stats=stats)
    assert stats.get("verified", 0) == 0
