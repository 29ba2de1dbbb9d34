"""After the gates: per-module sensitivity, keep recommendations and the diagnosis."""
