"""Test helper: a throwaway third-party quantization method, installed through an entry point."""


def method_plugin(site, name: str, handler_body: str, packages: tuple = (), extra: dict | None = None) -> None:
    """Write a third-party method package into `site` (a directory to put on PYTHONPATH): module
    qs_<name> registering method `name` (spec `<name>-w8`, 8 bits) whose handler runs handler_body
    (with `model = ctx.load_baseline()` done and `model` returned), an entry point in the group
    quantsink.methods, and any extra modules {module name: source}."""
    site.mkdir(parents=True, exist_ok=True)
    body = "\n".join("    " + line for line in handler_body.strip().splitlines())
    (site / f"qs_{name}.py").write_text(f"""
from dataclasses import dataclass
from harness.methods import QuantConfig, register_handler, register_method

@register_method({name!r}, examples="{name}-w8", packages={tuple(packages)!r}, install="pip install qs-{name}")
@dataclass(frozen=True)
class Config(QuantConfig):
    @property
    def spec(self):
        return "{name}-w8"
    @property
    def bits(self):
        return 8
    @classmethod
    def parse(cls, spec, tokens):
        return cls()

@register_handler(Config)
def quantize(cfg, ctx):
    model = ctx.load_baseline()
{body}
    return model
""")
    for mod, src in (extra or {}).items():
        (site / f"{mod}.py").write_text(src)
    dist = site / f"qs_{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: qs-{name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[quantsink.methods]\n{name} = qs_{name}\n")
