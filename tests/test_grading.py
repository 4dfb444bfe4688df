"""The instructor grading pipeline (labkit.grading), end to end on a tiny fake lab.

The fake "toy" lab (tests/grading_samples/toy_lab.py) needs no torch, so one
submission autogrades in seconds; the samples cover every case of issue 7.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import grading
from labkit.course import stub_source, student_notebook

sys.path.insert(0, str(Path(__file__).parent))
from grading_samples.toy_lab import EXPECTED, SOLUTION, TOY, make_repo, make_submissions, solved_notebook  # noqa: E402

# Generous for a toy lab: under a loaded CI machine a kernel start alone can take seconds.
LIMITS = grading.Limits(cell_timeout=20, wall_timeout=300, memory_mb=2048)


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    repo = make_repo(root / "repo")
    course = grading.build_course(root / "course", [TOY], repo=repo, cell_timeout=LIMITS.cell_timeout)
    make_submissions(course, "lab0")
    return course


@pytest.fixture(scope="module")
def graded(course):
    before = _tree_hash(course / "submitted")
    table = grading.grade(course, 0, workers=2, limits=LIMITS, progress=False)  # 2 cores
    return table, before


def test_build_writes_an_nbgrader_course(course):
    config = (course / "nbgrader_config.py").read_text()
    assert "c.Autograde.exclude_overwriting = {'lab0': ['labkit/toy.py']}" in config
    assert "labkit.grading.StderrToStdout" in config and "labkit.grading.HideHiddenTests" in config
    source = course / "source" / "lab0"
    assert (source / "00_toy.ipynb").exists()
    # the exercise module in source/ is already the student version: nbgrader copies .py verbatim
    assert (source / "labkit" / "toy.py").read_text() == stub_source(SOLUTION, "toy")
    assert (course / "gradebook.db").exists()


def test_generate_assignment_gives_exactly_the_student_versions(course):
    release = course / "release" / "lab0"
    assert (release / "labkit" / "toy.py").read_text() == stub_source(SOLUTION, "toy")
    released = nbformat.read(release / "00_toy.ipynb", as_version=4)
    expected = student_notebook(solved_notebook())
    assert [c.source for c in released.cells] == [c.source for c in expected.cells]
    text = json.dumps(released)
    assert "HIDDEN TESTS" not in text and "hidden_seed" not in text and "additive identity" not in text
    for path in release.rglob("*.py"):
        assert "### BEGIN SOLUTION" not in [line.strip() for line in path.read_text().splitlines()], path


def test_parallel_kernels_share_the_cores(course, graded):
    """Two workers on N cores: each kernel is told N // 2 threads (oversubscribed kernels crawl)."""
    graded_nb = nbformat.read(course / "autograded" / "perfect" / "lab0" / "00_toy.ipynb", as_version=4)
    setup = next(c for c in graded_nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    printed = "".join(o.get("text", "") for o in setup.outputs)
    assert f"LABKIT_THREADS = {max(1, (os.cpu_count() or 1) // 2)}" in printed


def test_autograde_gives_the_exact_grades(graded):
    table, _ = graded
    got = {s: (row["test_scale"], row["test_total"], row["status"]) for s, row in table.iterrows()}
    assert got == EXPECTED
    # written answers are left for a human grader
    assert table["answer"].isna().all()


def test_gradebook_holds_the_same_grades(course, graded):
    from nbgrader.api import Gradebook

    grading._ensure_bin_on_path()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "labkit") as gb:
        for student, (scale, total, _) in EXPECTED.items():
            sub = gb.find_submission_notebook("00_toy", "lab0", student)
            scores = {g.name: g.auto_score for g in sub.grades}
            assert scores["test_scale"] == scale and scores["test_total"] == total, student
            assert gb.find_grade("answer", "00_toy", "lab0", student).needs_manual_grade


def test_reasons_are_recorded(graded):
    table, _ = graded
    notes = table["notes"].to_dict()
    assert "could not be read" in notes["malformed"]
    assert "per-cell timeout" in notes["infinite_loop"]
    assert "test cell 'test_scale' was edited" in notes["edit_test_cell"]
    assert "labkit/check/runner.py was edited" in notes["edit_helper"]
    assert "gradebook.db" in notes["reads_gradebook"]
    assert "stderr" in notes["stderr_noise"]
    assert "kernel crashed in test cell 'test_total'" in notes["kernel_crash"]
    assert "'test_scale' failed" in notes["huge_allocation"]  # the MemoryError is caught by the checks


