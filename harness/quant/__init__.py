"""Quantization: spec grammar, configs, registry and the one `quantize` entry point."""
from .configs import QuantConfig
from .registry import METHODS, expand_shorthand, parse_spec, parse_specs

__all__ = ["QuantConfig", "METHODS", "parse_spec", "parse_specs", "expand_shorthand"]
