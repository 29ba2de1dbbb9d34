"""Does an AWQ checkpoint, as the harness measures it, undo its scales? Weights only, no forward pass.

    python bench/awq_fold.py AWQ_DIR [--model smollm2-135m | --baseline DIR]

AWQ_DIR is an `awq-...` cache directory (a run's results.json gives it as `info.cache_dir`). AWQ multiplies each
input channel j of the Linears that share an input by s_j and divides the preceding op by s_j: the RMSNorm weight
for q/k/v (input_layernorm) and gate/up (post_attention_layernorm), up_proj's rows for down_proj. The model is
loaded the way the harness measures it (transformers, then dense Linears holding the checkpoint's dequantized
weights); per decoder layer it prints the fold read back (s = baseline norm / measured norm) and, per Linear,
the relative error of the measured weight with the fold undone, |W_deq diag(1/s) - W0| / |W0|, next to the error
asymmetric round-to-nearest leaves at the checkpoint's group size and next to the error with the fold ignored.
A fold that is carried shows unfolded errors of the order of RTN's (AWQ trades plain weight error for
activation-weighted error, so somewhat above it) and far below the error with the fold ignored; a fold lost on
the way (norms reset to the baseline's, a scaled Linear without its partner) shows unfolded errors near |s - 1|.
down_proj's s is estimated from up_proj's rows (least squares), so its figure is approximate.

Last line: `unfold_over_rtn_max=<x> nofold_over_rtn_min=<x> s_min=<x> s_max=<x> norms_from_checkpoint=<bool>`.
It also prints what the scale search saw (quantsink-awq-calibration.json, written since the calibration fix).
Measured on tiny Llamas (docs/methods.md, "AWQ on the default model"): unfold/RTN 1.09-1.49, no fold/RTN >= 2.6.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

NORM_FED = {
    "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "post_attention_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def checkpoint_norms(awq_dir: Path) -> dict:
    from safetensors import safe_open

    out = {}
    for f in sorted(awq_dir.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            out.update({k: st.get_tensor(k).float() for k in st.keys() if "norm" in k})
    return out


def audit(awq_dir: Path, baseline_dir: Path) -> dict:
    from harness.methods.awq import densify
    from harness.methods.rtn import fake_quantize
    from harness.models.sources import load_model

    qc = json.loads((awq_dir / "config.json").read_text())["quantization_config"]
    bits, group = qc["bits"], qc["group_size"]
    model = load_model(awq_dir, device_map="cpu")
    densify(model)
    q = {k: v.float() for k, v in model.state_dict().items()}
    b = {k: v.float() for k, v in load_model(baseline_dir).state_dict().items()}
    ck = checkpoint_norms(awq_dir)
    same_norms = all(torch.equal(q[k], v) for k, v in ck.items() if k in q)
    unfold, nofold, s_lo, s_hi = [], [], float("inf"), 0.0
    n_layers = 1 + max(int(k.split(".")[2]) for k in q if k.startswith("model.layers."))
    for i in range(n_layers):
        p = f"model.layers.{i}."
        cols = {}
        for norm, projs in NORM_FED.items():
            s = b[p + norm + ".weight"] / q[p + norm + ".weight"]
            s_lo, s_hi = min(s_lo, float(s.min())), max(s_hi, float(s.max()))
            print(f"layer {i:2d} {norm:24s} s in [{float(s.min()):.4g}, {float(s.max()):.4g}]")
            cols.update(dict.fromkeys(projs, s))
        # up_proj's rows were divided by down_proj's s: estimate it per row, once the norm's columns are undone
        up0, up = b[p + "mlp.up_proj.weight"], q[p + "mlp.up_proj.weight"] / cols["mlp.up_proj"].view(1, -1)
        s_down = (up0 * up0).sum(1) / (up0 * up).sum(1)
        rows = {"mlp.up_proj": s_down}
        cols["mlp.down_proj"] = s_down
        for n in (*NORM_FED["input_layernorm"], *NORM_FED["post_attention_layernorm"], "mlp.down_proj"):
            w0, wq = b[p + n + ".weight"], q[p + n + ".weight"]
            back = wq / cols[n].view(1, -1)
            if n in rows:
                back = back * rows[n].view(-1, 1)
            e_rtn = rel(fake_quantize(w0, bits, group, asym=True), w0)
            e_back, e_raw = rel(back, w0), rel(wq, w0)
            unfold.append(e_back / e_rtn)
            nofold.append(e_raw / e_rtn)
            print(f"    {n:18s} unfolded {e_back:.4f}  fold ignored {e_raw:.4f}  asym RTN w{bits}g{group} {e_rtn:.4f}")
    return dict(
        unfold_over_rtn_max=max(unfold),
        nofold_over_rtn_min=min(nofold),
        s_min=s_lo,
        s_max=s_hi,
        norms_from_checkpoint=same_norms,
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("awq_dir", type=Path)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--model", default="smollm2-135m", help="the baseline the checkpoint was calibrated from")
    g.add_argument("--baseline", type=Path, help="the baseline's directory (instead of --model)")
    a = ap.parse_args(argv)
    if a.baseline is None:
        from harness.models.sources import resolve_model

        a.baseline = resolve_model(a.model).local_dir
    torch.set_num_threads(1)
    record = a.awq_dir / "quantsink-awq-calibration.json"
    print(f"calibration: {record.read_text() if record.is_file() else 'no record (calibrated before the fix)'}")
    r = audit(a.awq_dir, a.baseline)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
