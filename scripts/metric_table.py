"""Print the gate-relevant figures of a results.json (used to calibrate docs/policy.md)."""

import json
import sys

r = json.load(open(sys.argv[1]))
b = r["baseline"]
print(f"baseline loss {b['loss']:.4f} sink_rate {b['sink_rate']:.3f} sink_rate_08 {b['sink_rate_08']:.3f}")
cols = [
    "ppl_ratio",
    "kld_mean",
    "kld_p99",
    "top1_agreement",
    "sink_rate_delta",
    "sink_mass_shift",
    "sink_hidden_cos",
    "attn_js",
    "flip_rate",
    "degenerate_rate",
    "misgeneration_rate",
]
print("| config | q s | " + " | ".join(cols) + " |")
for c in r["configs"]:
    m = c["metrics"]
    views = {g["metric"]: g for g in c["gates"]}
    vals = []
    for k in cols:
        v = views[k]["value"] if k in views else m.get(k)
        vals.append("n/a" if v is None or isinstance(v, list) else f"{v:.4g}")
    print(f"| {c['spec']} | {c['quantize_seconds']} | " + " | ".join(vals) + " |")
