"""Sink protection (in the spirit of IntactKV, Liu et al. 2024): the sink prefix's states come
from the baseline.

Causal attention makes the states of positions 0..P-1 depend only on those P tokens, so
the baseline's hidden states and K/V for a prefix can be computed once, on the prefix
alone, and put into the quantized model's pass: after every decoder layer the prefix's
hidden states are replaced (its whole residual path stays full precision), and every time
attention reads the cache, the prefix's keys and values are replaced too — which also
keeps them out of a quantized KV cache's rounding.
"""

from __future__ import annotations

import torch

from harness.measure.hooks import capture
from harness.measure.kvcache import cache_kwarg, make_cache, watch


class Protection:
    """Replacements for one batch: cols [B,P] absolute columns of the prefix in each row."""

    def __init__(self, cols: torch.Tensor, hid: list, keys: list, values: list):
        self.cols, self.hid, self.keys, self.values = cols, hid, keys, values

    def on_hidden(self, i: int, h: torch.Tensor, row0: int) -> None:
        if row0 != 0 or int(self.cols.max()) >= h.shape[1]:
            return  # the prefix is not in this call (a decode step or a later chunk)
        idx = self.cols.to(h.device)[:, :, None].expand(-1, -1, h.shape[-1])
        h.scatter_(1, idx, self.hid[i].to(h.device, h.dtype))

    def on_kv(self, i: int, k: torch.Tensor, v: torch.Tensor, total: int):
        """k, v [B, kvH, S, d] as attention will read them; total = positions seen so far."""
        if k.shape[-2] != total or int(self.cols.max()) >= total:
            return None  # a sliding window dropped the prefix: nothing to protect here
        idx = self.cols.to(k.device)[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[-1])
        k = k.scatter(2, idx, self.keys[i].to(k.device, k.dtype))
        v = v.scatter(2, idx, self.values[i].to(v.device, v.dtype))
        return k, v


class SinkSource:
    """The baseline's states of sink prefixes, computed once per distinct prefix."""

    def __init__(self, base_model, sink_positions=(0,)):
        self.model = base_model
        self.P = max(sink_positions) + 1
        self.table: dict[tuple, tuple] = {}

    @torch.no_grad()
    def _fill(self, prefixes: list[tuple]) -> None:
        todo = sorted({p for p in prefixes if p not in self.table})
        if not todo:
            return
        model = self.model
        ids = torch.tensor(todo, dtype=torch.long, device=model.device)
        hid: dict[int, torch.Tensor] = {}
        kv: dict[int, tuple] = {}

        def on_kv(i, k, v, n_new):
            kv[i] = (k.detach().float().cpu(), v.detach().float().cpu())

        cache = make_cache(model, None)
        watch(cache, on_kv)
        with capture(model, None, lambda i, h: hid.__setitem__(i, h.detach().float().cpu())):
            model(input_ids=ids, use_cache=True, **{cache_kwarg(model): cache})
        L = len(hid)
        for r, p in enumerate(todo):
            self.table[p] = (
                [hid[i][r] for i in range(L)],
                [kv[i][0][r] for i in range(L)],
                [kv[i][1][r] for i in range(L)],
            )

    def _build(self, prefixes: list[tuple], cols: torch.Tensor) -> Protection:
        self._fill(prefixes)
        rows = [self.table[p] for p in prefixes]
        L = len(rows[0][0])
        stack = lambda j: [torch.stack([r[j][i] for r in rows]) for i in range(L)]  # noqa: E731
        return Protection(cols, stack(0), stack(1), stack(2))

    def protection(self, ids: torch.Tensor, sink_positions=(0,)) -> Protection:
        """For corpus rows [B,T] that start at column 0."""
        prefixes = [tuple(int(x) for x in row[: self.P]) for row in ids]
        cols = torch.arange(self.P).expand(ids.shape[0], -1)
        return self._build(prefixes, cols)

    def protection_for_prompts(self, rows: list[list[int]], width: int) -> Protection:
        """For left-padded prompts: row r's tokens start at column width - len(rows[r])."""
        prefixes = [tuple(r[: self.P]) for r in rows]
        if any(len(p) < self.P for p in prefixes):
            raise ValueError(f"a prompt is shorter than the protected prefix ({self.P} tokens)")
        cols = torch.stack([torch.arange(self.P) + (width - len(r)) for r in rows])
        return self._build(prefixes, cols)
