"""Autograding a class (labkit_course.grading), end to end on a tiny fake lab, cheats included.

The fake "toy" lab (tests/grading_samples/toy_lab.py) needs no torch, so one submission
autogrades in seconds. Its samples cover honest work, mistakes, resource abuse and attacks on the
grading itself; each has exact expected grades.
"""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from labkit_course import build, crash_tolerant_execute, gradescope, grading, sandbox
from labkit_course.sync import stub_source, student_notebook
from tests.grading_samples.toy_lab import (
    CTYPES_WIPE_HEAD,
    EXPECTED,
    LEFTOVER_MARKER,
    MARKER,
    POINTS,
    SOLUTION,
    TOY,
    make_repo,
    make_submissions,
    solved_notebook,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("grading"),
    pytest.mark.skipif(
        sandbox.bwrap() is None,
        reason=(
            "bubblewrap (bwrap) is missing or not working: the grading sandbox cannot be tested "
            "(apt-get install bubblewrap)"
        ),
    ),
]

# Generous for a toy lab: under a loaded CI machine a kernel start alone can take seconds.
LIMITS = sandbox.Limits(cell_timeout=20, wall_timeout=300, memory_mb=2048)


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("grading") / "repo")


@pytest.fixture(scope="module")
def course(repo):
    course = build.build_course(repo.parent / "course", [TOY], repo=repo, cell_timeout=LIMITS.cell_timeout)
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
    assert "labkit_course.crash_tolerant_execute.CrashTolerantExecute" in config
    source = course / "source" / "lab0"
    assert (source / "00_toy.ipynb").exists()
    # the exercise module in source/ is already the student version: nbgrader copies .py verbatim
    assert (source / "labkit" / "toy.py").read_text() == stub_source(SOLUTION, "toy")
    meta = course / ".labkit"
    assert oct(meta.stat().st_mode & 0o777) == "0o700"
    assert (meta / "judge" / "reference" / "toy.py").read_text() == SOLUTION
    assert (meta / "judge" / "hidden" / "toy.py").exists()
    assert json.loads((meta / "course.json").read_text())["labs"]["lab0"]["cells"] == {
        "test_scale": ["scale"],
        "test_total": ["total"],
    }


def test_generate_assignment_gives_exactly_the_student_versions(course):
    release = course / "release" / "lab0"
    assert (release / "labkit" / "toy.py").read_text() == stub_source(SOLUTION, "toy")
    released = nbformat.read(release / "00_toy.ipynb", as_version=4)
    expected = student_notebook(solved_notebook())
    assert [c.source for c in released.cells] == [c.source for c in expected.cells]
    assert "additive identity" not in json.dumps(released)
    assert not list(release.rglob("labkit_course*")) and not (release / ".labkit").exists()
    for path in release.rglob("*.py"):
        assert "### BEGIN SOLUTION" not in [line.strip() for line in path.read_text().splitlines()], path


def test_autograde_gives_the_exact_grades(graded):
    table, _ = graded
    got = {s: (row["test_scale"], row["test_total"], row["status"]) for s, row in table.iterrows()}
    assert got == EXPECTED
    assert table["answer"].isna().all()  # written answers are left for a human grader


def _gradebook_scores(course: Path) -> dict:
    """student -> {cell: (auto score, max score)}, as nbgrader's Gradebook API reads them."""
    from nbgrader.api import Gradebook

    build.ensure_bin_on_path()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "labkit") as gb:
        return {
            s.student.id: {g.name: (g.auto_score, g.max_score) for g in s.notebooks[0].grades}
            for s in gb.assignment_submissions("lab0")
        }


def test_gradebook_survives_holds_the_same_grades_as_the_csv_and_points_from_source(course, graded):
    import pandas as pd
    from nbgrader.api import Gradebook

    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    book = _gradebook_scores(course)
    csv = pd.read_csv(course / "reports" / "lab0.csv", index_col="student")
    for student, (scale, total, status) in EXPECTED.items():
        scored = {cell: score for cell, (score, _) in book[student].items() if score is not None}
        assert scored == {"test_scale": scale, "test_total": total}, student
        assert {cell: top for cell, (_, top) in book[student].items()} == POINTS, student  # never 100 per cell
        row = csv.loc[student]
        got = (row["status"], row["test_scale"], row["test_total"], row["auto_total"])
        assert got == (status, scale, total, scale + total), student
        assert pd.isna(row["answer"]) and book[student]["answer"][0] is None
    build.ensure_bin_on_path()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "labkit") as gb:
        for student in EXPECTED:
            assert gb.find_grade("answer", "00_toy", "lab0", student).needs_manual_grade


