"""Per-module sensitivity: how much keeping one module at baseline precision closes the gap.

Search (docs/diagnosis.md): on a calibration split of the corpus that is never the gated split,
(1) layer level, leave one out: for every decoder layer, swap in the baseline's layer and measure
KL(baseline || model), the sink's hidden-state cosine and (when the attention gate is a target) each
head's attention JS; (2) module level within the TOP_LAYERS layers with the largest gain on the
targets (the gates the configuration did not pass: recommend.targets): the same for each of their
Linear modules; (3) the sink-protected variant (the sink prefix's states from the baseline), which
says how much of the gap is the sink's.
Cost: 1 + L + TOP_LAYERS x (Linears per layer) + 1 forward passes over CAL_SEQUENCES sequences.
"""

from __future__ import annotations

import math
import time

import torch

from harness.advice.recommend import total
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
    """Stands in for a decoder layer whose output on the calibration batch is known: returns it. It carries the
    real layer's submodules (never run) so that the attention capture still finds the layer's attention module."""

    def __init__(self, output, real=None):
        super().__init__()
        self.output = output
        for name, child in real.named_children() if real is not None else ():
            self.add_module(name, child)

    def forward(self, *args, **kwargs):
        return self.output


class Probe:
    """Scores a model against the baseline on the calibration batch (one forward pass each; with a
    quantized KV cache, a prefill in chunks through it, as the gated corpus passes do).

    Keeping modules from layer l on leaves layers 0..l-1 as they were, so (without a quantized KV
    cache) their outputs from the plain pass are replayed instead of computed: a layer-l evaluation
    costs (L - l) / L of a pass plus the head (and a replayed layer's attention JS is the plain pass's).

    attention=True also scores each head's attention against the baseline's (mean JS over the query
    rows after the sink, as the attn_js gate): the baseline's attention maps of the batch are kept."""

    def __init__(self, base_model, ids: torch.Tensor, sink: int = 0, kv=None, attention: bool = False):
        self.ids, self.sink, self.kv = ids, sink, None
        self.outputs = None  # the plain quantized pass's output of every decoder layer (replayed)
        self.attn_b: dict | None = {} if attention else None  # the baseline's attention [B,H,T,T] per layer
        self.js_plain: list | None = None  # the plain pass's per-layer head JS [L][H] (replayed layers)
        self.logp_b, self.nll_b, self.hid_b, _ = self._run(base_model, record=True)
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
        self.js_plain = score.get("attn_js")
        return score

    def score_from(self, model, start: int) -> dict:
        """score(model) with layers 0..start-1 replayed from the plain pass (they must be unchanged)."""

        if not start or self.outputs is None:
            return self.score(model)
        layers = decoder_layers(model)
        real = [layers[i] for i in range(start)]
        for i in range(start):
            layers[i] = _Replay(self.outputs[i], real[i])
        try:
            s = self.score(model)
        finally:
            for i, mod in enumerate(real):
                layers[i] = mod
        if self.js_plain is not None:  # replayed layers ran no attention: theirs is the plain pass's
            s["attn_js"] = self.js_plain[:start] + s["attn_js"][start:]
        return s

    def _run(self, model, protect=None, record=False):
        T = self.ids.shape[1]
        spans = [(0, T)] if self.kv is None else [(a, min(a + CHUNK, T)) for a in range(0, T, CHUNK)]
        hid: dict[int, torch.Tensor] = {}
        js: dict[int, torch.Tensor] = {}  # layer -> [B, H] sum of JS over the compared query rows
        row0 = [0]
        first = self.sink + 1  # query rows after the sink, as the gated attn_js

        def on_attn(i, probs):
            if record:  # the baseline's pass: one chunk (self.kv is not set yet)
                self.attn_b[i] = probs.detach().float().cpu()
                return
            c, t = probs.shape[-2], probs.shape[-1]
            j0 = max(0, first - row0[0])
            if j0 >= c:
                return
            ref = self.attn_b[i][:, :, row0[0] + j0 : row0[0] + c, :t]
            part = M.js_divergence(ref, probs[:, :, j0:, :].float().cpu()).sum(-1)
            js[i] = js[i] + part if i in js else part

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
        with torch.no_grad(), capture(model, on_attn if self.attn_b is not None else None, on_hidden):
            for a, b in spans:
                row0[0] = a
                out = model(input_ids=self.ids[:, a:b].to(model.device), use_cache=True, **{cache_kwarg(model): cache})
                parts.append(out.logits.float().cpu())
        logp = torch.log_softmax(torch.cat(parts, 1), -1)
        rows = max(1, T - first)
        # [L][H]; a replayed layer (score_from) ran no attention: None here, the plain pass's row there
        head_js = [(js[i].mean(0) / rows).tolist() if i in js else None for i in range(len(hid))] if js else None
        return logp, M.token_nll(logp, self.ids), torch.stack([hid[i] for i in range(len(hid))], 1), head_js

    def score(self, model) -> dict:
        """kld_mean, kld_p99, ppl_ratio, per-layer sink cosine (and per-head attention JS) on the calibration batch."""
        return self._compare(*self._run(model))

    def score_protected(self, model, source) -> dict:
        """The same with the sink prefix's hidden states and K/V taken from the baseline (protect.SinkSource)."""
        prot = source.protection(self.ids, (self.sink,))
        return self._compare(*self._run(model, prot))

    def _compare(self, logp, nll, hid, head_js) -> dict:
        kl = M.token_kl(self.logp_b[:, :-1], logp[:, :-1])
        cos = M.cosine(self.hid_b, hid).mean(0)  # [L]
        out = {
            "kld_mean": float(kl.mean()),
            "kld_p99": float(torch.quantile(kl.flatten().double(), 0.99)),
            "ppl_ratio": math.exp(float(nll.mean() - self.nll_b.mean())),
            "sink_cos": [float(c) for c in cos],
        }
        if head_js is not None:
            out["attn_js"] = head_js  # [L][H]
        return out


