"""Run the selected deployment scenarios for the baseline and a group of configurations.

The baseline's side of each scenario is measured once per run and kept on the Baseline
(`scenario_state`: raw arrays, records, seconds); streaming runs the baseline again with every group, chunk by
chunk beside the quantized models, because its per-position KL needs both models' outputs at once
and holding the baseline's full-vocabulary outputs for long sequences is what the chunking avoids.
A configuration whose KV cache is quantized reads its own quantized cache in every scenario: streaming
through one that evicts the same positions (measure.evicting), packing and BOS through a chunked prefill.
"""

from __future__ import annotations

import time

import numpy as np

from harness.data.tokens import probe_index, tokenizer_adds_bos
from harness.scenarios import evidence as E
from harness.scenarios import selected
from harness.scenarios.bos import measure


class _Side:
    """The baseline's side of the scenarios, kept on the Baseline for the whole run."""

    def __init__(self, base):
        st = base.scenario_state
        self.raw, self.records, self.seconds = (st.setdefault(k, {}) for k in ("raw", "records", "seconds"))


def _shown(name: str) -> str:
    return "baseline" if name == "__baseline__" else name


def records(base) -> dict:
    """The baseline's scenario records for results.json ({} when no scenario ran)."""
    return dict(base.scenario_state.get("records") or {})


def run_group(base, parts: dict) -> dict:
    """{spec: (scenarios record, gate views) or the exception that ended its scenarios} for the
    configurations in parts ({spec: measure.Participant})."""
    out: dict = {spec: ({}, {}) for spec in parts}
    side = _Side(base)
    for name in selected(base.spec):
        t0 = time.perf_counter()
        res = RUNNERS[name](base, parts, side)
        secs = round(time.perf_counter() - t0, 3)
        side.seconds[name] = round(side.seconds.get(name, 0.0) + secs, 3)
        side.records[name]["seconds"] = side.seconds[name]
        for spec, r in res.items():
            if isinstance(out[spec], BaseException):
                continue
            if isinstance(r, BaseException):
                out[spec] = r
                continue
            rec, views = r
            rec["group_seconds"] = secs
            out[spec][0][name] = rec
            out[spec][1].update(views)
    return out