def test_submissions_are_never_modified(course, graded):
    _, before = graded
    assert _tree_hash(course / "submitted") == before


def test_feedback_has_no_hidden_tests_and_says_why(course, graded):
    for student in EXPECTED:
        report = (course / "feedback" / student / "lab0" / "grading_report.html").read_text()
        assert f"status: <b>{EXPECTED[student][2]}</b>" in report
        html = course / "feedback" / student / "lab0" / "00_toy.html"
        if EXPECTED[student][2] != "failed":
            text = html.read_text()
            assert "hidden_seed" not in text and "randint" not in text, student
    assert "Notebook does not appear to be JSON" in (
        course / "feedback" / "malformed" / "lab0" / "grading_report.html").read_text()
    assert "a hidden test failed" in (course / "feedback" / "partial" / "lab0" / "00_toy.html").read_text()


def test_sequential_regrade_matches_parallel(course, graded):
    table, _ = graded
    subset = ["partial", "stderr_noise"]
    again = grading.grade(course, 0, workers=1, students=subset, limits=LIMITS, progress=False, feedback=False)
    cols = ["status", "test_scale", "test_total", "auto_total"]
    assert again[cols].sort_index().equals(table.loc[subset, cols].sort_index())


def test_nbgrader_export_writes_a_csv(course, graded):
    grading._nbgrader(course, "export", "--to", str(course / "grades.csv"))
    import pandas as pd

    grades = pd.read_csv(course / "grades.csv")
    perfect = grades[(grades.student_id == "perfect") & (grades.assignment == "lab0")]
    assert float(perfect["raw_score"].iloc[0]) == 5.0
    assert set(EXPECTED) <= set(grades.student_id)


def test_hidden_seed_is_per_student_and_reproducible(monkeypatch):
    a = grading._student_seed("s3cret", "lab1", "alice")
    assert a == grading._student_seed("s3cret", "lab1", "alice")
    assert a != grading._student_seed("s3cret", "lab1", "bob")
    monkeypatch.setenv(grading.SEED_ENV, str(a))
    assert grading.hidden_seed() == a


def test_preprocessors_keep_stderr_and_hide_hidden_tests():
    cell = nbformat.v4.new_code_cell("assert f()\n### BEGIN HIDDEN TESTS\nassert f(secret_input) == 42\n"
                                     "### END HIDDEN TESTS\n")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful\n"),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="",
                               traceback=["----> 3 assert f(secret_input) == 42"]),
    ]
    grading._stderr_to_stdout(cell)
    assert cell.outputs[0]["name"] == "stdout" and "[stderr] UserWarning" in cell.outputs[0]["text"]
    grading._scrub_hidden(cell)
    assert "secret_input" not in json.dumps(cell)
    assert "a hidden test failed" in cell.outputs[1]["evalue"]


def test_gradescope_results_json(course, tmp_path):
    repo = course.parent / "repo"
    partial = course / "submitted" / "partial" / "lab0"
    results = grading.gradescope(TOY, partial, tmp_path / "results.json", repo=repo)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    by_name = {t["name"]: t for t in results["tests"]}
    assert len(by_name) == 3  # one per public check
    assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(5.0)  # the notebook's points
    assert results["score"] == pytest.approx(2.0)  # scale right (2 points), total wrong (3 points)
    assert all(t["visibility"] == "visible" for t in results["tests"])


def test_cli_has_course_grade_and_gradescope_commands():
    from labkit.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["course", "build", "/tmp/c", "--labs", "1,3"])
    assert args.func.__name__ == "cmd_course" and args.labs == "1,3"
    args = parser.parse_args(["grade", "/tmp/c", "1", "--workers", "2", "--csv", "s.csv"])
    assert args.func.__name__ == "cmd_grade" and args.workers == 2 and args.cell_timeout == grading.Limits.cell_timeout
    args = parser.parse_args(["gradescope", "1", "sub", "--out", "r.json"])
    assert args.func.__name__ == "cmd_gradescope"
    assert parser.parse_args(["sync", "--check"]).check