def deficit(s: dict) -> dict:
    """The gaps a keep can close: KL, the sink's worst cosine deficit (1 - min over layers) and, when scored,
    the worst head's attention JS."""
    cos = [c for c in s["sink_cos"] if math.isfinite(c)]
    js = [x for row in s.get("attn_js") or [] for x in row if math.isfinite(x)]
    return {"kl": s["kld_mean"], "sink": 1 - min(cos) if cos else math.nan, "js": max(js) if js else None}


def gains(base: dict, kept: dict, tg: dict | None = None) -> dict:
    """Gap closed by a keep: {'kl', 'sink'} (and 'js') differences, each as a share of the configuration's gap;
    with targets tg, `aim_share`: the share of the distance to the targeted limits it closes."""
    a, b = deficit(base), deficit(kept)
    out = {"kl_gain": a["kl"] - b["kl"], "sink_gain": a["sink"] - b["sink"]}
    out["kl_share"] = out["kl_gain"] / a["kl"] if a["kl"] > 1e-12 else 0.0
    out["sink_share"] = out["sink_gain"] / a["sink"] if a["sink"] > 1e-9 else 0.0
    if a["js"] is not None and b["js"] is not None:
        out["js_share"] = (a["js"] - b["js"]) / a["js"] if a["js"] > 1e-12 else 0.0
    if tg:
        d = total(base, tg)
        out["aim_share"] = (d - total(kept, tg)) / d if d > 0 else 0.0
    return out


def _rank(u: dict) -> float:
    """How much of the gap a unit's keep closes: on the targets when known, else KL plus sink."""
    return u["aim_share"] if "aim_share" in u else u["kl_share"] + max(0.0, u["sink_share"])


def measure_keep(probe: Probe, model, source, names) -> dict:
    """Score model with `names` swapped in from source (restored afterwards)."""

    old = swap_in(model, source, names)
    try:
        return probe.score_from(model, min(int(n.split(".")[1]) for n in names))
    finally:
        restore(model, old)


def search(
    model, base_model, ids, progress, label: str, sink: int = 0, sink_source=None, kv=None, tg: dict | None = None
) -> dict:
    """Layer-level leave-one-out, then module level in the top layers (ranked by the share of the distance to
    the targets tg they close, recommend.targets); returns the sensitivity record."""

    t0 = time.perf_counter()
    probe = Probe(base_model, ids, sink, kv, attention="attn_js" in (tg or {}))
    plain = probe.plain(model)
    n_layers = len(decoder_layers(model))
    layers = []
    for i in range(n_layers):
        s = measure_keep(probe, model, base_model, [f"layers.{i}"])
        layers.append({"name": f"layers.{i}", **gains(plain, s, tg), "kld_mean": s["kld_mean"], "score": s})
        if (i + 1) % 5 == 0 or i + 1 == n_layers:
            progress(f"{label}: sensitivity: layer {i + 1}/{n_layers} kept in turn ({time.perf_counter() - t0:.0f} s)")
    rank = sorted(range(n_layers), key=lambda i: -_rank(layers[i]))
    top = rank[: min(TOP_LAYERS, n_layers)]
    names = [n for n, _, _ in linear_modules(model)]
    modules = []
    for i in top:
        inside = [n for n in names if n.startswith(f"layers.{i}.")]
        for n in inside:
            s = measure_keep(probe, model, base_model, [n])
            modules.append({"name": n, **gains(plain, s, tg), "kld_mean": s["kld_mean"], "score": s})
        progress(
            f"{label}: sensitivity: {len(inside)} modules of layer {i} kept in turn ({time.perf_counter() - t0:.0f} s)"
        )
    protected = None
    if sink_source is not None:
        p = probe.score_protected(model, sink_source)
        protected = {**gains(plain, p), "kld_mean": p["kld_mean"]}
    return {
        "calibration": {"n": int(ids.shape[0]), "seq_len": int(ids.shape[1])},
        "targets": dict(tg or {}),
        "plain": plain,
        "layers": layers,
        "top_layers": top,
        "modules": modules,
        "protected_sink": protected,
        "evaluations": 1 + n_layers + len(modules) + (protected is not None),
        "seconds": round(time.perf_counter() - t0, 1),
        "probe": probe,
    }
