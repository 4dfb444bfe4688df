"""A tiny fake lab ("toy") and the sample submissions the grading tests autograde.

Everything is generated: ``make_repo`` writes a repo-shaped tree (``labkit/`` copied
from the real package plus ``labkit/check/toy.py``, ``solutions/labkit/toy.py``,
``solutions/notebooks/00_toy.ipynb`` with nbgrader metadata); ``make_submissions``
derives one submission per case from the released assignment. The toy lab needs no
torch, so autograding one submission takes a few seconds.
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit.course import REPO, Lab

TOY = Lab(0, "00_toy", "toy", "Toy lab")

SOLUTION = '''\
"""Toy exercises (for testing the grading pipeline)."""


def scale(xs, k):
    """Return the list ``xs`` with every element multiplied by ``k``."""
    if not isinstance(xs, list):
        raise TypeError(f"xs must be a list; got {type(xs).__name__}")
    ### BEGIN SOLUTION
    return [k * x for x in xs]
    ### END SOLUTION


def total(xs):
    """Return the sum of the list ``xs``."""
    if not isinstance(xs, list):
        raise TypeError(f"xs must be a list; got {type(xs).__name__}")
    ### BEGIN SOLUTION
    s = 0
    for x in xs:
        s += x
    return s
    ### END SOLUTION
'''

CHECKS = '''\
"""Public checks of the toy lab."""
from labkit.check.runner import Exercise, check


@check("scales [1, 2, 3] by 2")
def scales_small(fn):
    assert fn([1, 2, 3], 2) == [2, 4, 6]


@check("scales the empty list")
def scales_empty(fn):
    assert fn([], 5) == []


@check("sums [1, 2, 3]")
def sums_small(fn):
    assert fn([1, 2, 3]) == 6


scale = Exercise("toy", "scale", [scales_small, scales_empty])
total = Exercise("toy", "total", [sums_small])
'''

POINTS = {"test_scale": 2.0, "test_total": 3.0, "answer": 1.0}


def _meta(**kw):
    base = {"grade": False, "solution": False, "locked": False, "schema_version": 3}
    base.update(kw)
    return {"nbgrader": base}


def solved_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# Toy lab\nScale and sum lists.", metadata=_meta(locked=True, grade_id="intro")),
        new_code_cell("import os\nfrom labkit import check\nimport labkit.check.toy\nfrom labkit.toy import scale, total\n"
                      "print('LABKIT_THREADS =', os.environ.get('LABKIT_THREADS'))",
                      metadata=_meta(locked=True, grade_id="setup")),
        new_code_cell(textwrap.dedent("""\
            assert check.toy.scale()
            ### BEGIN HIDDEN TESTS
            import random
            from labkit.grading import hidden_seed
            rng = random.Random(hidden_seed())
            for _ in range(5):
                xs = [rng.randint(-50, 50) for _ in range(rng.randint(1, 8))]
                k = rng.randint(-9, 9)
                assert scale(xs, k) == [k * x for x in xs], "scale() is wrong on random inputs"
            ### END HIDDEN TESTS"""),
            metadata=_meta(grade=True, locked=True, points=2, grade_id="test_scale")),
        new_code_cell(textwrap.dedent("""\
            assert check.toy.total()
            ### BEGIN HIDDEN TESTS
            import random
            from labkit.grading import hidden_seed
            rng = random.Random(hidden_seed() + 1)
            for _ in range(5):
                xs = [rng.randint(-50, 50) for _ in range(rng.randint(0, 8))]
                assert total(xs) == sum(xs), "total() is wrong on random inputs"
            ### END HIDDEN TESTS"""),
            metadata=_meta(grade=True, locked=True, points=3, grade_id="test_total")),
        new_markdown_cell("Why does `total([])` return 0?", metadata=_meta(locked=True, grade_id="question")),
        new_markdown_cell("Because the sum of nothing is the additive identity, 0.",
                          metadata=_meta(grade=True, solution=True, points=1, grade_id="answer")),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_repo(dest: Path) -> Path:
    """A repo-shaped tree holding the real labkit package plus the toy lab."""
    dest = Path(dest)
    shutil.copytree(REPO / "labkit", dest / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "labkit" / "check" / "toy.py").write_text(CHECKS)
    (dest / "solutions" / "labkit").mkdir(parents=True)
    (dest / "solutions" / "notebooks").mkdir(parents=True)
    # the toy lab only: the real labs' modules would be stubbed into the course too (harmless but slower)
    for old in (dest / "labkit").glob("*.py"):
        if old.stem in {"saliency", "adversarial", "classviz", "noise", "robust_features"}:
            old.unlink()
    (dest / "solutions" / "labkit" / "toy.py").write_text(SOLUTION)
    nbformat.write(solved_notebook(), dest / "solutions" / "notebooks" / "00_toy.ipynb")
    return dest


