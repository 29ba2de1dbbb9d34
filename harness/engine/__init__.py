"""One run end to end: the session, the evaluator (lockstep and reference mode), the baseline side, inputs,
the results cache."""
