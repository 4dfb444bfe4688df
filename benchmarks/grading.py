"""Budgets of grading: what the judge adds, parallel throughput, and the Gradescope zip.

    python -m benchmarks.run --labs grading [--quick]

Full mode grades four perfect submissions of Lab 1 (real notebook, default limits), once sequentially
and once with ``--workers 2``, and runs the Gradescope zip's ``run_autograder`` on one of them in a
fake ``/autograder`` tree. Each submission's time splits into the sandboxed notebook run (what
grading did before the judge) and the judge, measured side by side in the same run. Quick mode
uses the tiny fake lab of the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.common import row


def _perfect_submissions(course: Path, aid: str, module: str, solution: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"student{i + 1:02d}"
        dest = course / "submitted" / name / aid
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(course / "release" / aid, dest)
        shutil.copy(solution, dest / "labkit" / f"{module}.py")
        names.append(name)
    return names


def _throughput(course: Path, lab, students: list[str], workers: int, limits) -> tuple[float, object]:
    from labkit_course.grading import grade

    start = time.perf_counter()
    table = grade(course, lab, workers=workers, students=students, limits=limits, feedback=False, progress=False)
    return time.perf_counter() - start, table


def _gradescope_seconds(lab, repo: Path, solution: Path, tmp: Path) -> tuple[float, float]:
    """Seconds for the zip's run_autograder on one submission, and its score."""
    from labkit_course.gradescope import build_zip

    root = tmp / "autograder"
    zip_path = build_zip(lab, tmp / "autograder.zip", repo=repo)
    zipfile.ZipFile(zip_path).extractall(root / "source")
    (root / "submission").mkdir(parents=True)
    shutil.copy(solution, root / "submission" / f"{lab.module}.py")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), LABKIT_AUTOGRADER_PYTHON=sys.executable)
    start = time.perf_counter()
    subprocess.run(
        ["bash", str(root / "source" / "run_autograder")], env=env, check=True, timeout=900, capture_output=True
    )
    seconds = time.perf_counter() - start
    return seconds, json.loads((root / "results" / "results.json").read_text())["score"]


def budgets(quick: bool = False) -> list[dict]:
    from labkit.labs import LABS
    from labkit_course.build import assignment_id, build_course
    from labkit_course.repo import REPO
    from labkit_course.sandbox import Limits

    tmp = Path(tempfile.mkdtemp(prefix="labkit-bench-grading-"))
    try:
        if quick:
            from tests.grading_samples.toy_lab import SOLUTION, TOY, make_repo, make_submissions

            repo, lab, n = make_repo(tmp / "repo"), TOY, 2
            limits = Limits(cell_timeout=30, wall_timeout=120, memory_mb=2048)
            course = build_course(tmp / "course", [lab], repo=repo)
            students = make_submissions(course, assignment_id(lab), only=["perfect", "partial"])
            solution = tmp / "toy.py"
            solution.write_text(SOLUTION)
            label = "toy lab (quick)"
        else:
            repo, lab, n, limits = REPO, LABS[1], 4, Limits()  # closer to a class-sized batch than 2
            course = build_course(tmp / "course", [lab], repo=REPO)
            solution = REPO / "solutions" / "labkit" / f"{lab.module}.py"
            students = _perfect_submissions(course, assignment_id(lab), lab.module, solution, n)
            label = f"lab {lab.number}"
        seq_s, seq = _throughput(course, lab.number, students, 1, limits)
        par_s, par = _throughput(course, lab.number, students, 2, limits)
        gs_s, gs_score = _gradescope_seconds(lab, repo, solution, tmp)
        cols = ["status", "auto_total"]
        same = seq[cols].sort_index().equals(par[cols].sort_index())
        judge_s = seq["judge_seconds"]
        notebook_s = seq["seconds"] - judge_s
        overhead = (judge_s / notebook_s).max()
        full = seq["auto_total"].max()
        return [
            row(
                lab.number,
                f"judging adds <= 20% to grading one submission ({label}, sequential, side by side)",
                f"judge {judge_s.mean():.1f} s vs sandboxed notebook run {notebook_s.mean():.1f} s: "
                f"+{100 * overhead:.0f}% (worst of {n}); auto score {full:g}",
                overhead <= 0.20,
            ),
            row(
                lab.number,
                f"autograding throughput, sequential ({label}, {n} submissions)",
                f"{60 * n / seq_s:.2f} submissions/min",
                (seq["status"] == "graded").all(),
            ),
            row(
                lab.number,
                "--workers 2 throughput >= 1.4x sequential on 2 cores, same grades",
                f"{60 * n / par_s:.2f} submissions/min ({seq_s / par_s:.2f}x sequential)",
                same and seq_s / par_s >= 1.4,
            ),
            row(
                lab.number,
                f"Gradescope zip grades one submission in < 3 min ({label}, fake /autograder tree)",
                f"{gs_s:.0f} s, score {gs_score:g}",
                gs_s < 180 and gs_score == full,
            ),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
