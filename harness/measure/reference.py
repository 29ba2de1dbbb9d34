"""The baseline reference: everything measuring a configuration needs from the baseline, computed once.

`--reference` measures each configuration against a reference stored under `--reference-dir`
(default <cache>/references) instead of beside a baseline model in memory. A reference is a directory
named by the digest of what made it (weights sha256, corpus and prompt hashes, every setting that
shapes the baseline's passes and generations, torch/transformers/harness versions, TOPK and ROWS),
built atomically (storage.cached_dir) and shared by every process, shard and Ray task that sees it:

  meta.json               identity (what the key digests), rows, shapes, the baseline's generations and
                          its side of the behaviour probes
  batch-<k>.safetensors   one per corpus batch; B sequences, L layers, H heads, D hidden, T tokens:
      sink_mass, entropy [B,L,H]; massive [B,L]; sink_hidden [B,L,D]; sink_k, sink_v [B,L,kvH*d];
      votes [B,T]; nll [B,T-1];
      top_lp [B,T,K] float32: the baseline's K = TOPK largest log-probabilities (normalized over the
          whole vocabulary, so the remainder mass is exact; KL is metrics.topk_kl), top_ix [B,T,K];
      attn [B,L,H,R,T] float16: every head's attention at R = ROWS query positions spread evenly after
          the sink rows (JS is averaged over these rows instead of all of them).

What still needs the baseline model: building the reference, and scoring each configuration's
continuations under the baseline (gen_ppl_ratio), done once for all configurations after the last
one is measured (refmode.py). Only safetensors and JSON are read back: no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from harness.errors import UsageError
from harness.measure import formulas as M
from harness.measure.answers import Deciding
from harness.measure.hooks import routed
from harness.measure.passes import CHUNK, Accumulator, Participant, forward_pass
from harness.measure.summary import ModelSummary, PairSummary, PassStats, add_pair
from harness.system.files import cache_root, cached_dir

TOPK = 256  # baseline log-probabilities kept per position
ROWS = 16  # query rows per sequence kept of every head's attention
FORMAT = 2  # 2: stable and open generations, answer deciding tokens
_FIELDS = ("sink_mass", "entropy", "massive", "sink_hidden", "sink_k", "sink_v", "votes", "nll")


def sampled_rows(T: int, first_row: int, n: int = ROWS) -> list[int]:
    """n query positions spread evenly over [first_row, T) (all of them when fewer)."""
    last = T - 1
    if last - first_row + 1 <= n:
        return list(range(first_row, T))
    return sorted({first_row + round(j * (last - first_row) / (n - 1)) for j in range(n)})


def root_dir(spec) -> Path:
    return Path(spec.reference_dir) if getattr(spec, "reference_dir", None) else cache_root() / "references"


class Reference:
    """A stored reference, read lazily one batch at a time."""

    def __init__(self, path: Path, built: bool):
        self.path, self.built = Path(path), built
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.rows = self.meta["rows"]

    @property
    def key(self) -> str:
        return self.meta.get("key") or self.path.name

    def batch(self, k: int) -> dict:
        from safetensors.torch import load_file

        return load_file(str(self.path / f"batch-{k:04d}.safetensors"))

    def pass_stats(self, t: dict, k: int):
        """Batch k's stored baseline statistics (t = self.batch(k)) as a measure.PassStats."""

        return PassStats(
            **{f: t[f] for f in _FIELDS if f != "nll"},
            logp=None,
            nll=t["nll"],
            nonfinite_layer=self.meta["nonfinite_layers"][k],
        )

    def summary(self, batches):
        """The baseline's ModelSummary over the corpus, from the stored statistics."""

        s = ModelSummary()
        for k, ids in enumerate(batches):
            t = self.batch(k)
            s.add(self.pass_stats(t, k), ids, t["nll"])
        return s

    def baseline_side(self) -> dict:
        """What the baseline would otherwise compute with its model: its generations (prompts: texts, ids), the
        stability variants' correctness and its side of the behaviour probes."""
        g = self.meta["generations"]
        b = g["behaviour"]
        a = g["answers"]
        return {
            "generations": (g["prompts"]["texts"], g["prompts"]["ids"]),
            "stable_generations": (g["stable"]["texts"], g["stable"]["ids"]),
            "open_generations": (g["open"]["texts"], g["open"]["ids"]),
            "answer_items": {
                "ids": a["ids"],
                "texts": a["texts"],
                "conts": a["conts"],
                "deciding": [Deciding(int(p), int(t), float(m)) for p, t, m in a["deciding"]],
            },
            "variant_correctness": g["variant_correctness"],
            "behaviour": {
                "variants": (b["variants"]["texts"], b["variants"]["ids"]),
                "long": (b["long"]["texts"], b["long"]["ids"]),
                "own_nll": [tuple(x) for x in b["own_nll"]],
                "spread": np.asarray(b["spread"], dtype=float),
            },
        }


