"""Print the gate-relevant figures of a results.json, one row per configuration (used to calibrate docs/policy.md).

    python scripts/metric_table.py REPORT_DIR/<run_id>/results.json

Columns: every gated metric of the run, in catalogue order (harness.metrics.catalogue).
"""

import json
import sys

from harness.metrics.catalogue import METRICS

r = json.load(open(sys.argv[1]))
b = r["baseline"]
print(f"baseline loss {b['loss']:.4f} sink_rate {b['sink_rate']:.3f} sink_rate_08 {b['sink_rate_08']:.3f}")
gated = {g["metric"] for c in r["configs"] for g in c.get("gates", [])}
cols = [m.name for m in METRICS if m.name in gated]
print("| config | quantize s | " + " | ".join(cols) + " |")
for c in r["configs"]:
    views = {g["metric"]: g for g in c.get("gates", [])}
    vals = []
    for k in cols:
        v = views[k]["value"] if k in views else c["metrics"].get(k)
        vals.append("n/a" if v is None or isinstance(v, list) else f"{v:.4g}")
    print(f"| {c['spec']} | {c['quantize_seconds']} | " + " | ".join(vals) + " |")