# ----------------------------------------------------------------------------------------------
# Sample submissions: name -> (module source or None for the stub, notebook edit, extra edits)
# ----------------------------------------------------------------------------------------------
def _solution_body() -> str:
    return SOLUTION.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION\n", "")


PARTIAL = _solution_body().replace("    s = 0\n    for x in xs:\n        s += x\n    return s\n", "    return 0\n")
HARDCODED = '''\
def scale(xs, k):
    return {(1, 2, 3): [2, 4, 6]}.get(tuple(xs), [])


def total(xs):
    return 6
'''
LOOP = _solution_body().replace("    s = 0\n    for x in xs:", "    s = 0\n    while True:\n        pass\n    for x in xs:")
NOISY = _solution_body().replace(
    '    return [k * x for x in xs]\n',
    '    import sys, warnings\n    warnings.warn("scale() is noisy")\n'
    '    print("debug: scaling", file=sys.stderr)\n    return [k * x for x in xs]\n')
HUGE = _solution_body().replace('    return [k * x for x in xs]\n',
                                '    hog = bytearray(16 * 2**30)\n    return [k * x for x in xs]\n')
CRASH = _solution_body().replace("    s = 0\n", "    import os\n    os._exit(1)  # the kernel dies\n    s = 0\n")
SNOOP = _solution_body().replace(
    '    return [k * x for x in xs]\n',
    '    import glob\n    for path in glob.glob("../../../*.db"):\n        open(path, "rb").read()\n'
    '    return [k * x for x in xs]\n')

#: student -> expected (auto score of test_scale, of test_total, status)
EXPECTED = {
    "perfect": (2.0, 3.0, "graded"),
    "stub": (0.0, 0.0, "graded"),
    "partial": (2.0, 0.0, "graded"),
    "hardcoded": (0.0, 0.0, "graded"),
    "edit_test_cell": (0.0, 0.0, "graded"),
    "edit_helper": (0.0, 0.0, "graded"),
    "infinite_loop": (2.0, 0.0, "graded"),
    "stderr_noise": (2.0, 3.0, "graded"),
    "malformed": (0.0, 0.0, "failed"),
    "huge_allocation": (0.0, 3.0, "graded"),
    "reads_gradebook": (0.0, 0.0, "flagged"),
    "kernel_crash": (2.0, 0.0, "graded"),
}


def make_submissions(course: Path, aid: str = "lab0", only: list[str] | None = None) -> list[str]:
    """Write ``submitted/<student>/<aid>/`` for every sample, from ``release/<aid>``."""
    course = Path(course)
    release = course / "release" / aid
    names = only or list(EXPECTED)
    for name in names:
        dest = course / "submitted" / name / aid
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(release, dest)
        (dest / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
        module = dest / "labkit" / "toy.py"
        nb_path = dest / "00_toy.ipynb"
        nb = nbformat.read(nb_path, as_version=4)
        answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
        answer.source = "Because an empty sum is 0."
        source = {
            "perfect": _solution_body(), "partial": PARTIAL, "hardcoded": HARDCODED,
            "infinite_loop": LOOP, "stderr_noise": NOISY, "huge_allocation": HUGE,
            "reads_gradebook": SNOOP, "edit_helper": HARDCODED, "kernel_crash": CRASH,
        }.get(name)
        if source is not None:
            module.write_text(source)
        if name == "edit_test_cell":
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_"):
                    cell.source = "print('all tests passed')"
        if name == "edit_helper":  # make every public check pass, whatever the code
            runner = dest / "labkit" / "check" / "runner.py"
            runner.write_text(runner.read_text().replace(
                "    def __call__(self, fn: Callable | None = None, verbose: bool = True) -> Report:\n",
                "    def __call__(self, fn: Callable | None = None, verbose: bool = True) -> Report:\n"
                "        return True\n"))
            (dest / "labkit" / "grading.py").write_text("def hidden_seed():\n    return 0\n")
        nbformat.write(nb, nb_path)
        if name == "malformed":
            nb_path.write_text('{"cells": [ this is not json')
    return names
