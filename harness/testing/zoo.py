"""The fault zoo: known damage planted on any Llama-style model the harness loads, each with its ground truth.

Every fault edits (or hooks) a fresh copy of the baseline and returns the place it damaged as
`planted` = {family, layer, module, heads}, recorded in results.json (`info.planted`) so a bench can
score the diagnosis against it (bench/diagnosis_accuracy.py). Strength s in (0, 1] scales the damage;
s = 1 replaces what it damages. Families use the diagnosis's own names (harness/advice/diagnosis.py).

    neuron   the MLP neuron whose down_proj column builds the sink's massive activation (found at load
             time: the largest |down_proj output| at position 0 in the first half of the layers; that
             column scaled by 1 - s)                                   -> sink damage at that layer
    query    one query head's q_proj rows mixed with a column permutation of themselves (l, h)
    key      one key/value head's k_proj rows, the same way (h counts KV heads) -> head damage at l
    mlp      one layer's MLP computes a wrong function: its output plus a fixed random function of its input,
             of norm s x MLP_NOISE x the residual stream's median token norm     -> local damage at l
    kvsink   the sink's keys (position 0) scaled by 1 - s in every layer as they are cached; the
             weights and the sink's own hidden state are the baseline's        -> kv-cache
    late     after the n-th decoded token of a generation, the last layer's output is mixed with a
             permutation of itself; prefill (corpus, prompts) is untouched     -> long-only
    diffuse  every decoder Linear gets Gaussian noise of s x DIFFUSE x its own standard deviation
                                                                                -> diffuse damage
    bf16, fp16  the weights rounded to that type and back (benign)              -> no damage
"""

from __future__ import annotations

import torch

from harness.measure.generation import DECODE_ONLY
from harness.models.structure import decoder_layers

NO_DAMAGE = "no damage"
FAMILY = {
    "neuron": "sink damage",
    "sink": "sink damage",
    "query": "head damage",
    "key": "head damage",
    "mlp": "local damage",
    "kvsink": "kv-cache",
    "late": "long-only",
    "diffuse": "diffuse damage",
    "bf16": NO_DAMAGE,
    "fp16": NO_DAMAGE,
    "noop": NO_DAMAGE,
    "nan": "non-finite",
}
SEED = 1234
DIFFUSE = 0.25  # fault-diffuse: noise of s x this x each weight's standard deviation (s = 1: about 2-3 bit RTN)
MLP_NOISE = 2.0  # fault-mlp: the MLP's output gets s x this x the residual stream's typical token norm
PROBE_TEXT = "The capital of France is Paris. The quick brown fox jumps over the lazy dog near the river."


def truth(family: str, layer: int | None = None, module: str | None = None, heads: list | None = None) -> dict:
    return {"family": family, "layer": layer, "module": module, "heads": list(heads or [])}


def _mix(w: torch.Tensor, s: float) -> torch.Tensor:
    """(1 - s) w + s w[:, perm]: the same norms, reading other input features (s = 1 replaces w)."""
    g = torch.Generator().manual_seed(SEED)
    perm = torch.randperm(w.shape[1], generator=g).to(w.device)
    return (1 - s) * w + s * w[:, perm]


def _attn(layer):
    return getattr(layer, "self_attn", None) or layer.attn


def _need(mod, name: str, spec: str):
    lin = getattr(mod, name, None)
    if lin is None or getattr(lin, "weight", None) is None:
        raise ValueError(f"{spec}: this model's blocks have no {name} (the zoo plants faults on Llama-style blocks)")
    return lin


def _layer_index(layers, layer: int | None, spec: str) -> int:
    if layer is None:
        raise ValueError(f"{spec}: give the layer (-l<N>)")
    if not 0 <= layer < len(layers):
        raise ValueError(f"{spec}: layer {layer} is outside 0..{len(layers) - 1}")
    return layer


def plant(cfg, model, tokenizer=None) -> dict:
    """Damage `model` in place as cfg (FaultConfig) says; returns the ground truth."""
    kind, s, spec = cfg.kind, cfg.strength, cfg.spec
    layers = decoder_layers(model)
    with torch.no_grad():
        if kind == "neuron":
            layer, neuron = sink_neuron(model, tokenizer)
            down = _need(layers[layer].mlp, "down_proj", spec)
            down.weight[:, neuron] *= 1 - s
            return truth(FAMILY[kind], layer, f"layers.{layer}.mlp.down_proj") | {"neuron": neuron}
        if kind in ("query", "key"):
            i = _layer_index(layers, cfg.layer, spec)
            attn = _attn(layers[i])
            lin = _need(attn, "q_proj" if kind == "query" else "k_proj", spec)
            cf = model.config
            d = getattr(cf, "head_dim", None) or cf.hidden_size // cf.num_attention_heads
            n = cf.num_attention_heads if kind == "query" else (getattr(cf, "num_key_value_heads", None) or 1)
            h = cfg.head or 0
            if not 0 <= h < n:
                raise ValueError(f"{spec}: head {h} is outside 0..{n - 1}")
            rows = slice(h * d, (h + 1) * d)
            lin.weight[rows] = _mix(lin.weight[rows], s)
            group = cf.num_attention_heads // n if kind == "key" else 1
            heads = list(range(h * group, (h + 1) * group))
            return truth(FAMILY[kind], i, f"layers.{i}.self_attn.{'q' if kind == 'query' else 'k'}_proj", heads)
        if kind == "mlp":
            i = _layer_index(layers, cfg.layer, spec)
            _hook_mlp(layers[i], s)
            return truth(FAMILY[kind], i, f"layers.{i}.mlp")
        if kind == "kvsink":
            _hook_sink_keys(layers, s, spec)
            return truth(FAMILY[kind])
        if kind == "late":
            _hook_late(layers, s, cfg.after)
            setattr(model, DECODE_ONLY, True)  # it counts decode steps: a teacher-forced pass never reaches it
            return truth(FAMILY[kind])
        if kind == "diffuse":
            g = torch.Generator().manual_seed(SEED)
            for layer in layers:
                for lin in layer.modules():
                    if isinstance(lin, torch.nn.Linear):
                        w = lin.weight
                        noise = torch.randn(w.shape, generator=g).to(w.device, w.dtype)
                        w.add_(noise * (s * DIFFUSE) * w.float().std().to(w.dtype))
            return truth(FAMILY[kind])
        if kind in ("bf16", "fp16"):
            dt = torch.bfloat16 if kind == "bf16" else torch.float16
            for p in model.parameters():
                if p.is_floating_point():
                    p.copy_(p.to(dt).to(p.dtype))
            return truth(NO_DAMAGE)
    raise ValueError(f"{spec}: not a zoo fault")


