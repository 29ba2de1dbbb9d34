"""Text checks on continuations: correctness against reference answers, degeneration, first divergence.

Pure Python over strings and token ids (no torch): the gates' per-prompt evidence is built from these.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def is_correct(continuation: str, references) -> bool:
    """A reference occurs in the continuation's first line as whole words, case-insensitive."""
    line = first_line(continuation)
    return any(re.search(rf"(?<!\w){re.escape(r.strip())}(?!\w)", line, re.IGNORECASE) for r in references)


def has_loop(ids: list[int], max_period: int = 8) -> bool:
    """True when the output ends in a loop: a period-p suffix that covers >= 3 periods and half the output."""
    n = len(ids)
    if n < 6:
        return False
    for p in range(1, max_period + 1):
        run = p
        while run < n and ids[n - 1 - run] == ids[n - 1 - run + p]:
            run += 1
        if run >= 3 * p and run >= n / 2 and run >= 6:
            return True
    return False


def is_degenerate(text: str, ids: list[int]) -> str | None:
    """Why an output is degenerate ('empty', 'replacement', 'loop'), or None."""
    if not text.strip():
        return "empty"
    if REPLACEMENT in text:
        return "replacement"
    if has_loop(ids):
        return "loop"
    return None


def first_divergence(a: list[int], b: list[int]) -> int:
    """Index of the first differing token (len of the shorter when one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def prompt_scores(g: dict) -> dict:
    """Per-prompt paired outcome against the baseline: +1 worse, -1 better, 0 neither.

    flip: +1 a break (stable-correct answered wrongly); fix: 1 a stable-wrong prompt answered rightly (shown, never
    subtracted from breaks). degen: +1 degenerate where the baseline is not, -1 the reverse (the baseline itself
    loops on many prompts and any perturbation moves which ones, so degeneration is gated net of that churn).
    mis: +1 a break or a new degeneration, -1 a recovered degeneration without a break; a fix never counts.
    """
    flip = int(g.get("stable_baseline") == "right" and g.get("correct_quantized") is False)
    fix = int(g.get("stable_baseline") == "wrong" and g.get("correct_quantized") is True)
    dq, db = bool(g.get("degenerate")), bool(g.get("degenerate_baseline"))
    degen = int(dq and not db) - int(db and not dq)
    mis = 1 if (flip or degen > 0) else (-1 if degen < 0 else 0)
    return {"flip": flip, "fix": fix, "degen": degen, "mis": mis}
