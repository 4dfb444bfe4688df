"""Shared pieces of the budget scripts: timing, rows, and the solved-notebook budget."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nbformat

from labkit.labs import LABS
from labkit_course.notebooks import execute_notebook
from labkit_course.repo import load_reference, solved_tree

__all__ = ["best_time", "row", "notebook_budget", "load_reference"]


def row(lab, budget: str, value: str, ok: bool) -> dict:
    """One line of the results table."""
    return {"lab": str(lab), "budget": budget, "value": value, "ok": bool(ok)}


def best_time(fn, repeats: int = 3):
    """Best wall time of ``repeats`` calls (the least disturbed by other load) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


#: Binder guarantees 1 GB of memory and allows 2 GB (mybinder.org), the Jupyter server included: every
#: solved notebook must peak at 1.4 GB or less in the kernel, at its defaults.
MEMORY_BUDGET_MB = 1.4 * 1024


def notebook_budget(
    lab_number: int, max_seconds: float, max_mb: float = MEMORY_BUDGET_MB, quick: bool = False
) -> list[dict]:
    """Execute a solved notebook headless and offline; rows for its wall time and peak kernel memory."""
    lab = LABS[lab_number]
    with tempfile.TemporaryDirectory() as tmp:
        tree = solved_tree(Path(tmp))
        path = tree / "notebooks" / f"{lab.notebook}.ipynb"
        params = nbformat.read(path, as_version=4).metadata["labkit"]["quick_parameters"] if quick else None
        result = execute_notebook(path, cwd=tree / "notebooks", pythonpath=tree, parameters=params, timeout=1800)
    label = "quick parameters" if quick else "defaults"
    failed = f" (FAILED: {str(result.error).splitlines()[-1][:80]})" if result.error else ""
    return [
        row(
            lab_number,
            f"solved notebook ({label}) < {max_seconds / 60:g} min",
            f"{result.seconds:.0f} s{failed}",
            result.error is None and result.seconds < max_seconds,
        ),
        row(
            lab_number,
            f"solved notebook ({label}) peak kernel memory <= {max_mb / 1024:g} GB (Binder: 1 GB guaranteed)",
            f"{result.peak_rss_mb:.0f} MB",
            result.error is None and result.peak_rss_mb <= max_mb,
        ),
    ]
