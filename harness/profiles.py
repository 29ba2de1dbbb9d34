"""Profiles: sizes and strictness of a run (smoke is the default). n_prompts, n_stability_prompts: 0 = all."""
from __future__ import annotations

PROFILES = {
    "smoke": dict(corpus="bundled", n_sequences=16, seq_len=128, batch_size=4, max_new_tokens=16, n_prompts=48,
                  gen_batch_size=16, gptq_samples=32, compare="none", signoff=False,
                  long_new_tokens=64, long_n_prompts=4, n_probe_sequences=8, n_stability_prompts=12),
    "nightly": dict(corpus="python-docs", n_sequences=48, seq_len=256, batch_size=4, max_new_tokens=32, n_prompts=0,
                    gen_batch_size=16, gptq_samples=64, compare="latest", signoff=False,
                    long_new_tokens=256, long_n_prompts=8, n_probe_sequences=16, n_stability_prompts=0),
    "signoff": dict(corpus="python-docs", n_sequences=96, seq_len=512, batch_size=2, max_new_tokens=48, n_prompts=0,
                    gen_batch_size=16, gptq_samples=128, compare="pinned", signoff=True,
                    long_new_tokens=256, long_n_prompts=12, n_probe_sequences=32, n_stability_prompts=0),
}