def _each(base, parts: dict, fn) -> dict:
    """fn(spec, participant) for every configuration; an exception ends that configuration only."""
    out = {}
    for spec, p in parts.items():
        try:
            out[spec] = fn(spec, p)
        except Exception as e:  # one configuration's failure is recorded on it, never the group's
            out[spec] = e
    return out


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _stack(parts: list[dict]) -> dict:
    """Batches of streaming.per_sequence() output joined (kl stays None for the reference model)."""
    return {k: None if parts[0][k] is None else np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---- streaming ----


def _streaming(base, parts: dict, side: _Side) -> dict:
    from harness.measure.evicting import kv_record
    from harness.measure.passes import CHUNK as KV_CHUNK
    from harness.scenarios.streaming import (
        CHUNK,
        POLICIES,
        long_sequences,
        per_sequence,
        stream,
    )

    s, raw = base.spec, side.raw
    if "streaming_ids" not in raw:
        raw["streaming_ids"] = long_sequences(
            base.tokenizer, base.inputs.corpus, s.n_probe_sequences, s.stream_len, s.bos
        )
    ids, docs, spans = raw["streaming_ids"]
    plain = {spec: p.model for spec, p in parts.items() if p.kv is None}
    quant = {spec: p.model for spec, p in parts.items() if p.kv is not None}
    kvs = {spec: p.kv for spec, p in parts.items() if p.kv is not None}
    reads: dict = {}

    def run(models: dict, chunk: int = CHUNK) -> dict:
        got: dict = {n: {p: [] for p in POLICIES} for n in models}
        for p in POLICIES:
            for a in range(0, len(ids), s.batch_size):
                base.progress(
                    f"scenario streaming: {p}, sequences {a + 1}-{min(a + s.batch_size, len(ids))} of "
                    f"{len(ids)} x {ids.shape[1]} tokens ({', '.join(_shown(n) for n in models)})"
                )
                out = stream(models, ids[a : a + s.batch_size], p, s.stream_sinks, s.stream_window, chunk, kvs, reads)
                for n, r in per_sequence(out, s.stream_window).items():
                    got[n][p].append(r)
        return {n: {p: _stack(rs) for p, rs in d.items()} for n, d in got.items()}

    def run_all(models: dict, chunk: int) -> dict:
        """{spec: raw of the run it took part in, or its exception}: together, else each alone beside the baseline."""
        if not models:
            return {}
        try:
            got = run({"__baseline__": base.model, **models}, chunk)
            return dict.fromkeys(models, got)
        except Exception:  # find which configuration fails
            for spec in models:
                reads.pop(spec, None)
            return _each(base, models, lambda spec, m: run({"__baseline__": base.model, spec: m}, chunk))

    # KV-cache configurations read their own quantized cache, which evicts the same positions; they run in
    # KV_CHUNK-token calls (as the corpus passes prefill them) so the residual and later tokens see the cache
    # as decoding would, beside a baseline run of their own (its figures equal the plain run's to float noise)
    per = {**run_all(plain, CHUNK), **run_all(quant, KV_CHUNK)}
    if "streaming" not in side.records:
        ok = next((g for g in per.values() if not isinstance(g, BaseException)), None)
        if ok is None:
            raw_b = run({"__baseline__": base.model})["__baseline__"]
        else:
            raw_b = ok["__baseline__"]
        raw["streaming"] = raw_b
        side.records["streaming"] = {
            "settings": {
                "seq_len": int(ids.shape[1]),
                "sinks": s.stream_sinks,
                "window": s.stream_window,
                "chunk": CHUNK,
                "n_sequences": len(ids),
                "docs_per_sequence": float(np.mean(spans)),
                "built_from": "corpus documents joined by EOS and cut into pieces of seq_len tokens "
                "(a piece spans several documents where they are shorter)",
                "loss_positions": f"predicting positions t >= {s.stream_window} (where eviction has begun)",
            },
            **E.streaming_side(raw_b, docs),
            "curve": E.curve(raw_b),
        }
    raw_b = raw["streaming"]
    out = {}
    for spec, p in parts.items():
        got = per[spec]
        if isinstance(got, BaseException):
            out[spec] = got
            continue
        raw_q = got[spec]
        rec = E.streaming_config(raw_b, raw_q, docs, spans)
        rec["curve"] = E.curve(raw_q)
        _, views = E.views("streaming", E.streaming_evidence(raw_b, raw_q, docs))
        rec["vs_baseline"]["gap_delta"] = views["stream_gap_delta"].as_dict()
        if p.kv is not None:
            r = reads.get(spec, {})
            rec["kv_cache"] = {
                **kv_record(p.kv),
                "chunk": KV_CHUNK,
                "quantized_read_share": round(r["quantized"] / r["total"], 4) if r.get("total") else None,
            }
        out[spec] = (rec, views)
    return out


# ---- packed documents ----


def _packed(base, parts: dict, side: _Side) -> dict:
    from harness.measure.evicting import kv_record
    from harness.measure.passes import CHUNK as KV_CHUNK
    from harness.scenarios.packing import (
        EPS,
        N_DOCS,
        SUBS,
        measure,
        pack,
        pieces,
        separator_id,
        sub_name,
    )

    s, raw, tok = base.spec, side.raw, base.tokenizer
    body = max(32, s.seq_len // 2)
    if "packed_pieces" not in raw:
        raw["packed_pieces"] = pieces(tok, base.inputs.corpus, s.n_probe_sequences, body)
    groups, firsts = raw["packed_pieces"]
    layouts, skipped = {}, {}
    for sep, masked in SUBS:
        sid = separator_id(tok, sep)
        if sep != "none" and sid is None:
            skipped[sub_name(sep, masked)] = f"the tokenizer has no {sep.upper()} token: sub-scenario skipped"
        else:
            layouts[(sep, masked)] = [pack(g, sep, sid) for g in groups]

    def run(model, who: str = "baseline", kv=None) -> dict:
        res = {}
        for (sep, masked), lays in layouts.items():
            base.progress(
                f"scenario packed: {who}, {sub_name(sep, masked)}, {len(lays)} sequences x {len(lays[0].ids)} tokens"
            )
            res[(sep, masked)] = _concat(
                [
                    measure(model, lays[a : a + s.batch_size], masked, kv, KV_CHUNK)
                    for a in range(0, len(lays), s.batch_size)
                ]
            )
        return res

    if "packed" not in raw:
        raw["packed"] = run(base.model)
        side.records["packed"] = {
            "settings": {
                "docs_per_sequence": N_DOCS,
                "tokens_per_document": body,
                "n_sequences": len(groups),
                "sink_eps": EPS,
                "gated": "eos",
                "separators": {
                    sep: tok.decode([separator_id(tok, sep)]) if separator_id(tok, sep) is not None else None
                    for sep in ("eos", "bos")
                },
            },
            "subs": {
                **{sub_name(*k): {"docs": E.packed_side(v, firsts)} for k, v in raw["packed"].items()},
                **{k: {"skipped": v} for k, v in skipped.items()},
            },
        }
    raw_b = raw["packed"]

    def one(spec, p):
        raw_q = run(p.model, spec, p.kv)
        rec = {
            "subs": {
                **{sub_name(*k): E.packed_config(raw_b[k], v, firsts) for k, v in raw_q.items()},
                **{k: {"skipped": v} for k, v in skipped.items()},
            }
        }
        if p.kv is not None:  # read through its quantized cache, prefilled in KV_CHUNK-token calls
            rec["kv_cache"] = {**kv_record(p.kv), "cache": "transformers' QuantizedCache", "chunk": KV_CHUNK}
        if ("eos", False) in raw_q:
            _, views = E.views("packed", E.packed_evidence(raw_b[("eos", False)], raw_q[("eos", False)], firsts))
        else:
            views = E.views("packed", None, absent=skipped["eos"])[1]
        return rec, views

    return _each(base, parts, one)


# ---- BOS policy ----


def _bos(base, parts: dict, side: _Side) -> dict:
    s, raw, tok = base.spec, side.raw, base.tokenizer
    bos_id = tok.bos_token_id
    if bos_id is None:
        why = "the tokenizer has no BOS token: nothing to add or remove"
        side.records["bos"] = {"skipped": why}
        return {spec: ({"skipped": why}, E.views("bos", None, absent=why)[1]) for spec in parts}

    ids = base.probe_sequences
    docs = [base.sequence_docs[i] for i in probe_index(len(base.sequences), s.n_probe_sequences)]
    auto = "always" if tokenizer_adds_bos(tok) else "never"
    if "bos" not in raw:
        base.progress(f"scenario bos: baseline, {len(ids)} sequences, BOS always and never")
        raw["bos"] = measure(base.model, ids, bos_id, batch=s.batch_size)
        side.records["bos"] = {
            "settings": {
                "bos_token": tok.decode([bos_id]),
                "auto": auto,
                "n_sequences": len(ids),
                "seq_len": int(ids.shape[1]),
            },
            **E.bos_side(raw["bos"], auto, docs),
        }
    raw_b = raw["bos"]

    def one(spec, p):
        base.progress(f"scenario bos: {spec}, {len(ids)} sequences, BOS always and never")
        raw_q = measure(p.model, ids, bos_id, p.kv, batch=s.batch_size)
        rec = E.bos_config(raw_b, raw_q, auto, docs)
        _, views = E.views("bos", E.bos_evidence(raw_b, raw_q, docs))
        rec["vs_baseline"] = {"removal_delta": views["bos_removal_delta"].as_dict()}
        return rec, views

    return _each(base, parts, one)


RUNNERS = {"streaming": _streaming, "packed": _packed, "bos": _bos}
