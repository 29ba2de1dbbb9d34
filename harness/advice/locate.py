"""Where damage sits, read from the per-layer and per-head evidence a run measured (no sensitivity needed).

Three series: the sink's hidden-state relative error after each layer (sink_hidden_relerr; 1 - cosine when only
that was kept), the largest attention change of each layer over its heads (attn_js [l][h]) and the sink's cached
key error per layer (sink_key_relerr). A series' onset is its first layer holding ONSET_SHARE of its worst value
(and above the series' floor); the layers before it are then intact by construction. Causal structure decides
the rest: position 0 reads only itself, so a fault in attention (queries, keys) never moves the sink's hidden
state, and an MLP changes the sink's state at its own layer but attention only from the next layer on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ONSET_SHARE = 0.1  # a series' onset: the first layer holding this share of its worst value
SINK_FLOOR = 0.005  # sink hidden-state relative error below this is intact (benign round trips: <= 0.002)
JS_FLOOR = 0.001  # attention JS below this is unchanged (benign bf16 round trip: <= 0.0001)
KEY_FLOOR = 0.01  # sink key relative error below this is intact (benign bf16: 0.002)
FEW_HEADS = 0.5  # head damage: at most this share of a layer's heads changed at all
HEAD_SHARE = 1e-3  # a head "changed" when its JS exceeds this share of the layer's largest ...
HEAD_TINY = 1e-9  # ... and this (unchanged heads read exactly 0: their inputs and weights are the baseline's)


def _clean(xs) -> list[float]:
    return [float(x) if isinstance(x, (int, float)) and math.isfinite(x) else 0.0 for x in (xs or [])]


def onset(xs: list[float], floor: float) -> int | None:
    """First layer holding ONSET_SHARE of the series' worst value, above floor; None when the worst is below it."""
    worst = max(xs, default=0.0)
    if worst <= floor:
        return None
    return next(i for i, x in enumerate(xs) if x >= max(ONSET_SHARE * worst, floor))


@dataclass
class Where:
    """The located damage: onset and peak layers, the heads at the first changed attention layer, and facts."""

    sink: list = field(default_factory=list)  # sink hidden-state relative error per layer
    attn: list = field(default_factory=list)  # largest head JS per layer
    key: list = field(default_factory=list)  # sink key relative error per layer
    js: list = field(default_factory=list)  # [l][h]
    sink_onset: int | None = None
    attn_onset: int | None = None
    heads: list = field(default_factory=list)  # heads carrying the change at attn_onset
    n_heads: int = 0

    @property
    def few_heads(self) -> bool:
        return bool(self.heads) and len(self.heads) <= max(1, FEW_HEADS * self.n_heads)

    @property
    def sink_intact(self) -> bool:
        """The sink's hidden state is the baseline's at every layer."""
        return bool(self.sink) and max(self.sink) <= SINK_FLOOR

    @property
    def keys_everywhere(self) -> bool:
        """The sink's cached keys differ in at least half the layers."""
        return bool(self.key) and sum(k > KEY_FLOOR for k in self.key) >= max(1, len(self.key) / 2)

    @property
    def onset(self) -> int | None:
        """Where damage enters: the sink's onset, or the first changed attention layer - or the MLP before it,
        when every head of that layer changed while the layer before had none (its input changed, not its heads)."""
        a = self.attn_onset
        if a is not None and a > 0 and not self.few_heads:
            a -= 1
        cands = [x for x in (self.sink_onset, a) if x is not None]
        return min(cands) if cands else None

    @property
    def through_mlp(self) -> bool:
        """The first attention change is in every head of a layer after an unchanged one: an MLP before it."""
        a = self.attn_onset
        return a is not None and a > 0 and not self.few_heads and (self.sink_onset is None or self.sink_onset >= a - 1)

    @property
    def peak(self) -> int | None:
        """The layer with the largest attention change (else the sink's largest error)."""
        s = self.attn if max(self.attn, default=0.0) > JS_FLOOR else self.sink
        if not s or max(s) <= 0:
            return None
        return max(range(len(s)), key=lambda i: s[i])


def locate(metrics: dict) -> Where:
    m = metrics or {}
    rel = m.get("sink_hidden_relerr")
    cos = m.get("sink_hidden_cos") or []
    sink = _clean(rel) if rel else [max(0.0, 1 - c) for c in _clean([c if c is not None else 1.0 for c in cos])]
    js = [_clean(row) for row in (m.get("attn_js") or []) if isinstance(row, list)]
    attn = [max(row, default=0.0) for row in js]
    w = Where(sink=sink, attn=attn, key=_clean(m.get("sink_key_relerr")), js=js)
    w.sink_onset = onset(sink, SINK_FLOOR)
    w.attn_onset = onset(attn, JS_FLOOR)
    if w.attn_onset is not None:
        row = js[w.attn_onset]
        w.n_heads = len(row)
        # every head that moved at all: a fault in attention leaves the layer's other heads exactly as they were,
        # a changed input (an earlier MLP) moves them all, if some far less than the most sensitive one
        w.heads = [h for h, x in enumerate(row) if x > max(HEAD_TINY, HEAD_SHARE * max(row))]
    return w


def describe(w: Where, sink: bool = True) -> list[str]:
    """The located facts as evidence lines (sink=False: the baseline has no sink, so position 0 is named as the
    first token, not as a sink)."""
    out = []
    who = "the sink's hidden state" if sink else "the first token's hidden state (the baseline has no sink)"
    if w.sink_onset is not None:
        before = f"intact up to layer {w.sink_onset - 1} and " if w.sink_onset > 0 else ""
        out.append(
            f"{who} is {before}off by {w.sink[w.sink_onset]:.3g} (relative) after layer "
            f"{w.sink_onset}, {max(w.sink):.3g} at worst"
        )
    elif w.sink_intact:
        out.append(f"{who} is the baseline's at every layer (relative error <= {max(w.sink):.2g})")
    if w.attn_onset is not None:
        a = w.attn_onset
        heads = ", ".join(str(h) for h in w.heads)
        share = f"head {heads}" if len(w.heads) == 1 else f"heads {heads}"
        out.append(
            f"attention is unchanged before layer {a}; there {share} of {w.n_heads} carry the change "
            f"(attn_js {max(w.js[a]):.3g}); the largest change is at layer {w.peak} ({max(w.attn):.3g})"
        )
    if w.keys_everywhere and w.sink_intact:
        out.append(
            f"{'the sink' if sink else 'the first token'}'s cached keys differ in {sum(k > KEY_FLOOR for k in w.key)} "
            f"of {len(w.key)} layers (relative error up to {max(w.key):.3g}) while its hidden state does not"
        )
    return out
