"""Per-module sensitivity: how much keeping one module at baseline precision closes the gap.

Search (docs/diagnosis.md): on a calibration split of the corpus that is never the gated split,
(1) layer level, leave one out: for every decoder layer, swap in the baseline's layer and measure
KL(baseline || model) and the sink's hidden-state cosine; (2) module level within the TOP_LAYERS
layers with the largest gain: the same for each of their Linear modules; (3) the sink-protected
variant (the sink prefix's states from the baseline), which says how much of the gap is the sink's.
Cost: 1 + L + TOP_LAYERS x (Linears per layer) + 1 forward passes over CAL_SEQUENCES sequences.
"""

from __future__ import annotations

import math
import time

import torch

from harness.data.tokens import corpus_sequences
from harness.measure import formulas as M
from harness.measure.hooks import capture
from harness.measure.kvcache import cache_kwarg, make_cache, watch
from harness.measure.passes import CHUNK
from harness.methods.keep import restore, swap_in
from harness.models.structure import decoder_layers, linear_modules

CAL_SEQUENCES = 4  # calibration sequences (one batch)
CAL_TOKENS = 128  # at most this many tokens each: the search costs the same under every profile
TOP_LAYERS = 2  # layers searched module by module


def calibration_ids(tokenizer, corpus, gated: torch.Tensor, n: int, seq_len: int, bos: str):
    """[n, seq_len] corpus chunks that are not gated sequences: every chunk of the corpus (cut as the gated
    split is cut) minus the gated ones, n of them evenly spread. Returns (ids, note)."""

    allc = corpus_sequences(tokenizer, corpus, 1 << 30, seq_len, bos)
    taken = {tuple(r.tolist()) for r in gated}
    free = [i for i in range(len(allc)) if tuple(allc[i].tolist()) not in taken]
    if not free:
        return None, f"every {seq_len}-token chunk of corpus '{corpus.name}' is a gated sequence: no calibration split"
    k = min(n, len(free))
    picks = [free[(2 * j + 1) * len(free) // (2 * k)] for j in range(k)]  # centres of k equal slices
    return allc[picks], (
        f"{k} of the {len(free)} {seq_len}-token corpus chunks outside the {len(gated)} gated "
        f"sequences (chunks {', '.join(map(str, picks))} of {len(allc)})"
    )


class _Replay(torch.nn.Module):
    """Stands in for a decoder layer whose output on the calibration batch is known: returns it."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


class Probe:
    """Scores a model against the baseline on the calibration batch (one forward pass each; with a
    quantized KV cache, a prefill in chunks through it, as the gated corpus passes do).

    Keeping modules from layer l on leaves layers 0..l-1 as they were, so (without a quantized KV
    cache) their outputs from the plain pass are replayed instead of computed: a layer-l evaluation
    costs (L - l) / L of a pass plus the head."""

    def __init__(self, base_model, ids: torch.Tensor, sink: int = 0, kv=None):
        self.ids, self.sink, self.kv = ids, sink, None
        self.outputs = None  # the plain quantized pass's output of every decoder layer (replayed)
        self.logp_b, self.nll_b, self.hid_b = self._run(base_model)
        self.kv = kv  # the configuration's KV cache (kvcache.KVSpec) for every later pass

    def plain(self, model) -> dict:
        """Score the configuration itself and remember its layers' outputs for replay."""

        outs: dict[int, object] = {}
        hooks = (
            [
                layer.register_forward_hook(lambda m, a, o, i=i: outs.__setitem__(i, o))
                for i, layer in enumerate(decoder_layers(model))
            ]
            if self.kv is None
            else []
        )
        try:
            score = self.score(model)
        finally:
            for h in hooks:
                h.remove()
        self.outputs = [outs[i] for i in range(len(outs))] if outs else None
        return score

    def score_from(self, model, start: int) -> dict:
        """score(model) with layers 0..start-1 replayed from the plain pass (they must be unchanged)."""

        if not start or self.outputs is None:
            return self.score(model)
        layers = decoder_layers(model)
        real = [layers[i] for i in range(start)]
        for i in range(start):
            layers[i] = _Replay(self.outputs[i])
        try:
            return self.score(model)
        finally:
            for i, mod in enumerate(real):
                layers[i] = mod

    def _run(self, model, protect=None):
        T = self.ids.shape[1]
        spans = [(0, T)] if self.kv is None else [(a, min(a + CHUNK, T)) for a in range(0, T, CHUNK)]
        hid: dict[int, torch.Tensor] = {}
        row0 = [0]

        def on_hidden(i, h):
            if protect is not None:
                protect.on_hidden(i, h, row0[0])
            if row0[0] <= self.sink < row0[0] + h.shape[1]:
                hid[i] = h[:, self.sink - row0[0], :].float().cpu()

        def on_kv(i, k, v, n_new):
            return protect.on_kv(i, k, v, row0[0] + n_new) if protect is not None else None

        cache = make_cache(model, self.kv)
        watch(cache, on_kv, keep=len(spans) > 1)
        parts = []
        with torch.no_grad(), capture(model, None, on_hidden):
            for a, b in spans:
                row0[0] = a
                out = model(input_ids=self.ids[:, a:b].to(model.device), use_cache=True, **{cache_kwarg(model): cache})
                parts.append(out.logits.float().cpu())
        logp = torch.log_softmax(torch.cat(parts, 1), -1)
        return logp, M.token_nll(logp, self.ids), torch.stack([hid[i] for i in range(len(hid))], 1)

    def score(self, model) -> dict:
        """kld_mean, kld_p99, ppl_ratio and per-layer sink cosine of model on the calibration batch."""
        logp, nll, hid = self._run(model)
        return self._compare(logp, nll, hid)

    def score_protected(self, model, source) -> dict:
        """The same with the sink prefix's hidden states and K/V taken from the baseline (protect.SinkSource)."""
        prot = source.protection(self.ids, (self.sink,))
        return self._compare(*self._run(model, prot))

    def _compare(self, logp, nll, hid) -> dict:
        kl = M.token_kl(self.logp_b[:, :-1], logp[:, :-1])
        cos = M.cosine(self.hid_b, hid).mean(0)  # [L]
        return {
            "kld_mean": float(kl.mean()),
            "kld_p99": float(torch.quantile(kl.flatten().double(), 0.99)),
            "ppl_ratio": math.exp(float(nll.mean() - self.nll_b.mean())),
            "sink_cos": [float(c) for c in cos],
        }


def deficit(s: dict) -> dict:
    """The gaps a keep can close: KL and the sink's worst cosine deficit (1 - min over layers)."""
    cos = [c for c in s["sink_cos"] if math.isfinite(c)]
    return {"kl": s["kld_mean"], "sink": 1 - min(cos) if cos else math.nan}


def gains(base: dict, kept: dict) -> dict:
    """Gap closed by a keep: {'kl', 'sink'} differences, and each as a share of the configuration's gap."""
    a, b = deficit(base), deficit(kept)
    out = {"kl_gain": a["kl"] - b["kl"], "sink_gain": a["sink"] - b["sink"]}
    out["kl_share"] = out["kl_gain"] / a["kl"] if a["kl"] > 1e-12 else 0.0
    out["sink_share"] = out["sink_gain"] / a["sink"] if a["sink"] > 1e-9 else 0.0
    return out


def measure_keep(probe: Probe, model, source, names) -> dict:
    """Score model with `names` swapped in from source (restored afterwards)."""

    old = swap_in(model, source, names)
    try:
        return probe.score_from(model, min(int(n.split(".")[1]) for n in names))
    finally:
        restore(model, old)


def search(model, base_model, ids, progress, label: str, sink: int = 0, sink_source=None, kv=None) -> dict:
    """Layer-level leave-one-out, then module level in the top layers; returns the sensitivity record."""

    t0 = time.perf_counter()
    probe = Probe(base_model, ids, sink, kv)
    plain = probe.plain(model)
    n_layers = len(decoder_layers(model))
    layers = []
    for i in range(n_layers):
        s = measure_keep(probe, model, base_model, [f"layers.{i}"])
        layers.append({"name": f"layers.{i}", **gains(plain, s), "kld_mean": s["kld_mean"], "score": s})
        if (i + 1) % 5 == 0 or i + 1 == n_layers:
            progress(f"{label}: sensitivity: layer {i + 1}/{n_layers} kept in turn ({time.perf_counter() - t0:.0f} s)")
    rank = sorted(range(n_layers), key=lambda i: -(layers[i]["kl_share"] + max(0.0, layers[i]["sink_share"])))
    top = rank[: min(TOP_LAYERS, n_layers)]
    names = [n for n, _, _ in linear_modules(model)]
    modules = []
    for i in top:
        inside = [n for n in names if n.startswith(f"layers.{i}.")]
        for n in inside:
            s = measure_keep(probe, model, base_model, [n])
            modules.append({"name": n, **gains(plain, s), "kld_mean": s["kld_mean"], "score": s})
        progress(
            f"{label}: sensitivity: {len(inside)} modules of layer {i} kept in turn ({time.perf_counter() - t0:.0f} s)"
        )
    protected = None
    if sink_source is not None:
        p = probe.score_protected(model, sink_source)
        protected = {**gains(plain, p), "kld_mean": p["kld_mean"]}
    return {
        "calibration": {"n": int(ids.shape[0]), "seq_len": int(ids.shape[1])},
        "plain": plain,
        "layers": layers,
        "top_layers": top,
        "modules": modules,
        "protected_sink": protected,
        "evaluations": 1 + n_layers + len(modules) + (protected is not None),
        "seconds": round(time.perf_counter() - t0, 1),
        "probe": probe,
    }