@torch.no_grad()
def sink_neuron(model, tokenizer=None) -> tuple[int, int]:
    """(layer, neuron) that builds the sink's massive activation: in the first half of the layers, the layer
    whose down_proj writes the largest |value| at position 0, and the neuron contributing most to it."""
    layers = decoder_layers(model)
    if tokenizer is not None:
        ids = tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"][:, :32]
    else:
        ids = torch.arange(1, 17)[None] % model.config.vocab_size
    seen: dict[int, tuple] = {}
    hooks = []
    for i, layer in enumerate(layers[: max(1, len(layers) // 2)]):
        down = getattr(getattr(layer, "mlp", None), "down_proj", None)
        if down is None:
            continue

        def grab(mod, args, out, _i=i):
            seen[_i] = (args[0][0, 0].float(), out[0, 0].float())

        hooks.append(down.register_forward_hook(grab))
    try:
        model(input_ids=ids.to(model.device))
    finally:
        for h in hooks:
            h.remove()
    if not seen:
        raise ValueError("the model's MLPs have no down_proj: the neuron fault needs Llama-style blocks")
    layer = max(seen, key=lambda i: float(seen[i][1].abs().max()))
    act, out = seen[layer]
    dim = int(out.abs().argmax())
    w = layers[layer].mlp.down_proj.weight[dim].float()
    return layer, int((act * w).abs().argmax())


def _hook_sink_keys(layers, s: float, spec: str) -> None:
    """Scale position 0's keys by 1 - s as k_proj writes them (every layer); position 0 reads only itself, so
    its own output (the sink's hidden state) is untouched: only the cache later positions read changes."""
    where: dict = {}
    for layer in layers:
        lin = _need(_attn(layer), "k_proj", spec)

        def note(mod, args, kwargs):
            where["pos"] = kwargs.get("position_ids")

        def scale(mod, args, out):
            pos = where.get("pos")
            if pos is None or out.dim() != 3 or pos.shape[-1] != out.shape[1]:
                return out
            first = (pos == 0).expand(out.shape[0], -1)
            if not bool(first.any()):
                return out
            out = out.clone()
            out[first] = out[first] * (1 - s)
            return out

        layer.register_forward_pre_hook(note, with_kwargs=True)
        lin.register_forward_hook(scale)


def _hook_late(layers, s: float, after: int) -> None:
    """After `after` decode steps (one-token forwards since the last prefill), mix the last layer's output
    with a permutation of itself: generations diverge late; corpus passes and prompts never reach it."""
    state = {"steps": 0}
    g = torch.Generator().manual_seed(SEED)
    perm: dict = {}

    def count(mod, args):
        hidden = args[0]
        state["steps"] = state["steps"] + 1 if hidden.shape[1] == 1 else 0

    def damage(mod, args, output):
        if state["steps"] <= after:
            return output
        h = output[0] if isinstance(output, tuple) else output
        if "p" not in perm:
            perm["p"] = torch.randperm(h.shape[-1], generator=g).to(h.device)
        mixed = (1 - s) * h + s * h[..., perm["p"]]
        return (mixed, *output[1:]) if isinstance(output, tuple) else mixed

    layers[0].register_forward_pre_hook(count)
    layers[-1].register_forward_hook(damage)


def _hook_mlp(layer, s: float) -> None:
    """Add to the layer's MLP output a fixed random function of the MLP's input, scaled to s x MLP_NOISE of the
    residual stream's median token norm (the same absolute size at every position, the sink's included)."""
    state: dict = {}
    g = torch.Generator().manual_seed(SEED)

    def note(mod, args):
        h = args[0]
        state["norm"] = h.float().norm(dim=-1).flatten().median()

    def damage(mod, args, out):
        x = args[0]
        if "R" not in state:
            state["R"] = torch.randn(x.shape[-1], out.shape[-1], generator=g).to(x.device, x.dtype)
        d = x @ state["R"]
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return out + (s * MLP_NOISE * state["norm"]).to(out.dtype) * d

    layer.register_forward_pre_hook(note)
    layer.mlp.register_forward_hook(damage)
