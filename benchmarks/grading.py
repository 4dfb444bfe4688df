"""Budgets of the grading pipeline (issue 7): autograding throughput, sequential vs parallel,
and the time to autograde one submission of Lab 1.

    python -m benchmarks.run --labs grading [--quick]

Full mode grades two perfect submissions of Lab 1 with the real notebook and the default
limits, once sequentially and once with ``--workers 2``; quick mode uses the tiny fake lab
of the tests.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import row

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the toy lab of the grading tests


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
    from labkit.grading import grade

    start = time.perf_counter()
    table = grade(course, lab, workers=workers, students=students, limits=limits, feedback=False, progress=False)
    return time.perf_counter() - start, table


def budgets(quick: bool = False) -> list[dict]:
    from labkit.course import LABS, REPO
    from labkit.grading import Limits, assignment_id, build_course

    tmp = Path(tempfile.mkdtemp(prefix="labkit-bench-grading-"))
    try:
        if quick:
            from grading_samples.toy_lab import TOY, make_repo, make_submissions

            repo, lab, n = make_repo(tmp / "repo"), TOY, 2
            limits = Limits(cell_timeout=30, wall_timeout=120, memory_mb=2048)
            course = build_course(tmp / "course", [lab], repo=repo)
            students = make_submissions(course, assignment_id(lab), only=["perfect", "partial"])
            label = "toy lab (quick)"
        else:
            lab, n, limits = LABS[1], 2, Limits()
            course = build_course(tmp / "course", [lab], repo=REPO)
            students = _perfect_submissions(course, assignment_id(lab), lab.module,
                                            REPO / "solutions" / "labkit" / f"{lab.module}.py", n)
            label = f"lab {lab.number}"
        seq_s, seq = _throughput(course, lab.number, students, 1, limits)
        par_s, par = _throughput(course, lab.number, students, 2, limits)
        cols = ["status", "auto_total"]
        same = seq[cols].sort_index().equals(par[cols].sort_index())
        per_sub = seq["seconds"].max()
        return [
            row(lab.number, f"autograding throughput, sequential ({label}, {n} submissions)",
                f"{60 * n / seq_s:.2f} submissions/min", (seq["status"] == "graded").all()),
            row(lab.number, "autograding throughput, --workers 2: same grades as sequential, and not slower",
                f"{60 * n / par_s:.2f} submissions/min ({seq_s / par_s:.2f}x sequential)", same and par_s <= seq_s),
            row(lab.number, f"one submission autogrades in < 2 min ({label})",
                f"{per_sub:.0f} s (max over {n}, sequential; auto score {seq['auto_total'].max():g})", per_sub < 120),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
