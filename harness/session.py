"""The Session owns one run: inputs, baseline, each configuration's measurements and gates.

Everything is computed lazily and once: the baseline when first needed, each
quantized model when its first gate asks, then freed. The pytest plugin and the
plain-Python API (`harness.api.run`) drive the same object, so both write the
same results.json.
"""
from __future__ import annotations

import gc
import os
import time
from functools import cached_property

from .errors import MissingBackend, QuantsinkError, UsageError
from .policy import load_policy
from .progress import heartbeat
from .quant.configs import QuantConfig, RTNConfig
from .quant.registry import bit_class
from .spec import RunSpec


class Session:
    def __init__(self, spec: RunSpec, progress=None, substitute=None):
        self.spec = spec
        self.progress = progress or (lambda msg: print(f"[quantsink] {msg}", flush=True))
        # Test hook: substitute(q) may return another QuantConfig to measure under q's name
        # (recorded as `measured_as`); see the pytest hook pytest_quantsink_measure_as.
        self.substitute = substitute or (lambda q: None)
        self.configs: dict[str, dict] = {}
        self.created = time.time()
        self._prepared = False
        self.junit_per_item = False  # set by the plugin: record_property needs junit_family xunit1
        self._base_summary = None  # baseline statistics from the first comparison pass

    # ---- inputs (all usage errors surface here, before any test runs) ----
    def prepare(self) -> "Session":
        if self._prepared:
            return self
        from .data import load_corpus, load_prompts
        from .models import resolve_model

        s = self.spec
        self.policy = load_policy(s.policy)
        self.corpus = load_corpus(s.corpus)
        self.prompts = load_prompts(s.prompts).subset(s.n_prompts)
        self.source = resolve_model(s.model, s.revision, allow_pickle=s.allow_pickle)
        self._check_shapes()
        self._resolve_compare()
        self._prepared = True
        return self

    def _resolve_compare(self) -> None:
        from .history import check_comparable, identity, resolve, session_identity

        s = self.spec
        self.earlier, self.compare_note = resolve(s.compare, s.report_dir, s.model, s.compare_explicit)
        if self.earlier is not None:
            check_comparable(session_identity(self), identity(self.earlier), self.earlier.get("run_id", "earlier run"))

    def _check_shapes(self) -> None:
        """RTN group sizes must divide every quantized layer's input width: check on a meta-device model.

        (GPTQModel accepts a partial last group, e.g. g128 on SmolLM2's width 576.)
        """
        needs = [q for q in self.spec.quant if isinstance(q, RTNConfig) and q.group_size]
        if not needs:
            return
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from .quant.rtn import quantizable_weights

        cfg = AutoConfig.from_pretrained(self.source.local_dir, trust_remote_code=self.spec.trust_remote_code)
        with torch.device("meta"):
            meta = AutoModelForCausalLM.from_config(cfg, trust_remote_code=self.spec.trust_remote_code)
        for q in needs:
            for name, mod, transposed in quantizable_weights(meta):
                width = mod.weight.shape[0] if transposed else mod.weight.shape[1]
                if width % q.group_size:
                    raise UsageError(f"{q.spec}: group size {q.group_size} does not divide the input width "
                                     f"{width} of {name}; use a group size that divides {width}")

    def gate_metrics(self, q: QuantConfig) -> list[str]:
        return list(self.policy.gates_for(bit_class(q)))

    def _earlier_config(self, q: QuantConfig) -> dict | None:
        if self.earlier is None:
            return None
        return next((c for c in self.earlier.get("configs", []) if c.get("spec") == q.spec), None)

    def regression_metrics(self, q: QuantConfig) -> list[str]:
        """Metrics with a regression tolerance that the earlier run measured for q."""
        c = self._earlier_config(q)
        if c is None or c.get("verdict") == "skipped":
            return []
        return [m for m in self.policy.regression if m in (c.get("gate_views") or {})]

    def regression_result(self, q: QuantConfig, metric: str) -> dict:
        from .regression import RegressionCheck

        entry = self.measure(q)
        done = {r["metric"]: r for r in entry.setdefault("regressions", [])}
        if metric in done:
            return done[metric]
        earlier = (self._earlier_config(q).get("gate_views") or {}).get(metric, {})
        now = (entry.get("gate_views") or {}).get(metric, {})
        ci = (now.get("ci_low"), now.get("ci_high")) if now.get("ci_low") is not None else None
        res = RegressionCheck(q.spec, metric, self.policy.regression[metric]).evaluate(
            earlier.get("value"), now.get("value"), ci, self.earlier.get("run_id", "earlier run"))
        entry["regressions"].append(res)
        return res

    def _setup_threads(self) -> None:
        import torch

        n = self.spec.threads or (int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else None)
        if n is None:
            n = default_threads()
        torch.set_num_threads(n)
        self.threads = n

    # ---- baseline ----
    @cached_property
    def tokenizer(self):
        from .models import load_tokenizer

        return load_tokenizer(self.source.local_dir, self.spec.trust_remote_code)

    def load_baseline(self):
        from .models import load_model

        return load_model(self.source.local_dir, dtype=self.spec.baseline_dtype, device=self.spec.device,
                          allow_pickle=self.spec.allow_pickle, trust_remote_code=self.spec.trust_remote_code)

    @cached_property
    def baseline_model(self):
        self.prepare()
        self._setup_threads()
        self.progress(f"loading baseline {self.spec.model} ({self.spec.baseline_dtype}, {self.spec.device})")
        return self.load_baseline()

    @cached_property
    def sequences(self):
        from .tokens import corpus_sequences

        return corpus_sequences(self.tokenizer, self.corpus, self.spec.n_sequences, self.spec.seq_len,
                                self.spec.bos)

    @property
    def batches(self):
        seqs, b = self.sequences, self.spec.batch_size
        return [seqs[i:i + b] for i in range(0, len(seqs), b)]

    @cached_property
    def baseline(self) -> dict:
        from .measure import run_single
        from .summarize import baseline_metrics

        summary = self._base_summary
        if summary is None:  # no configuration measured (yet): a baseline-only pass
            self.progress(f"baseline pass over {len(self.sequences)} sequences x {self.spec.seq_len} tokens")
            summary = run_single(self.baseline_model, self.batches, self.spec.sink_positions)
        return baseline_metrics(summary, self.tokenizer, self.spec.sink_positions)

    @cached_property
    def baseline_generations(self):
        """Greedy continuations of the baseline for the run's prompts (cached on disk)."""
        return self._baseline_gen("prompts", [p.prompt for p in self.prompts.prompts], self.spec.max_new_tokens)

    def _baseline_gen_key(self, tag: str = "") -> str:
        import hashlib
        import json

        from . import __version__
        from .results import _version

        s = self.spec
        blob = {"model": self.source.sha256 or str(self.source.local_dir), "revision": s.revision,
                "prompts": self.prompts.sha256, "ids": [p.id for p in self.prompts.prompts],
                "new": s.max_new_tokens, "batch": s.gen_batch_size, "bos": s.bos, "dtype": s.baseline_dtype,
                "device": s.device, "harness": __version__, "torch": _version("torch"),
                "transformers": _version("transformers"), "threads": getattr(self, "threads", None),
                "tag": tag}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:24]

    # ---- configurations ----
    def calibration(self, n: int, seed: int):
        """n corpus samples for GPTQ calibration, drawn with a seed; returns (texts, sha256)."""
        import hashlib
        import random

        docs = list(self.corpus.documents)
        rng = random.Random(seed)
        chunks = []
        for d in docs:
            chunks += [d[i:i + 1200] for i in range(0, len(d), 1200) if len(d[i:i + 1200].strip()) > 100]
        picked = rng.sample(chunks, min(n, len(chunks)))
        return picked, hashlib.sha256("\x00".join(picked).encode()).hexdigest()

    def measure(self, q: QuantConfig) -> dict:
        """Quantize, measure and gate q (once); returns its results entry.

        In lockstep mode the first call measures every configuration of the run together,
        so the baseline's forward pass runs once per corpus batch instead of once per
        configuration.
        """
        if q.spec not in self.configs:
            todo = [c for c in self.spec.quant if c.spec not in self.configs] if self.lockstep else [q]
            if q not in todo:
                todo.append(q)
            self._measure_group(todo)
        return self.configs[q.spec]

    @cached_property
    def lockstep(self) -> bool:
        """Hold every quantized model at once? 'auto': when they fit comfortably in memory."""
        mode = self.spec.lockstep
        if mode in ("on", "off"):
            return mode == "on"
        n = len(self.spec.quant)
        if n < 2:
            return False
        need = _param_bytes(self.baseline_model) * n  # upper bound: quantized models are smaller
        return need < 0.4 * _free_memory(self.spec.device)

    def _new_entry(self, q: QuantConfig) -> dict:
        entry = {"spec": q.spec, "method": q.method, "bits": q.bits, "group_size": q.group_size,
                 "bit_class": bit_class(q), "config": q.to_dict(), "verdict": "fail",
                 "quantize_seconds": None, "metrics": {}, "gates": [], "generations": []}
        self.configs[q.spec] = entry
        return entry

    def _guard(self, entry: dict, fn, *args):
        """Run one configuration's step; errors end that configuration, never the session."""
        try:
            return fn(*args)
        except MissingBackend as e:
            entry.update(verdict="skipped", skip_reason=str(e))
        except UsageError:
            raise
        except QuantsinkError as e:
            entry.update(verdict="fail", error=f"{type(e).__name__}: {e}")
        except Exception as e:  # a crash in one configuration must not end the session
            entry.update(verdict="fail", error=_one_line(e))
        return None

    @cached_property
    def sink_source(self):
        """The baseline's states of sink prefixes, for the --protect-sink variants."""
        from .protect import SinkSource

        return SinkSource(self.baseline_model, self.spec.sink_positions)

    def _runner(self, q: QuantConfig, model, protect: bool = False):
        from .kvcache import KVSpec
        from .measure import Runner
        from .quant.configs import kv_part

        kv = kv_part(q)
        spec = KVSpec(kv.backend, kv.nbits, kv.group, kv.residual) if kv is not None else None
        return Runner(model, spec, self.sink_source if protect else None)

    def _measure_group(self, qs: list[QuantConfig]) -> None:
        from .measure import run_multi

        if self.spec.unavailable:
            for q in qs:
                self._new_entry(q).update(verdict="skipped", skip_reason=self.spec.unavailable)
            return
        base_model = self.baseline_model
        entries = {q.spec: self._new_entry(q) for q in qs}
        models = {}
        for q in qs:
            m = self._guard(entries[q.spec], self._quantize, q, entries[q.spec])
            if m is not None:
                models[q.spec] = m
        runners = {}
        for q in qs:
            if q.spec in models:
                runners[q.spec] = self._runner(q, models[q.spec])
                if self.spec.protect_sink:
                    runners[q.spec + PROTECTED] = self._runner(q, models[q.spec], protect=True)
        t0 = time.perf_counter()

        def failed(name, e):
            spec = name.removesuffix(PROTECTED)
            if name.endswith(PROTECTED):
                entries[spec]["protected_error"] = _one_line(e)
                return
            entries[spec].update(verdict="fail", error=_one_line(e))
            models.pop(spec, None)

        pairs = run_multi(base_model, runners, self.batches, self.spec.sink_positions,
                          progress=self.progress, on_error=failed) if runners else {}
        corpus_secs = (time.perf_counter() - t0) / max(1, len(models))
        if pairs and self._base_summary is None:
            # The baseline's statistics come from the same forward passes the comparison used
            # (identical for every configuration): no separate baseline pass.
            self._base_summary = next(iter(pairs.values())).base
        for q in qs:
            if q.spec in models and q.spec in pairs:
                entry = entries[q.spec]
                self._guard(entry, self._finish, q, entry, models[q.spec], pairs[q.spec], corpus_secs,
                            pairs.get(q.spec + PROTECTED))
                del models[q.spec]  # frees the model before the next one generates
        models.clear()
        runners.clear()
        gc.collect()

    def quant_context(self, q: QuantConfig):
        """What a quantization handler receives for q in this run."""
        from .quant.base import QuantContext

        return QuantContext(model_dir=self.source.local_dir,
                            model_key=self.source.sha256 or str(self.source.local_dir),
                            dtype=self.spec.baseline_dtype, device=self.spec.device, load_baseline=self.load_baseline,
                            shared_baseline=lambda: self.baseline_model,
                            tokenizer=self.tokenizer, calibration=self.calibration, seed=self.spec.seed,
                            gptq_samples=self.spec.gptq_samples, progress=lambda m: self.progress(f"{q.spec}: {m}"),
                            allow_pickle=self.spec.allow_pickle, trust_remote_code=self.spec.trust_remote_code)

    def _quantize(self, q: QuantConfig, entry: dict):
        from .quant.base import quantize

        ctx = self.quant_context(q)
        target = self.substitute(q) or q
        if target.spec != q.spec:
            entry["measured_as"] = target.spec
            self.progress(f"{q.spec}: measuring {target.spec} instead (pytest_quantsink_measure_as hook)")
        self.progress(f"{q.spec}: quantizing")
        with heartbeat(self.progress, f"{q.spec}: quantizing"):
            model, secs = quantize(target, ctx)
        entry["quantize_seconds"] = round(secs, 3)
        entry["info"] = ctx.info
        entry["module_types"] = ctx.info.pop("quantized_module_types", None) or sorted(
            {type(m).__name__ for m in model.modules()})
        return model

    def _finish(self, q: QuantConfig, entry: dict, model, ps, corpus_secs: float, protected_ps=None) -> None:
        """Metrics, generations and gates of one configuration from its corpus comparison."""
        from .gates import evaluate_gate
        from .summarize import corpus_metrics, generation_metrics, sink_recovery

        t0 = time.perf_counter()
        runner = self._runner(q, model)
        met, views = corpus_metrics(ps, self.spec.seed, self.tokenizer, self.spec.sink_positions)
        gens = self._generations(runner, q.spec)
        gmet, gviews = generation_metrics(gens, self.spec.seed)
        met.update(gmet)
        views.update(gviews)
        bmet, bviews = self._behaviour(q, runner, gens)
        met.update(bmet)
        views.update(bviews)
        for g in gens:
            g.pop("quantized_ids", None)
        if protected_ps is not None:
            pmet, _ = corpus_metrics(protected_ps, self.spec.seed, self.tokenizer, self.spec.sink_positions)
            pgens = self._generations(self._runner(q, model, protect=True), f"{q.spec} (sink protected)")
            pg, _ = generation_metrics(pgens, self.spec.seed)
            keep = ("loss", "loss_delta", "ppl_ratio", "kld_mean", "kld_p99", "top1_agreement", "sink_rate",
                    "sink_hidden_cos", "sink_kv_relerr", "attn_js", "flip_rate", "degenerate_rate",
                    "misgeneration_rate", "mean_first_divergence")
            entry["protected"] = {k: v for k, v in {**pmet, **pg}.items() if k in keep}
            met["sink_recovery"] = sink_recovery(met, entry["protected"])
        elif entry.get("protected_error"):
            met["sink_recovery"] = {"error": entry["protected_error"]}
        entry["measure_seconds"] = round(corpus_secs + time.perf_counter() - t0, 3)
        entry["nonfinite_layer"] = ps.quant.nonfinite_layer
        note = (f"NaN/Inf first appeared in the output of decoder layer {ps.quant.nonfinite_layer}"
                if ps.quant.nonfinite_layer is not None else "")
        entry["metrics"] = met
        entry["generations"] = gens
        entry["gate_views"] = {m: {"value": v.value, "ci_low": v.ci[0] if v.ci else None,
                                   "ci_high": v.ci[1] if v.ci else None, "where": v.where}
                               for m, v in views.items()}
        entry["gates"] = [evaluate_gate(q.spec, m, lim, views[m], note)
                          for m, lim in self.policy.gates_for(bit_class(q)).items()]
        entry["verdict"] = "pass" if all(g["passed"] for g in entry["gates"]) else "fail"

    # ---- generations ----
    def _baseline_gen(self, tag: str, texts: list[str], new_tokens: int, min_new: int = 0):
        """Greedy continuations of the baseline, cached on disk keyed by everything that changes them."""
        import hashlib

        from .generation import generate
        from .storage import cache_get, cache_put, cache_root, file_lock

        extra = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
        key = self._baseline_gen_key(f"{tag}:{extra}:{new_tokens}:{min_new}")
        path = cache_root() / "baseline-gen" / f"{key}.json"
        with file_lock(path.with_suffix(".lock")):
            hit = cache_get(path)
            if hit is not None:
                self.progress(f"baseline generation ({tag}): cached ({path.name})")
                return hit["texts"], hit["ids"]
            self.progress(f"baseline generation ({tag}): {len(texts)} prompts x {new_tokens} tokens")
            with heartbeat(self.progress, f"baseline generation ({tag})"):
                out_t, out_i = generate(self.baseline_model, self.tokenizer, texts, new_tokens,
                                        self.spec.gen_batch_size, self.spec.bos, return_ids=True,
                                        min_new_tokens=min_new)
            cache_put(path, {"texts": out_t, "ids": [list(map(int, x)) for x in out_i]})
        return out_t, out_i

    def _generate(self, runner, texts: list[str], new_tokens: int, label: str, min_new: int = 0):
        from .generation import generate

        self.progress(f"{label}: {len(texts)} prompts x {new_tokens} tokens")
        with heartbeat(self.progress, label):
            return generate(runner.model, self.tokenizer, texts, new_tokens, self.spec.gen_batch_size,
                            self.spec.bos, return_ids=True, kv=runner.kv, protect=runner.protect,
                            min_new_tokens=min_new)

    def _generations(self, runner, name: str = "", prompts=None, base=None, new_tokens=None,
                     min_new: int = 0) -> list[dict]:
        """Per-prompt records comparing the runner's greedy continuations with the baseline's."""
        from .generation import first_divergence, is_correct, is_degenerate

        prompts = self.prompts.prompts if prompts is None else prompts
        base_txt, base_ids = self.baseline_generations if base is None else base
        q_txt, q_ids = self._generate(runner, [p.prompt for p in prompts], new_tokens or self.spec.max_new_tokens,
                                      f"{name + ': ' if name else ''}generation", min_new)
        out = []
        for p, bt, bi, qt, qi in zip(prompts, base_txt, base_ids, q_txt, q_ids):
            refs = list(p.references)
            out.append({"id": p.id, "prompt": p.prompt, "reference": refs[0] if refs else None,
                        "references": refs, "baseline": bt, "quantized": qt,
                        "correct_baseline": is_correct(bt, refs) if refs else None,
                        "correct_quantized": is_correct(qt, refs) if refs else None,
                        "degenerate": is_degenerate(qt, qi), "degenerate_baseline": is_degenerate(bt, bi),
                        "first_divergence": first_divergence(bi, qi), "exact": bi == qi,
                        "quantized_ids": list(map(int, qi))})
        return out

    # ---- behaviour probes (stability, readability, long generations, over-mixing, BOS) ----
    @cached_property
    def long_prompts(self):
        from .data import load_prompts

        allp = load_prompts(self.spec.prompts).prompts
        picked = [p for p in allp if p.long] or [p for p in allp if not p.references] or list(allp)
        return list(picked[:self.spec.long_n_prompts])

    @cached_property
    def probe_sequences(self):
        seqs, n = self.sequences, min(self.spec.n_probe_sequences, len(self.sequences))
        idx = sorted({round(i * (len(seqs) - 1) / max(n - 1, 1)) for i in range(n)})
        return seqs[idx]

    @cached_property
    def _variant_prompts(self):
        from .behaviour import prompt_variants

        ref = [p for p in self.prompts.prompts if p.references]
        n = self.spec.n_stability_prompts
        if 0 < n < len(ref):  # evenly spread, so every prompt family keeps a share
            ref = [ref[(i * len(ref)) // n] for i in range(n)]
        return ref, [v for p in ref for v in prompt_variants(p.prompt)]

    @cached_property
    def _baseline_behaviour(self) -> dict:
        """The baseline's side of every behaviour probe (computed once per run)."""
        from .behaviour import bos_ablation, continuation_nll, perturbation_spread

        s = self.spec
        ref, variants = self._variant_prompts
        out = {"variants": self._baseline_gen("variants", variants, s.max_new_tokens),
               "long": self._baseline_gen("long", [p.prompt for p in self.long_prompts], s.long_new_tokens,
                                          s.long_new_tokens)}
        base_txt, base_ids = self.baseline_generations
        out["own_nll"] = continuation_nll(self.baseline_model, self.tokenizer, [p.prompt for p in self.prompts.prompts],
                                          base_ids, s.bos, s.gen_batch_size)
        ids = self.probe_sequences
        out["spread"] = perturbation_spread(self.baseline_model, ids, max(s.sink_positions) + 1).numpy()
        bos_id = self.tokenizer.bos_token_id
        out["bos"] = bos_ablation(self.baseline_model, ids, bos_id) if bos_id is not None else None
        return out

    def _behaviour(self, q: QuantConfig, runner, gens: list[dict]) -> tuple[dict, dict]:
        from .behaviour import bos_ablation, continuation_nll, perturbation_spread
        from .summarize import behaviour_metrics

        s = self.spec
        base = self._baseline_behaviour
        ref, variants = self._variant_prompts
        var_txt, _ = self._generate(runner, variants, s.max_new_tokens, f"{q.spec}: prompt variants")
        long = self._generations(runner, f"{q.spec}: long", self.long_prompts, base["long"], s.long_new_tokens,
                                 s.long_new_tokens)
        q_nll = continuation_nll(self.baseline_model, self.tokenizer, [p.prompt for p in self.prompts.prompts],
                                 [g["quantized_ids"] for g in gens], s.bos, s.gen_batch_size)
        self.progress(f"{q.spec}: perturbation and BOS probes on {len(self.probe_sequences)} sequences")
        ids = self.probe_sequences
        spread = perturbation_spread(runner.model, ids, max(s.sink_positions) + 1, runner.kv).numpy()
        bos_id = self.tokenizer.bos_token_id
        bos = bos_ablation(runner.model, ids, bos_id, runner.kv) if bos_id is not None else None
        return behaviour_metrics(
            ref=ref, gens=gens, var_base=base["variants"][0], var_quant=var_txt, long=long,
            own_nll=base["own_nll"], q_nll=q_nll, spread_b=base["spread"], spread_q=spread,
            bos_b=base["bos"], bos_q=bos, seed=s.seed)

    def gate_result(self, q: QuantConfig, metric: str) -> dict | None:
        entry = self.measure(q)
        return next((g for g in entry["gates"] if g["metric"] == metric), None)

    # ---- pytest-xdist: workers hand their measurements to the controller ----
    def handoff(self) -> dict:
        out = {"configs": self.configs, "threads": getattr(self, "threads", None),
               "lockstep": self.__dict__.get("lockstep")}
        if any(c["verdict"] != "skipped" for c in self.configs.values()):
            cfg = self.baseline_model.config
            out["baseline"] = self.baseline
            out["n_sequences"] = len(self.sequences)
            out["shape"] = {"num_layers": getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None),
                            "num_heads": getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)}
        return out

    def take_over(self, data: dict) -> None:
        self.configs.update(data.get("configs", {}))
        if data.get("baseline") is not None and "baseline" not in self.__dict__:
            self.__dict__["baseline"] = data["baseline"]
            self.model_shape = data.get("shape")
            self.n_sequences_seen = data.get("n_sequences", 0)
        if data.get("threads") is not None:
            self.threads = data["threads"]

    # ---- outputs ----
    def run_all(self) -> dict:
        self.prepare()
        for q in self.spec.quant:
            self.measure(q)
            for m in self.regression_metrics(q):
                self.regression_result(q, m)
        return self.results()

    def results(self) -> dict:
        from .results import build_results

        return build_results(self)

    def write(self) -> "object":
        from .results import write_run

        return write_run(self.results(), self.spec.report_dir)


PROTECTED = "#sink-protected"  # name suffix of a configuration's --protect-sink variant


def _one_line(e: BaseException) -> str:
    """An exception as one line for results.json: its type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _free_memory(device: str) -> int:
    """Bytes free on the device (CUDA: mem_get_info; CPU: MemAvailable)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def default_threads() -> int:
    """Thread count when neither --qs-threads nor OMP_NUM_THREADS is set.

    Measured with bench/threads.py on the 2-core CI machine (SmolLM2-135M): 2 threads ran the
    captured forward 2.6x and generation 1.5x faster than 1, so use every core.
    """
    return os.cpu_count() or 1

