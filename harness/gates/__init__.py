"""Decisions: the policy, one gate's outcome and the verdict rule, regression checks, the records a run keeps
of them."""
