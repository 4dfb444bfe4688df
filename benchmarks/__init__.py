"""Budgets for every lab: `python -m benchmarks.run [--quick]` (see benchmarks/run.py)."""
