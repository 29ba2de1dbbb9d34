"""What a metric is (the catalogue), the statistics behind intervals, and per-item evidence -> values. Torch-free."""
