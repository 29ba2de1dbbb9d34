"""Behaviour probes: neutral prompt edits, early-token swaps and BOS variants."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure.behaviour import bos_variants, prompt_variants, swap_early


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_prompt_variants_are_neutral_edits(text):
    spaced, newline, flipped = prompt_variants(text)
    assert newline == text + "\n"
    # exactly one space added: after the first space, or in front when there is none
    if " " in text:
        k = text.index(" ")
        assert spaced == text[:k] + " " + text[k:]
    else:
        assert spaced == " " + text
    # only the first letter changes, to its other case; everything before and after it is untouched
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if not letters:
        assert flipped == text
    else:
        k = letters[0]
        tail = len(text) - k - 1
        assert flipped[:k] == text[:k] and flipped[len(flipped) - tail :] == text[k + 1 :]
        assert flipped[k : len(flipped) - tail] == text[k].swapcase()


def test_prompt_variants_hand_worked():
    assert prompt_variants("The capital of France is") == [
        "The  capital of France is",
        "The capital of France is\n",
        "the capital of France is",
    ]
    assert prompt_variants("42") == [" 42", "42\n", "42"]


def test_swap_and_bos_variants_hand_worked():
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    assert swap_early(ids, 1).tolist() == [[1, 6, 5, 7, 8]]
    w, wo = bos_variants(ids, 1)  # row starts with BOS: body = 5 6 7 8
    assert w.tolist() == [[1, 5, 6, 7, 8]] and wo.tolist() == [[5, 6, 7, 8]]
    w, wo = bos_variants(torch.tensor([[5, 6, 7, 8]]), 1)  # no BOS: body = first T-1 tokens
    assert w.tolist() == [[1, 5, 6, 7]] and wo.tolist() == [[5, 6, 7]]
