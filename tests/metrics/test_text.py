"""Answers against references, degeneration, and where two generations part."""

import pytest

from harness.metrics.text import first_divergence, has_loop, is_correct, is_degenerate


@pytest.mark.parametrize(
    "text,refs,ok",
    [
        (" Paris.\nMore text", ["Paris"], True),
        (" always", ["A"], False),
        (" a", ["A"], True),
        (" The answer is 12.", ["12"], True),
        (" 123", ["12"], False),
        ("\n\n Berlin is big", ["berlin"], True),
        (" Rome\nParis", ["Paris"], False),
        ("", ["x"], False),
        (" H2O.", ["H2O"], True),
    ],
)
def test_is_correct_whole_words_first_line(text, refs, ok):
    assert is_correct(text, refs) is ok


def test_degenerate_kinds():
    assert is_degenerate("   ", []) == "empty"
    assert is_degenerate("caf\ufffd", [1, 2]) == "replacement"
    assert is_degenerate("x", [5, 6, 7, 5, 6, 7, 5, 6, 7, 5, 6, 7]) == "loop"
    assert is_degenerate("fine", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) is None
    assert has_loop([9] * 8) and not has_loop([1, 2, 3, 1, 2, 4, 1, 2, 3])


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert first_divergence([1, 2], [1, 2]) == 2