def _check_named(path: Path, ident: dict) -> None:
    """--reference-dir naming one reference (not a parent of many) must match this run's inputs."""
    meta = json.loads((path / "meta.json").read_text())
    theirs = meta.get("identity", {})
    if theirs == json.loads(json.dumps(ident, default=str)):
        return
    diffs = []
    for k in sorted(set(ident) | set(theirs)):
        a, b = ident.get(k), theirs.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [
                f"{k}.{x} ({b.get(x)} there, {a.get(x)} here)" for x in sorted(set(a) | set(b)) if a.get(x) != b.get(x)
            ]
        elif a != b:
            diffs.append(f"{k} ({b} there, {a} here)")
    raise UsageError(
        f"reference {path} was made for other inputs: {', '.join(diffs[:6])}; give --reference-dir "
        f"the directory that holds references (each is found by its key) or rebuild it"
    )


def ensure(base, ident: dict, key: str) -> Reference:
    """The run's reference: found by key under --reference-dir (or named by it), or built now with the baseline
    model. ident: what the key digests (config/identity.py reference_identity)."""

    root = root_dir(base.spec)
    if (root / "meta.json").is_file():
        _check_named(root, ident)
        return Reference(root, built=False)
    target = root / key
    hit = cached_dir(target, lambda tmp: build(base, tmp, ident, key), full_check=False)
    if hit:
        base.progress(f"baseline reference {target.name}: found under {root}")
    return Reference(target, built=not hit)


def build(base, out: Path, ident: dict, key: str) -> None:
    """Run the baseline once over the corpus (statistics, top-k log-probabilities, sampled attention
    rows) and once over the prompts; write the reference into out."""
    from safetensors.torch import save_file

    s = base.spec
    model = base.model
    rows = sampled_rows(s.seq_len, max(s.sink_positions) + 1)
    bad = []
    batches = base.batches
    for k, ids in enumerate(batches):
        base.progress(f"baseline reference: corpus batch {k + 1}/{len(batches)}")
        acc = Accumulator(ids, s.sink_positions, rows=rows)
        with torch.no_grad(), routed(model):
            logp = forward_pass(Participant(model), ids, acc, None)
        st = acc.stats(logp)
        top_lp, top_ix = logp.topk(min(TOPK, logp.shape[-1]), dim=-1)
        t = {f: getattr(st, f) for f in _FIELDS if f != "nll"}
        t.update(
            nll=M.token_nll(logp, ids.to(logp.device)).cpu(),
            top_lp=top_lp.cpu().contiguous(),
            top_ix=top_ix.cpu().to(torch.int32).contiguous(),
            attn=torch.stack([acc.kept[i] for i in range(len(acc.kept))], 1).contiguous(),
        )
        del logp
        save_file({n: v.contiguous() for n, v in t.items()}, str(out / f"batch-{k:04d}.safetensors"))
        bad.append(st.nonfinite_layer)
    gens, gids = base.generations
    b = base.behaviour  # the baseline's side of the behaviour probes (variants, long, own NLL, spread)
    ans = base.answer_items  # the deciding tokens of its correct answers (measure/answers.py)

    def pair(texts_ids):
        return {"texts": texts_ids[0], "ids": [list(map(int, x)) for x in texts_ids[1]]}

    meta = {
        "identity": ident,
        "key": key,
        "rows": rows,
        "nonfinite_layers": bad,
        "n_batches": len(batches),
        "generations": {
            "prompts": {"texts": gens, "ids": [list(map(int, x)) for x in gids]},
            "stable": pair(base.stable_generations),
            "open": pair(base.open_generations),
            "variant_correctness": base.variant_correctness,
            "answers": {
                "ids": ans["ids"],
                "texts": ans["texts"],
                "conts": ans["conts"],
                "deciding": [[d.position, d.token, d.margin] for d in ans["deciding"]],
            },
            "behaviour": {
                "variants": {"texts": b["variants"][0], "ids": [list(map(int, x)) for x in b["variants"][1]]},
                "long": {"texts": b["long"][0], "ids": [list(map(int, x)) for x in b["long"][1]]},
                "own_nll": [list(x) for x in b["own_nll"]],
                "spread": [float(x) for x in np.asarray(b["spread"]).ravel()],
            },
        },
    }
    (out / "meta.json").write_text(json.dumps(meta))


def compare(ref: Reference, participant, batches, sink_positions, progress=None, label: str = ""):
    """A quantized participant's corpus passes against the reference: a measure.PairSummary."""

    ps = PairSummary()
    chunk = CHUNK if participant.kv is not None else None
    for k, ids in enumerate(batches):
        t = ref.batch(k)
        acc = Accumulator(ids, sink_positions, rows=ref.rows, ref_attn=lambda i, t=t: t["attn"][:, i])
        with torch.no_grad(), routed(participant.model):
            logp = forward_pass(participant, ids, acc, chunk)
        q = acc.stats(logp)
        q.nll = M.token_nll(logp, ids.to(logp.device)).cpu()
        top_lp, top_ix = t["top_lp"], t["top_ix"].long()
        q.kl = M.topk_kl(top_lp, top_ix, logp).cpu()
        lq = logp.gather(-1, top_ix.to(logp.device)).cpu()
        q.top1 = logp.argmax(-1).cpu() == top_ix[..., 0]  # the baseline's top-1: column 0 of its sorted top-k
        d = (lq - top_lp).abs().max().item()  # over the baseline's top-k tokens (lockstep: every token)
        q.logit_delta_max = d if np.isfinite(d) else float("nan")
        del logp
        add_pair(ps, ref.pass_stats(t, k), q, ids, q.nll)
        if progress:
            progress(f"{label}corpus batch {k + 1}/{len(batches)} against the reference")
    return ps