def test_nbgrader_export_agrees_with_the_summary_csv(course, graded):
    """What nbgrader exports (raw_score: the gradebook's scores) is what reports/lab0.csv says, for
    every sample, hostile ones included."""
    import pandas as pd

    build.nbgrader(course, "export", "--to", str(course / "grades.csv"))
    grades = pd.read_csv(course / "grades.csv")
    exported = grades[grades.assignment == "lab0"].set_index("student_id")
    csv = pd.read_csv(course / "reports" / "lab0.csv", index_col="student")
    assert set(csv.index) == set(EXPECTED) <= set(exported.index)
    for student, row in csv.iterrows():
        assert float(exported.loc[student, "raw_score"]) == row["auto_total"], student
        assert float(exported.loc[student, "max_score"]) == sum(POINTS.values()), student


def test_nbgrader_and_gradescope_score_the_same_verdicts_alike(course, repo, graded):
    """One scoring rule: the same judge verdicts scored through nbgrader (the gradebook's cell scores,
    as grading.grade recorded them) and through Gradescope's scoring (points per exercise from
    gradescope.exercise_points, test entries from gradescope.exercise_tests, which run_autograder writes) agree per
    exercise and in total, for every sample: honest, partial, failed and flagged."""
    table, _ = graded
    cells = json.loads((course / ".labkit" / "course.json").read_text())["labs"]["lab0"]["cells"]
    assert all(len(exercises) == 1 for exercises in cells.values())  # so a cell's score is its exercise's
    points = gradescope.exercise_points(TOY, repo)
    book = _gradebook_scores(course)
    outcomes = {o.student: o for o in table.attrs["outcomes"]}
    assert set(outcomes) == set(EXPECTED)
    for student, outcome in outcomes.items():
        results = gradescope.exercise_tests(outcome.verdicts, points, outcome.flagged)  # what run_autograder writes
        by_gradescope = {test["name"]: test["score"] for test in results}
        by_nbgrader = {cells[gid][0]: score for gid, (score, _) in book[student].items() if gid in cells}
        assert by_nbgrader == by_gradescope, student
        assert table.loc[student, "auto_total"] == sum(by_gradescope.values()), student
        max_nbgrader = sum(top for gid, (_, top) in book[student].items() if gid in cells)
        assert max_nbgrader == sum(points.values()), student
    assert outcomes["perfect"].auto_score == 5 and outcomes["partial"].auto_score == 2
    flagged_despite_passing = [
        s for s, o in outcomes.items() if o.flagged and all(v.passed for v in o.verdicts.values())
    ]
    assert {"ctypes_wipe", "reads_gradebook"} <= set(flagged_despite_passing)  # the flag alone zeroes them


def test_the_gradebook_is_backed_up_before_a_batch(course, graded):
    backups = sorted((course / ".labkit" / "backups").glob("gradebook-*.db"))
    assert 1 <= len(backups) <= grading.KEEP_BACKUPS
    with sqlite3.connect(backups[-1]) as db:
        assert db.execute("SELECT count(*) FROM assignment").fetchone() == (1,)


