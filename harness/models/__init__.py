"""Where a model comes from and how it loads: sources, tiny models, decoder structure, placement."""
