"""Per-module sensitivity: keeping modules replays the unchanged prefix exactly."""

from harness.methods import parse_spec


def test_replayed_prefix_gives_the_full_pass_scores(tiny):
    """Keeping modules from layer l on replays layers 0..l-1 from the plain pass: the same scores as a full pass."""
    import torch

    from harness.advice.sensitivity import Probe, measure_keep
    from harness.methods.keep import restore, swap_in
    from harness.methods.rtn import apply_rtn
    from harness.models.sources import load_model, resolve_model

    base, _ = tiny("llama")
    q = apply_rtn(load_model(resolve_model("tiny-llama").local_dir), parse_spec("rtn-w2g16"))
    probe = Probe(base, torch.randint(0, 250, (2, 32), generator=torch.Generator().manual_seed(0)))
    plain = probe.plain(q)
    for names in (["layers.2"], ["layers.1.mlp.down_proj", "layers.3"]):
        fast = measure_keep(probe, q, base, names)
        old = swap_in(q, base, names)
        full = probe.score(q)
        restore(q, old)
        assert fast == full and fast["kld_mean"] != plain["kld_mean"]
    assert probe.score(q) == plain  # restored: the configuration itself again


def test_probe_scores_each_heads_attention_and_replays_it(tiny):
    """With attention scored (the search aims at attn_js), each head's mean JS against the baseline is 0 for the
    baseline itself, and a keep that replays the unchanged prefix gives the full pass's JS, layer by layer."""
    import torch

    from harness.advice.sensitivity import Probe, measure_keep
    from harness.methods.keep import restore, swap_in
    from harness.methods.rtn import apply_rtn
    from harness.models.sources import load_model, resolve_model

    base, _ = tiny("llama")
    q = apply_rtn(load_model(resolve_model("tiny-llama").local_dir), parse_spec("rtn-w2g16"))
    probe = Probe(base, torch.randint(0, 250, (2, 32), generator=torch.Generator().manual_seed(0)), attention=True)
    assert all(x == 0.0 for row in probe.score(base)["attn_js"] for x in row)
    plain = probe.plain(q)
    assert len(plain["attn_js"]) == 4 and min(min(row) for row in plain["attn_js"]) > 0
    fast = measure_keep(probe, q, base, ["layers.2"])
    old = swap_in(q, base, ["layers.2"])
    full = probe.score(q)
    restore(q, old)
    assert fast["attn_js"][:2] == plain["attn_js"][:2]
    assert fast["attn_js"] == full["attn_js"] and fast["attn_js"][2] != plain["attn_js"][2]