def test_parallel_kernels_share_the_cores(course, graded):
    """Two workers on N cores: each kernel is told N // 2 threads (oversubscribed kernels crawl)."""
    graded_nb = nbformat.read(course / "autograded" / "perfect" / "lab0" / "00_toy.ipynb", as_version=4)
    setup = next(c for c in graded_nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    printed = "".join(o.get("text", "") for o in setup.outputs)
    assert f"LABKIT_THREADS = {max(1, (os.cpu_count() or 1) // 2)}" in printed


def test_reasons_are_recorded(graded):
    table, _ = graded
    notes = table["notes"].to_dict()
    assert "could not be read" in notes["malformed"]
    assert "per-cell timeout" in notes["infinite_loop"]
    assert "test cell 'test_scale' was edited" in notes["edit_test_cell"]
    assert "labkit/check/runner.py was edited" in notes["edit_helper"]
    assert "gradebook.db" in notes["reads_gradebook"]
    assert "kernel crashed in test cell 'test_total'" in notes["kernel_crash"]
    for student, flagged in [
        ("ctypes_peer", "ctypes"),
        ("ctypes_wipe", "ctypes"),
        ("frame_walker", "_getframe"),
        ("fork_bomb", "fork"),
        ("detached", "subprocess"),
        ("network", "socket"),
    ]:
        assert "needs review" in notes[student] and flagged in notes[student], student


def test_each_exercise_gets_a_verdict_that_says_what_failed(graded):
    outcomes = {o.student: o for o in graded[0].attrs["outcomes"]}
    verdict = lambda s, e: outcomes[s].verdicts[e]  # noqa: E731
    assert verdict("perfect", "scale").passed and verdict("perfect", "total").passed
    assert verdict("stub", "scale").message == "scale: not implemented yet"
    assert verdict("partial", "total").failure == "value" and "wrong values" in verdict("partial", "total").message
    assert verdict("infinite_loop", "total").failure == "timeout"
    assert "later hidden cases are not run" in verdict("infinite_loop", "total").message  # one timeout, not five
    assert (
        verdict("huge_allocation", "scale").failure == "crash"
        and "MemoryError" in verdict("huge_allocation", "scale").message
    )
    assert verdict("pickle_payload", "scale").failure == "type"
    assert verdict("pickle_payload", "total").failure == "crash"  # its forged, pickled result is refused
    assert verdict("sys_exit", "scale").failure == "crash" and "imported" in verdict("sys_exit", "scale").message
    assert not verdict("monkeypatch", "scale").passed and not verdict("forged_results", "total").passed


def test_attacks_leave_no_trace(course, graded):
    import psutil

    assert not (course.parent / MARKER).exists(), "a pickle from a submission was loaded"
    assert sandbox.given_uids or os.geteuid() != 0  # as root, each sandbox runs as a uid of its own
    leftovers = [
        p.info
        for p in psutil.process_iter(["pid", "name", "uids"])
        if p.info["uids"] and p.info["uids"].real in sandbox.given_uids
    ]
    assert not leftovers, f"processes of graded code survived: {leftovers[:5]}"
    commands = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert not [c for c in commands if LEFTOVER_MARKER in c], "a process a notebook started outlived its kernel"
    tmp = Path(tempfile.gettempdir())  # jupyter's connection files go there by default: it stays ours
    assert tmp.stat().st_uid not in sandbox.given_uids and tmp.stat().st_mode & 0o1777 == 0o1777
    assert not [p for p in tmp.iterdir() if p.lstat().st_uid in sandbox.given_uids]


def test_the_kernel_launcher_refuses_sockets_outside_its_own_folder(tmp_path, monkeypatch):
    """The kernel's writable folder is the grader's private one, never the connection file's (the temp folder)."""
    settings, connection = tmp_path / "box.json", tmp_path / "kernel.json"
    settings.write_text(json.dumps({"runtime": str(tmp_path / "rt"), "limits": {}}))
    monkeypatch.setenv(crash_tolerant_execute.BOX_SETTINGS, str(settings))
    for info in ({"transport": "tcp", "ip": "127.0.0.1"}, {"transport": "ipc", "ip": str(tmp_path / "k")}):
        connection.write_text(json.dumps(info))
        with pytest.raises(SystemExit, match="ipc sockets in"):
            crash_tolerant_execute.launch(str(connection))
    assert not (tmp_path / "rt").exists()


def test_the_kernel_cannot_reach_the_grader_nor_its_files(course, graded):
    """The notebook attacks (tests/grading_samples/toy_lab.NOTEBOOK_ATTACKS), beyond their grades."""
    table, _ = graded
    notes = table["notes"].to_dict()
    for student in ("fake_check_big_file", "leftover_rewriter", "proc_mem", "audit_wipe", "disk_filler"):
        executed = nbformat.read(course / "autograded" / student / "lab0" / "00_toy.ipynb", as_version=4)
        points = {
            c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader.get("points")
            for c in executed.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        }
        assert points == POINTS, student  # nbgrader's executed notebook, as nbgrader wrote it
        kept = [p.name for p in (course / "autograded" / student).rglob("*") if p.name.startswith(("big", "fill"))]
        assert not kept, student  # what the kernel wrote stays in its box
    assert "the kernel's audit log is missing or was altered" in notes["audit_wipe"]
    assert "outside its /tmp" in notes["disk_filler"]
    assert "started processes" not in notes["disk_filler"]  # platform's own `file`: the runtime's, not the student's
    rewriter = notes["leftover_rewriter"]
    assert "the notebook 00_toy.ipynb needs review" in rewriter and "subprocess" in rewriter


def test_a_notebook_nbgrader_refuses_is_failed_and_its_answers_reach_the_grader(course, graded):
    table, _ = graded
    assert "nbgrader could not execute the notebook" in table.loc["empty_grade_id", "notes"]
    shown = nbformat.read(course / "autograded" / "empty_grade_id" / "lab0" / "00_toy.ipynb", as_version=4)
    answer = next(c for c in shown.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
    assert answer.source == "Because an empty sum is 0."
    assert all(c.metadata.get("nbgrader", {}).get("grade_id") != "" for c in shown.cells)
    for student in ("perfect", "empty_grade_id"):  # its notebook blocks no one's feedback, nor its own
        assert (course / "feedback" / student / "lab0" / "00_toy.html").exists(), student


def test_notebook_cells_are_audited_but_not_the_course_own():
    released = solved_notebook()
    nb = solved_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("%matplotlib inline\nimport ctypes\n!ls"))
    nb.cells.append(nbformat.v4.new_code_cell("def f(:\n    pass"))  # not Python: nothing to run
    reasons = grading.audit_notebook(nb, released, "toy")
    assert len(reasons) == 1 and reasons[0].startswith(f"cell {len(nb.cells) - 1}, ") and "ctypes" in reasons[0]
    assert grading.audit_notebook(released, released, "toy") == []  # the setup cell imports labkit.check


def test_the_scrubbed_gradebook_keeps_no_trace_of_other_students(course, graded, tmp_path):
    grading._scrubbed_gradebook(course, tmp_path / "gradebook.db", "perfect")
    data = (tmp_path / "gradebook.db").read_bytes()
    assert b"perfect" in data
    for other in ("frame_walker", "ctypes_peer", "leftover_rewriter"):
        assert other.encode() not in data, other


def test_submissions_are_never_modified(course, graded):
    _, before = graded
    assert _tree_hash(course / "submitted") == before


def test_feedback_says_why_and_shows_no_hidden_material(course, graded):
    for student in EXPECTED:
        report = (course / "feedback" / student / "lab0" / "grading_report.html").read_text()
        assert f"status: <b>{EXPECTED[student][2]}</b>" in report
        assert "randint" not in report and "labkit_course" not in report and "Call(" not in report
    partial = (course / "feedback" / "partial" / "lab0" / "grading_report.html").read_text()
    assert "PASS: scale: all 5 hidden cases passed" in partial and "FAIL: total" in partial
    assert "could not be executed" in (course / "feedback" / "malformed" / "lab0" / "grading_report.html").read_text()


def test_summary_csv_is_always_written(course, graded):
    import pandas as pd

    csv = pd.read_csv(course / "reports" / "lab0.csv", index_col="student")
    assert set(csv.index) >= set(EXPECTED) and csv.loc["perfect", "auto_total"] == 5


def test_sequential_regrade_matches_parallel(course, graded):
    table, _ = graded
    subset = ["partial", "stderr_noise"]
    again = grading.grade(course, 0, workers=1, students=subset, limits=LIMITS, progress=False, feedback=False)
    cols = ["status", "test_scale", "test_total", "auto_total"]
    assert again[cols].sort_index().equals(table.loc[subset, cols].sort_index())


def test_a_failure_while_recording_costs_only_that_student_and_keeps_its_notes(course, graded, monkeypatch):
    real = grading._write

    def flaky(course_, aid, lab, outcome, staged):
        failing = ("edit_test_cell", "ctypes_wipe")
        if outcome.student in failing and staged is not None:  # the full write fails, the retry works
            raise RuntimeError("disk full")
        return real(course_, aid, lab, outcome, staged)

    monkeypatch.setattr(grading, "_write", flaky)
    students = ["edit_test_cell", "ctypes_wipe", "perfect"]
    table = grading.grade(course, 0, students=students, limits=LIMITS, progress=False, feedback=False)
    notes = table.loc["edit_test_cell", "notes"]
    assert table.loc["edit_test_cell", "status"] == "failed" and "disk full" in notes
    assert "test cell 'test_scale' was edited" in notes  # found before the failure, kept
    # the judge passes ctypes_wipe's module, but it was flagged: failing later does not lift the hold
    assert table.loc["ctypes_wipe", "status"] == "failed" and table.loc["ctypes_wipe", "auto_total"] == 0
    assert "needs review" in table.loc["ctypes_wipe", "notes"]
    assert table.loc["perfect", "auto_total"] == 5 and table.loc["perfect", "status"] == "graded"
    book = _gradebook_scores(course)
    for student in students:
        summary = {c: None if v != v else v for c, v in table.loc[student, list(POINTS)].items()}  # NaN: by hand
        assert {c: s for c, (s, _) in book[student].items()} == summary, student


def test_recording_is_all_or_nothing(course, graded, monkeypatch):
    """A gradebook write that fails half-way leaves the gradebook as it was, and the summary says so."""
    from nbgrader.api import Gradebook

    before = _gradebook_scores(course)["partial"]
    real = Gradebook.find_grade

    def half_way(self, grade_cell, *args, **kwargs):
        if grade_cell == "test_total":
            raise RuntimeError("the disk went away")
        return real(self, grade_cell, *args, **kwargs)

    monkeypatch.setattr(Gradebook, "find_grade", half_way)
    outcome = grading.Outcome("partial", "lab0", verdicts={})  # judged nothing passed: 0 on test_scale, if written
    grading.record(course, outcome, None)
    assert outcome.status == "failed" and "the disk went away" in " ".join(outcome.notes)
    assert _gradebook_scores(course)["partial"] == before
    assert outcome.scores == {c: s for c, (s, _) in before.items()}


def test_gradescope_zip_grades_on_a_fake_autograder_tree(course, repo, tmp_path):
    """The zip's own run_autograder, on a temporary /autograder: the same judge, results.json from outside."""
    zip_path = gradescope.build_zip(TOY, tmp_path / "autograder.zip", repo=repo)
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"setup.sh", "run_autograder", "lab/lab.json", "lab/secret", "lab/hidden/toy.py"} <= set(names)
    assert not any(n.startswith("project/solutions") for n in names)
    scores = {}
    for student in ("perfect", "partial", "ctypes_peer"):
        root = tmp_path / student
        zipfile.ZipFile(zip_path).extractall(root / "source")
        (root / "submission").mkdir()
        (root / "submission" / "toy.py").write_bytes(
            (course / "submitted" / student / "lab0" / "labkit" / "toy.py").read_bytes()
        )
        (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": f"{student}@uni"}]}))
        env = dict(os.environ, AUTOGRADER_ROOT=str(root), LABKIT_AUTOGRADER_PYTHON=sys.executable)
        subprocess.run(
            ["bash", str(root / "source" / "run_autograder")], env=env, check=True, timeout=300, capture_output=True
        )
        results = json.loads((root / "results" / "results.json").read_text())
        scores[student] = results["score"]
        assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(5.0)
    assert scores == {"perfect": 5.0, "partial": 2.0, "ctypes_peer": 0.0}
    assert "flagged for review" in results["output"]


def test_grading_refuses_without_a_sandbox_unless_told(course, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap", lambda: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        grading.grade(course, 0, students=["perfect"], limits=LIMITS, progress=False, feedback=False)
    table = grading.grade(
        course, 0, students=["perfect"], limits=LIMITS, progress=False, feedback=False, sandbox_mode="fallback"
    )
    assert table.loc["perfect", "auto_total"] == 5 and "NOT SANDBOXED" in table.loc["perfect", "notes"]


def test_student_seed_is_per_student_and_reproducible():
    a = grading.student_seed("s3cret", "lab1", "alice")
    assert a == grading.student_seed("s3cret", "lab1", "alice")
    assert a != grading.student_seed("s3cret", "lab1", "bob") != grading.student_seed("other", "lab1", "alice")


def test_cli_has_course_grade_and_gradescope_commands():
    from labkit_course.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["course", "build", "/tmp/c", "--labs", "1,3"])
    assert args.func.__name__ == "cmd_course" and args.labs == "1,3"
    args = parser.parse_args(["grade", "/tmp/c", "1", "--workers", "2", "--csv", "s.csv"])
    assert args.func.__name__ == "cmd_grade" and args.workers == 2 and args.sandbox == "require"
    assert args.budget == grading.BUDGET and parser.parse_args(["grade", "/c", "1", "--budget", "90"]).budget == 90
    assert parser.parse_args(["gradescope", "build", "1", "--out", "a.zip"]).action == "build"
    assert parser.parse_args(["gradescope", "run", "--root", "/tmp/a"]).root == "/tmp/a"
    assert parser.parse_args(["sync", "--check"]).check


# ----------------------------------------------------------------------------------------------
# A real lab, end to end: Lab 2 (its notebook runs in about a minute)
# ----------------------------------------------------------------------------------------------
LIAR_MODULE = '''
class _Liar(torch.Tensor):
    """Equal to anything, close to anything: comparisons that touch it succeed."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.__eq__, torch.allclose, torch.equal, torch.isclose):
            return torch.tensor(True)
        return super().__torch_function__(func, types, args, kwargs or {})


def fgsm(model, images, labels, eps, targeted=False):
    return images.clone().as_subclass(_Liar)
'''


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    from labkit.labs import LABS
    from labkit_course.repo import SOLUTIONS

    course = build.build_course(tmp_path_factory.mktemp("lab2") / "course", [LABS[2]])
    lines = (SOLUTIONS / "labkit" / "adversarial.py").read_text().splitlines(keepends=True)
    honest = "".join(line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    future, _, body = honest.partition("from __future__ import annotations\n")  # it must stay first
    wiper = future + "from __future__ import annotations\n" + CTYPES_WIPE_HEAD.replace("<course>", str(course)) + body
    for student, module in {"honest": honest, "liar": honest + LIAR_MODULE, "wiper": wiper}.items():
        dest = course / "submitted" / student / "lab2"
        shutil.copytree(course / "release" / "lab2", dest)
        (dest / "labkit" / "adversarial.py").write_text(module)
    limits = sandbox.Limits(cell_timeout=300, wall_timeout=900, memory_mb=4096)
    return course, grading.grade(course, 2, workers=2, limits=limits, progress=False)


def test_lab2_end_to_end_honest_full_marks_cheats_caught(lab2):
    from labkit.labs import LABS

    course, table = lab2
    honest = table.loc["honest"]
    # the notes first: pytest cuts a long message, and they say why (a grader error, a flag, a timeout)
    assert honest["auto_total"] == 8 and honest["status"] == "graded", f"{honest['notes']} | {honest.to_dict()}"
    assert "started processes" not in table.loc["honest", "notes"]  # matplotlib's fc-list is not the student's
    executed = (course / "autograded" / "honest" / "lab2" / f"{LABS[2].notebook}.ipynb").read_text()
    assert "image/png" in executed and "Fontconfig" not in executed and "joblib will operate" not in executed
    liar = {o.student: o for o in table.attrs["outcomes"]}["liar"]
    assert "fgsm" in liar.verdicts, table.loc["liar"].to_dict()  # judged, or why not
    assert not liar.verdicts["fgsm"].passed and liar.verdicts["pgd"].passed
    assert table.loc["liar", "test_fgsm"] == 0 and table.loc["liar", "auto_total"] == 6
    assert table.loc["wiper", "status"] == "flagged" and table.loc["wiper", "auto_total"] == 0
    wiper = {o.student: o for o in table.attrs["outcomes"]}["wiper"]
    assert all(v.passed for v in wiper.verdicts.values())  # the judge passes it: the flag alone holds it at 0
    with sqlite3.connect(course / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
