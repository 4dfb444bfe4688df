"""The ``labkit-course`` command (also installed as ``labkit``): the instructor's and maintainer's tools.

labkit-course sync [--check]     regenerate student files from solutions/ (--check: fail if stale)
labkit-course run [--labs 1,3] [--quick] [--out build/run]
                                 execute the solved notebooks headless, offline; report time and memory
labkit-course course build DIR [--labs 1,3] [--no-generate] [--cell-timeout S]
                                 write an nbgrader course (source/, nbgrader_config.py, release/, gradebook.db)
labkit-course grade COURSE LAB [--workers N] [--students a,b] [--sandbox require|fallback]
             [--cell-timeout S] [--timeout S] [--budget S] [--memory-mb M] [--no-feedback] [--csv FILE]
                                 autograde every submission of a lab: sandboxed, judged, summarized
labkit-course gradescope build LAB [--out autograder.zip]
                                 Gradescope's autograder.zip for a lab (the same judge)
labkit-course gradescope run [--root /autograder]
                                 what the zip's run_autograder runs on Gradescope
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def _labs(text: str | None):
    """The labs ``--labs`` names (default: every lab); SystemExit with the reason otherwise."""
    from labkit.labs import parse_labs
    from labkit_course.repo import available_labs

    try:
        return parse_labs(text) if text else available_labs()
    except ValueError as exc:
        raise SystemExit(f"--labs: {exc}" if text else str(exc)) from None


def cmd_sync(args) -> int:
    from labkit_course.repo import REPO
    from labkit_course.sync import sync

    stale = sync(check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    if args.check and stale:
        print("student files are out of date with solutions/: run `labkit-course sync`", file=sys.stderr)
        return 1
    if not stale:
        print("student files are in sync with solutions/")
    return 0


def cmd_run(args) -> int:
    import nbformat

    from labkit_course.notebooks import execute_notebook
    from labkit_course.repo import solved_tree

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        tree = solved_tree(Path(tmp))
        for lab in _labs(args.labs):
            path = tree / "notebooks" / f"{lab.notebook}.ipynb"
            params = None
            if args.quick:
                params = nbformat.read(path, as_version=4).metadata.get("labkit", {}).get("quick_parameters")
            print(f"lab {lab.number} ({lab.title}): running...", flush=True)
            result = execute_notebook(path, cwd=tree / "notebooks", pythonpath=tree, parameters=params)
            nbformat.write(result.notebook, out / f"{lab.notebook}.ipynb")
            status = "FAILED" if result.error else "ok"
            failed += bool(result.error)
            print(
                f"lab {lab.number}: {status} in {result.seconds:.0f} s, peak kernel memory "
                f"{result.peak_rss_mb:.0f} MB -> {out / (lab.notebook + '.ipynb')}"
            )
            if result.error:
                print(str(result.error)[-2000:], file=sys.stderr)
    return 1 if failed else 0


def cmd_course(args) -> int:
    from labkit_course.build import assignment_id, build_course

    labs = _labs(args.labs)
    course = build_course(Path(args.dir), labs, generate=not args.no_generate, cell_timeout=args.cell_timeout)
    print(f"course written to {course}")
    for lab in labs:
        aid = assignment_id(lab)
        print(
            f"  {aid}: {lab.title} -> source/{aid}/ ({lab.notebook}.ipynb + labkit/, student module "
            f"labkit/{lab.module}.py)" + ("" if args.no_generate else f", release/{aid}/")
        )
    print(
        "next: `cd` there and use nbgrader (release_assignment / collect or zip_collect), "
        "then `labkit-course grade` (see docs/instructors.md)"
    )
    return 0


def cmd_grade(args) -> int:
    import pandas as pd

    from labkit_course.build import lab_in_course
    from labkit_course.grading import grade
    from labkit_course.sandbox import Limits, SandboxUnavailable

    limits = Limits(cell_timeout=args.cell_timeout, wall_timeout=args.timeout, memory_mb=args.memory_mb)
    students = [s for s in args.students.split(",") if s] if args.students else None
    try:
        aid, _ = lab_in_course(Path(args.course), args.lab)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        table = grade(
            Path(args.course),
            aid,
            workers=args.workers,
            students=students,
            limits=limits,
            feedback=not args.no_feedback,
            sandbox_mode=args.sandbox,
            budget=args.budget,
        )
    except SandboxUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    if table.empty:
        print("no submissions found (expected submitted/<student>/lab<N>/)")
        return 1
    with pd.option_context("display.width", 200, "display.max_colwidth", 80, "display.max_rows", 500):
        print(table.drop(columns=["notes"]))
        noted = table[table["notes"] != ""]
        if len(noted):
            print("\nnotes:")
            for student, note in noted["notes"].items():
                print(f"  {student}: {note}")
    if args.csv:
        table.to_csv(args.csv)
        print(f"summary written to {args.csv}")
    print(f"summary also in {Path(args.course) / 'reports' / f'{aid}.csv'}")
    counts = table["status"].value_counts().to_dict()
    print("\n" + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return 0


def cmd_gradescope(args) -> int:
    from labkit.labs import get_lab
    from labkit_course import gradescope

    if args.action == "build":
        try:
            lab = get_lab(args.lab)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        out = gradescope.build_zip(lab, Path(args.out), sandbox_mode=args.sandbox)
        print(f"Gradescope autograder for lab {args.lab} written to {out}: upload it as the assignment's autograder")
        return 0
    results = gradescope.run_autograder(Path(args.root), sandbox_mode=args.sandbox)
    graded = f"score {results['score']:g}" if "score" in results else "NOT GRADED (the autograder failed)"
    print(f"{graded} -> {Path(args.root) / 'results' / 'results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit-course", description="Instructor and maintainer tools of the labkit course."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_sync_and_run, _add_course, _add_grade, _add_gradescope):
        add(sub)
    return parser


def _sandbox_option(parser, help: str) -> None:
    from labkit_course.sandbox import MODES

    parser.add_argument("--sandbox", choices=MODES, default="require", help=help)


def _add_sync_and_run(sub) -> None:
    p = sub.add_parser("sync", help="regenerate student files from solutions/")
    p.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("run", help="execute the solved notebooks headless and offline")
    p.add_argument("--labs", help="comma-separated lab numbers (default: all)")
    p.add_argument("--quick", action="store_true", help="use each notebook's quick parameters")
    p.add_argument("--out", default="build/run", help="where to write executed notebooks")
    p.set_defaults(func=cmd_run)


def _add_course(sub) -> None:
    from labkit_course.build import DEFAULT_CELL_TIMEOUT

    actions = sub.add_parser("course", help="build an nbgrader course from the repo").add_subparsers(
        dest="action", required=True
    )
    b = actions.add_parser("build", help="write source/, nbgrader_config.py, and run nbgrader generate_assignment")
    b.add_argument("dir", help="the course directory (created if missing; rebuilding keeps the gradebook)")
    b.add_argument("--labs", help="comma-separated lab numbers (default: all available)")
    b.add_argument("--no-generate", action="store_true", help="don't run nbgrader generate_assignment")
    b.add_argument(
        "--cell-timeout",
        type=int,
        default=DEFAULT_CELL_TIMEOUT,
        help=f"per-cell timeout written to nbgrader_config.py (default {DEFAULT_CELL_TIMEOUT} s)",
    )
    b.set_defaults(func=cmd_course)


def _add_grade(sub) -> None:
    from labkit_course.grading import BUDGET
    from labkit_course.sandbox import Limits

    p = sub.add_parser("grade", help="autograde every submission of a lab (sandboxed, in parallel)")
    p.add_argument("course", help="the course directory")
    p.add_argument("lab", help="lab number (or lab<N>)")
    p.add_argument("--workers", type=int, default=1, help="submissions graded at once (default 1)")
    p.add_argument("--students", help="comma-separated student ids (default: all in submitted/)")
    p.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout, help="seconds per cell")
    p.add_argument("--timeout", type=int, default=Limits.wall_timeout, help="seconds per sandboxed process")
    p.add_argument(
        "--budget",
        type=float,
        default=BUDGET,
        help=f"seconds per submission, judge and notebook together (default {BUDGET})",
    )
    p.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="memory limit per submission")
    p.add_argument("--no-feedback", action="store_true", help="skip nbgrader generate_feedback")
    p.add_argument("--csv", help="also write the summary table to this CSV file")
    _sandbox_option(
        p,
        "require (default): refuse to grade without bubblewrap; fallback: grade with resource limits only, "
        "and say so in every report",
    )
    p.set_defaults(func=cmd_grade)


def _add_gradescope(sub) -> None:
    p = sub.add_parser("gradescope", help="Gradescope: build the autograder zip, or run it")
    gsub = p.add_subparsers(dest="action", required=True)
    b = gsub.add_parser("build", help="write autograder.zip for a lab")
    b.add_argument("lab", help="lab number")
    b.add_argument("--out", default="autograder.zip", help="where to write the zip (default autograder.zip)")
    _sandbox_option(b, "require (default): no bubblewrap, no grade; fallback: grade with limits only, and say so")
    b.set_defaults(func=cmd_gradescope)
    r = gsub.add_parser("run", help="judge /autograder/submission and write results/results.json")
    r.add_argument("--root", default="/autograder", help="the autograder tree (default /autograder)")
    _sandbox_option(r, "require (default) or fallback")
    r.set_defaults(func=cmd_gradescope)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
