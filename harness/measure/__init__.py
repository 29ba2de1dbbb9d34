"""Forward passes that measure: hooks, lockstep turn-taking, streaming passes, tensor formulas, KV caches,
sink protection, generation, behaviour probes, the stored baseline reference."""
