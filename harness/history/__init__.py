"""Earlier runs: the index, pins, --compare and comparability."""
