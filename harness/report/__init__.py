"""What a run writes: results.json, summary.md, report.html and what they share. Torch-free."""
