"""Streaming measurement passes over corpus batches: one model alone, or several against the baseline.

Every statistic is reduced row by row as each layer runs (sink mass, entropy, key votes,
JS against the baseline), so attention maps are never held for all layers. Several models
run in lockstep (see lockstep.py): the baseline publishes one layer's attention rows at a
time and each quantized model compares its own rows with them before the baseline goes on.

A pass is one forward call, or (when a model reads a quantized KV cache) a prefill of the
sequence in chunks of CHUNK tokens, so later tokens see the cache as generation would; in
that case every model of the group runs the same chunks (a plain cache reproduces the
one-call pass exactly).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from harness.errors import CaptureError
from harness.measure import formulas as M
from harness.measure.hooks import bound, routed
from harness.measure.kvcache import KVSpec, cache_kwarg, make_cache, watch
from harness.measure.lockstep import TurnTaking
from harness.measure.summary import ModelSummary, PairSummary, PassStats, add_pair

CHUNK = 16  # prefill chunk (tokens) when a quantized KV cache is in the group (see methods/kv.py: residual)
_BLOCK = 1 << 20  # elements per row block in the reductions (bounds temporaries to ~4 MB each)


@dataclass
class Participant:
    """One model in a measurement: read through a quantized KV cache or not, sink protected or not."""

    model: object
    kv: KVSpec | None = None
    protect: object | None = None  # a protect.SinkSource: the baseline's states of the sink prefix
    reads: dict = field(default_factory=dict)  # quantized-KV reads over the passes (kvcache.watch)


class Accumulator:
    """Row-wise reductions of one model's pass over one batch (any number of calls)."""

    def __init__(self, ids: torch.Tensor, sink_positions, turns=None, name="", publish=False, rows=None, ref_attn=None):
        self.B, self.T = ids.shape
        self.S = tuple(sink_positions)
        self.first_row = max(self.S) + 1
        self.s0 = self.S[0]
        self.turns, self.name, self.publish = turns, name, publish
        # Reference mode (reference.py): `rows` are the sampled query positions; the baseline's pass keeps
        # every head's attention at them (kept[layer] [B,H,R,T]); a quantized pass compares its own rows
        # at the same positions with ref_attn(layer) [B,H,R,T] instead of a baseline running beside it.
        self.rows, self.ref_attn, self.kept = rows, ref_attn, {}
        self.compare = (turns is not None and not publish) or ref_attn is not None
        self.mass, self.ent, self.js, self.col, self.hid, self.massive = {}, {}, {}, {}, {}, {}
        self.others: dict[int, list] = {}
        self.sink_top: dict[int, torch.Tensor] = {}
        self.sink_k, self.sink_v = {}, {}
        self.bad: list[int] = []
        self.row0, self.call, self.calls_seen = 0, -1, {}
        self.protect = None  # protect.Protection for this batch, if any

    # -- hooks (called through probe.routed in this participant's thread) --
    def on_call(self, row0: int) -> None:
        self.row0 = row0
        self.call += 1

    def on_attn(self, i: int, probs: torch.Tensor) -> None:
        c, t = probs.shape[-2], probs.shape[-1]
        if t != self.row0 + c:
            raise CaptureError(
                f"layer {i} attends to {t} keys, not all {self.row0 + c} positions so far "
                f"(a sliding-window cache): chunked passes need full-attention layers"
            )
        self.calls_seen.setdefault(self.call, set()).add(i)
        ref = None
        if self.compare and self.turns is not None:
            key, ref = self.turns.slot if self.turns.slot else (None, None)
            if key != (self.call, i):
                raise CaptureError(
                    f"{self.name}: baseline published {key}, this model is at call {self.call} "
                    f"layer {i}: the models do not run the same layers"
                )
        self._reduce(i, probs, ref)
        if self.rows is not None:
            self._sampled_rows(i, probs)
        if self.turns is not None:
            if self.publish:
                self.turns.slot = ((self.call, i), probs)
            self.turns.pass_turn(self.name)
            if self.publish:
                self.turns.slot = None

    def _reduce(self, i, probs, ref) -> None:
        B, H, c, t = probs.shape
        dev = probs.device
        j0 = max(0, self.first_row - self.row0)
        if i not in self.mass:  # accumulators live on the model's device; moved to the CPU once, in stats()
            self.mass[i], self.ent[i], self.js[i] = (torch.zeros(B, H, device=dev) for _ in range(3))
            self.col[i] = torch.zeros(B, H, self.T, device=dev)
        block = _BLOCK if dev.type == "cpu" else 16 * _BLOCK
        step = max(1, block // max(1, B * H * t))
        for a in range(j0, c, step):
            p = probs[:, :, a : a + step, :].float()
            self.mass[i] += M.sink_mass_sum(p, self.S)
            self.ent[i] += M.entropy_sum(p)
            self.col[i][:, :, :t] += p.sum(2)
            if ref is not None:  # lockstep only: reference mode compares sampled rows (_sampled_rows)
                self.js[i] += M.js_divergence(ref[:, :, a : a + step, :], p).sum(-1).float()
            del p

    def _sampled_rows(self, i, probs) -> None:
        B, H, c, t = probs.shape
        sel = [(r - self.row0, j) for j, r in enumerate(self.rows) if self.row0 <= r < self.row0 + c]
        if not sel:
            return
        mine = probs[:, :, [a for a, _ in sel], :].float()
        if self.ref_attn is None:  # the baseline recording a reference: rows padded to all T keys
            keep = self.kept.setdefault(i, torch.zeros(B, H, len(self.rows), self.T, dtype=torch.float16))
            keep[:, :, [j for _, j in sel], :t] = mine.cpu().half()
            return
        ref = self.ref_attn(i)[:, :, [j for _, j in sel], :t].to(mine.device).float()
        self.js[i] += M.js_divergence(ref, mine).sum(-1).float()

    def on_hidden(self, i: int, h: torch.Tensor) -> None:
        if self.protect is not None:
            self.protect.on_hidden(i, h, self.row0)
        if not self.bad and not torch.isfinite(h).all():
            self.bad.append(i)
        c = h.shape[1]
        if self.row0 <= self.s0 < self.row0 + c:
            self.hid[i] = h[:, self.s0 - self.row0, :].float().cpu()
            self.sink_top[i] = h[:, self.s0 - self.row0, :].float().abs().amax(-1).cpu()
        if self.row0 == 0 and c == self.T:  # one call holds the whole sequence: reduce now
            self.massive[i] = M.massive_ratio(h, self.s0).cpu()
            return
        keep = [k for k in range(c) if k + self.row0 != self.s0]
        self.others.setdefault(i, []).append(h[:, keep, :].float().abs().flatten(1).cpu())

    def on_kv(self, i: int, k: torch.Tensor, v: torch.Tensor, n_new: int):
        new = self.protect.on_kv(i, k, v, self.row0 + n_new) if self.protect is not None else None
        if new is not None:
            k, v = new
        if k.shape[-2] > self.s0:
            self.sink_k[i] = k[:, :, self.s0, :].float().flatten(1).cpu()
            self.sink_v[i] = v[:, :, self.s0, :].float().flatten(1).cpu()
        return new

    # -- result --
    def stats(self, logp: torch.Tensor) -> PassStats:
        n = len(self.hid)
        missing = [k for k, layers in self.calls_seen.items() if len(layers) != n]
        if not self.calls_seen or missing:
            raise CaptureError(
                f"attention came back from {len(self.calls_seen.get(missing[0] if missing else 0, ()))} of {n} layers"
            )
        for i, parts in self.others.items():
            med = torch.cat(parts, dim=1).median(-1).values.clamp_min(1e-12)
            self.massive[i] = self.sink_top[i] / med
        rows = max(1, self.T - self.first_row)
        stack = lambda d: torch.stack([d[i].cpu() for i in range(n)], dim=1)  # noqa: E731
        votes = M.votes_from_columns(stack(self.col), self.first_row)  # col [B,L,H,T] -> [B,T]
        return PassStats(
            sink_mass=stack(self.mass) / rows,
            entropy=stack(self.ent) / rows,
            massive=stack(self.massive),
            sink_hidden=stack(self.hid),
            sink_k=stack(self.sink_k),
            sink_v=stack(self.sink_v),
            logp=logp,
            votes=votes,
            nonfinite_layer=self.bad[0] if self.bad else None,
            js=stack(self.js) / (len(self.rows) if self.rows is not None else rows) if self.compare else None,
        )


def log_softmax_(x: torch.Tensor, rows: int = 64) -> torch.Tensor:
    """In-place log-softmax over the last dim, a block of rows at a time (no full-size temporaries)."""
    flat = x.view(-1, x.shape[-1])
    for a in range(0, flat.shape[0], rows):
        blk = flat[a : a + rows]
        blk.sub_(torch.logsumexp(blk, dim=-1, keepdim=True))
    return x


def forward_pass(participant: Participant, ids: torch.Tensor, acc: Accumulator, chunk: int | None) -> torch.Tensor:
    """Run one model over one batch (in the calling thread); returns float32 log-probabilities."""
    model = participant.model
    dev = model.device
    T = ids.shape[1]
    spans = [(0, T)] if chunk is None else [(a, min(a + chunk, T)) for a in range(0, T, chunk)]
    cache = make_cache(model, participant.kv)
    watch(cache, acc.on_kv, keep=len(spans) > 1, reads=participant.reads if participant.kv is not None else None)
    kw = cache_kwarg(model)
    parts = []
    with torch.no_grad(), bound(acc):
        for a, b in spans:
            out = model(input_ids=ids[:, a:b].to(dev), use_cache=True, **{kw: cache})
            parts.append(out.logits.float())  # stays on the model's device: KL is computed there
            del out
    del cache
    logits = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return log_softmax_(logits)


def _compare(b: PassStats, q: PassStats, step: int = 64) -> None:
    """KL, top-1 agreement and max logit change of q against the baseline, a block of positions
    at a time (vocabulary-sized temporaries stay small); drops q's logp."""
    B, T, _ = q.logp.shape
    q.kl = torch.empty(B, T)
    q.top1 = torch.empty(B, T, dtype=torch.bool)
    d = 0.0
    for a in range(0, T, step):
        lb, lq = b.logp[:, a : a + step], q.logp[:, a : a + step].to(b.logp.device)
        q.kl[:, a : a + step] = M.token_kl(lb, lq).cpu()
        q.top1[:, a : a + step] = (lb.argmax(-1) == lq.argmax(-1)).cpu()
        x = (lq - lb).abs().max().item()
        d = max(d, x) if np.isfinite(x) else float("nan") if np.isfinite(d) else d
    q.logit_delta_max = d if np.isfinite(d) else float("nan")
    q.logp = None


def measure_batch(
    base: Participant,
    participants: dict[str, Participant],
    ids: torch.Tensor,
    sink_positions=(0,),
    chunk: int | None = None,
) -> tuple[PassStats, dict[str, PassStats | BaseException]]:
    """The baseline and every participant on one batch, in lockstep; a participant that fails maps to its exception.

    The participants' logp is reduced to KL/top-1 against the baseline and dropped; so is the baseline's
    when there are participants (alone, it comes back on the CPU).
    """
    if chunk is None and any(r.kv is not None for r in (base, *participants.values())):
        chunk = CHUNK
    names = ["__baseline__", *participants]
    turns = TurnTaking(names) if participants else None
    accs = {"__baseline__": Accumulator(ids, sink_positions, turns, "__baseline__", publish=True)}
    for n, r in participants.items():
        accs[n] = Accumulator(ids, sink_positions, turns, n)
        if r.protect is not None:
            accs[n].protect = r.protect.protection(ids, sink_positions)
    results: dict = {}

    def job(name, participant):
        def run():
            logp = forward_pass(participant, ids, accs[name], chunk)
            st = accs[name].stats(logp)
            st.nll = M.token_nll(logp, ids.to(logp.device)).cpu()
            if name != "__baseline__":
                _compare(results["__baseline__"], st)
            results[name] = st
            return st

        return run

    allr = {"__baseline__": base, **participants}
    models = {id(r.model): r.model for r in allr.values()}  # a model shared by two participants is hooked once
    with contextlib.ExitStack() as stack:
        for m in models.values():
            stack.enter_context(routed(m))
        if turns is None:
            out = {"__baseline__": (job("__baseline__", base)(), None)}
        else:
            out = turns.run({n: job(n, allr[n]) for n in names})
    b, err = out["__baseline__"]
    if err is not None:
        raise err
    b.logp = b.logp.cpu() if not participants else None  # compared passes have used it already
    return b, {n: (out[n][1] if out[n][1] is not None else out[n][0]) for n in participants}


def forward_stats(
    model, ids: torch.Tensor, sink_positions=(0,), kv: KVSpec | None = None, chunk: int | None = None
) -> PassStats:
    """One model alone on one batch (no comparison)."""
    b, _ = measure_batch(Participant(model, kv), {}, ids, sink_positions, chunk)
    return b


def compare_pair(base_model, quant, ids: torch.Tensor, sink_positions=(0,), chunk=None):
    """(baseline stats, quantized stats) for one batch; quant is a model or a Participant."""
    r = quant if isinstance(quant, Participant) else Participant(quant)
    b, out = measure_batch(Participant(base_model), {"q": r}, ids, sink_positions, chunk)
    if isinstance(out["q"], BaseException):
        raise out["q"]
    return b, out["q"]


def run_single(model, batches, sink_positions) -> ModelSummary:
    s = ModelSummary()
    for ids in batches:
        st = forward_stats(model, ids, sink_positions)
        s.add(st, ids, st.nll)
    return s


def run_multi(
    base_model, participants: dict, batches, sink_positions, progress=None, on_error=None
) -> dict[str, PairSummary]:
    """Compare several participants (or plain models) with the baseline, running the baseline once per batch.

    A participant whose pass raises is reported through on_error(name, exc) and dropped (without
    on_error the exception propagates).
    """
    live = {n: (r if isinstance(r, Participant) else Participant(r)) for n, r in participants.items()}
    out = {name: PairSummary() for name in live}
    base = ModelSummary()
    for k, ids in enumerate(batches):
        b, qs = measure_batch(Participant(base_model), live, ids, sink_positions)
        base.add(b, ids, b.nll)
        for name, q in qs.items():
            if isinstance(q, BaseException):
                if on_error is None:
                    raise q
                on_error(name, q)
                del live[name], out[name]
                continue
            add_pair(out[name], b, q, ids, q.nll)
        if progress:
            shown = ", ".join("baseline" if n == "__baseline__" else str(n) for n in live)
            progress(f"corpus batch {k + 1}/{len(batches)} ({shown or 'no model left'})")
    for ps in out.values():
        ps.base = base
    return out


def run_pair(base_model, quant_model, batches, sink_positions, progress=None) -> PairSummary:
    return run_multi(base_model, {"quantized": quant_model}, batches, sink_positions, progress)["quantized"]
