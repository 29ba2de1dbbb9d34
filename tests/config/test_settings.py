"""Settings declared once: profiles as changes over a parent, every setting's role in the run's identity."""


def test_profiles_are_changes_over_a_parent():
    from harness.config.settings import PROFILES, profile_values

    assert PROFILES["signoff"].parent == "nightly" and PROFILES["nightly"].parent == "smoke"
    night, sign = profile_values("nightly"), profile_values("signoff")
    assert sign["corpus"] == night["corpus"] == "python-docs"  # inherited, not restated
    assert "corpus" not in PROFILES["signoff"].changes
    from harness.config.settings import BY_NAME

    assert set(PROFILES) == set(BY_NAME["profile"].choices)


def test_every_setting_has_a_role_and_the_measurement_key_follows_it():
    """A setting whose role is baseline or measuring changes the results-cache key; a run setting does not."""
    from types import SimpleNamespace

    from harness.config import identity
    from harness.config.settings import ROLES, SETTINGS, profile_values

    assert all(s.role in ROLES for s in SETTINGS)
    values = profile_values("smoke")
    inputs = SimpleNamespace(
        source=SimpleNamespace(sha256="w", local_dir="d"),
        corpus=SimpleNamespace(sha256="c"),
        prompts=SimpleNamespace(sha256="p"),
    )
    q = SimpleNamespace(method="rtn", cache_identity=lambda: {"spec": "rtn-w8"})

    def key(**over):
        d = {**values, **over}
        spec = SimpleNamespace(**d, to_dict=lambda: d)
        return identity.measurement_key(spec, inputs, q)

    base = key()
    for s in SETTINGS:
        changed = key(**{s.name: "something else"}) != base
        assert changed == (s.role in ("baseline", "measuring")), (s.name, s.role)
