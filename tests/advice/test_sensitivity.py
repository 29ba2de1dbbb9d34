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
