"""Quantization methods: one module per method (config + handler), a registry, the spec grammar.

    from harness.methods import parse_spec, quantize
    model, seconds = quantize(parse_spec("rtn-w4g32"), ctx)

Third-party methods register through the entry-point group `quantsink.methods`.
"""

from harness.methods.base import BIT_CLASSES, QuantConfig, QuantContext, class_of_bits
from harness.methods.registry import (
    availability,
    bit_class,
    expand_shorthand,
    get_method,
    methods,
    parse_spec,
    parse_specs,
    quantize,
    register_handler,
    register_method,
)

__all__ = [
    "BIT_CLASSES",
    "QuantConfig",
    "QuantContext",
    "class_of_bits",
    "availability",
    "bit_class",
    "expand_shorthand",
    "get_method",
    "methods",
    "parse_spec",
    "parse_specs",
    "quantize",
    "register_handler",
    "register_method",
]
