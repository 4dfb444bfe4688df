"""Autograde a class: scores from the trusted judge only, student code sandboxed, no grade lost.

    labkit-course grade COURSE 1 [--workers 2] [--budget 1200] [--sandbox require|fallback]

:func:`grade` is the recipe, for one lab, every submission in ``submitted/*/labN``; each step is a
module of this package:

1. **Preparing** (:mod:`~labkit_course.grading.preparing`): the gradebook is snapshotted with
   SQLite's online backup API (``.labkit/backups/``, the last :data:`KEEP_BACKUPS`), so nothing a
   run does can lose a grade recorded before it; then, per submission, a throw-away box: a copy of
   the course (the released files, the submission, a gradebook with no other student) and the
   folders of the notebook's sandboxed kernel (its audit hook, ``kernel_sitecustomize.py``).
2. **Running** (:mod:`~labkit_course.grading.running`), ``workers`` submissions at a time
   (:func:`grade_one`, which never raises), within ``budget`` seconds each (:data:`BUDGET` by default):

   a. **Judge the exercise module** (:func:`labkit_course.judge.judge`): hidden cases from the
      student's seed, run in the sandbox, compared here with the reference. This is the only
      source of scores.
   b. **Audit the notebook's code cells** (:func:`audit_notebook`, the judge's static audit).
   c. **Execute the notebook** with ``nbgrader autograde``, for reading (public checks' output,
      written answers), never for scoring. nbgrader runs in a process of ours, in the box; only
      its kernel runs student code, in a sandbox of its own
      (:mod:`labkit_course.crash_tolerant_execute`): another PID namespace and user, no network, a
      size-limited ``/tmp`` (:data:`BOX_DISK_MB`), nothing of the course. What comes back from it
      (outputs, its audit log) is untrusted data (:mod:`~labkit_course.grading.untrusted`), read with caps.

3. **Recording** (:func:`record`, :mod:`~labkit_course.grading.recording`; in this process, one
   submission at a time, one transaction): each autograded test cell scores its points (from
   ``source/``, through the gradebook) times the fraction of its exercises the judge passed
   (:mod:`labkit_course.scoring`, the rule Gradescope's autograder uses too); written answers wait
   for a human. A flagged submission (static audit of module or notebook, audit log, tampered test
   cells) scores 0 on autograded cells until an instructor reviews it. Any failure makes the status
   ``failed`` and keeps every note; the summary's scores are read back from the gradebook, so the
   two agree.
4. **Reporting** (:mod:`~labkit_course.grading.reporting`): nbgrader's feedback, plus
   ``feedback/<student>/labN/grading_report.html`` with the judge's verdict per exercise; the
   summary, returned as a DataFrame and always written to ``reports/labN.csv``.

Hidden seeds are derived from the course secret, the lab and the student: fixed per student (a
regrade gives the same grade), unknown to students.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

from labkit.labs import Lab
from labkit_course import sandbox
from labkit_course.build import ensure_bin_on_path, lab_in_course
from labkit_course.grading.outcome import Outcome
from labkit_course.grading.preparing import (
    AUDIT_LOG,
    BOX_DISK_MB,
    KEEP_BACKUPS,
    prepare_kernel_box,
    prepare_notebook_box,
    snapshot_gradebook,
    student_seed,
)
from labkit_course.grading.preparing import scrubbed_gradebook as _scrubbed_gradebook
from labkit_course.grading.recording import answers_in_released
from labkit_course.grading.recording import read_back as _read_back
from labkit_course.grading.recording import stage as _stage

# record() looks _write up here at call time: tests/test_grading.py replaces grading._write to make a write fail
from labkit_course.grading.recording import write as _write
from labkit_course.grading.reporting import summary, write_feedback, write_report, write_summary
from labkit_course.grading.running import (
    AUDIT_CAP,
    BUDGET,
    JUDGE_TIMEOUT,
    LOG_CAP,
    audit_notebook,
    audit_submitted_notebook,
    judge_module,
    run_notebook,
)
from labkit_course.grading.untrusted import copy_regular_files, read_tail, read_untrusted
from labkit_course.sandbox import Limits

__all__ = [
    "AUDIT_CAP",
    "AUDIT_LOG",
    "BOX_DISK_MB",
    "BUDGET",
    "JUDGE_TIMEOUT",
    "KEEP_BACKUPS",
    "LOG_CAP",
    "Outcome",
    "_scrubbed_gradebook",
    "answers_in_released",
    "audit_notebook",
    "copy_regular_files",
    "grade",
    "grade_one",
    "read_tail",
    "read_untrusted",
    "record",
    "snapshot_gradebook",
    "student_seed",
    "summary",
    "write_report",
]


def grade_one(
    course: Path,
    aid: str,
    lab: Lab,
    student: str,
    limits: Limits,
    sandbox_mode: str,
    box: Path,
    budget: float = BUDGET,
) -> Outcome:
    """Judge the module and execute the notebook of one submission, in ``box``, within ``budget`` seconds.

    Touches nothing in ``course``. Never raises: a harness failure is an outcome with status "failed"."""
    outcome = Outcome(student, aid)
    start = time.perf_counter()
    try:
        backend = sandbox.check_mode(sandbox_mode)
        root = prepare_notebook_box(course, aid, lab, student, box, outcome)
        judge_module(course, aid, lab, student, root, limits, sandbox_mode, box, budget, outcome)
        outcome.judge_seconds = time.perf_counter() - start
        audit_submitted_notebook(course, aid, lab, root / "submitted" / student / aid, outcome)
        left = budget - (time.perf_counter() - start)
        if left < 1:
            outcome.note(f"the grading budget ({budget:g} s per submission) was spent: the notebook was not run")
        else:
            env = prepare_kernel_box(box, limits, backend, left)
            run_notebook(root, box, aid, student, limits.cell_timeout, env, left, outcome)
    except Exception as exc:  # noqa: BLE001 -- the harness failed for this one: record it, go on
        outcome.status = "failed"
        outcome.note(f"grader error: {type(exc).__name__}: {exc}")
        outcome.notebook_log += traceback.format_exc()[-3000:]
    outcome.seconds = time.perf_counter() - start
    return outcome


def record(course: Path, outcome: Outcome, box: Path | None) -> Outcome:
    """Write one outcome to the course, in this trusted process: the judge's scores in the
    gradebook, and the executed notebook (or, when nbgrader could not process the submission, the
    released notebook with the student's written answers) in ``autograded/`` for formgrader.

    One transaction: all of it or none. On any failure the status is ``failed``, the notes found
    so far stay, and what can still be written is written. ``outcome.scores`` are then read back
    from the gradebook, so the summary says what the gradebook holds."""
    course = Path(course).resolve()
    aid, lab = lab_in_course(course, outcome.assignment)
    ensure_bin_on_path()
    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's api, harmless
    staged = Path(tempfile.mkdtemp(prefix="labkit-record-"))
    try:
        try:
            _stage(course, aid, lab, outcome, box, staged)
            _write(course, aid, lab, outcome, staged)
        except Exception as exc:  # noqa: BLE001 -- nothing of this attempt was committed
            outcome.status = "failed"
            outcome.note(f"grader error while recording: {type(exc).__name__}: {str(exc)[:300]}")
            try:  # the judge's scores without the notebook: what the grader can still be shown
                _write(course, aid, lab, outcome, None)
            except Exception as again:  # noqa: BLE001
                outcome.note(f"the gradebook could not be written: {type(again).__name__}: {str(again)[:300]}")
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    _read_back(course, aid, lab, outcome)
    return outcome


def grade(
    course: Path,
    lab: int | str | Lab,
    *,
    workers: int = 1,
    students: list[str] | None = None,
    limits: Limits = Limits(),
    feedback: bool = True,
    progress: bool = True,
    sandbox_mode: str = "require",
    budget: float = BUDGET,
):
    """Autograde every submission of ``lab``; see the module doc. Returns the summary DataFrame.

    ``budget``: seconds per submission, judge and notebook together (the notebook gets what the judge left)."""
    course = Path(course).resolve()
    aid, lab_ = lab_in_course(course, lab)
    _check_ready(course, aid, workers, budget, sandbox_mode)
    if students is None:
        students = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{aid}") if p.is_dir())
    if limits.threads is None:  # oversubscribed cores spin-wait: N kernels x 2 threads on 2 cores crawl
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // workers))
    snapshot_gradebook(course)  # 1. preparing (each submission's box: in grade_one)
    outcomes: list[Outcome] = []
    try:
        _grade_and_record(course, aid, lab_, students, limits, sandbox_mode, budget, workers, progress, outcomes)
        write_feedback(course, aid, lab_, outcomes, pages=feedback)  # 4. reporting
    finally:
        table = write_summary(course, aid, outcomes)
    return table


def _check_ready(course: Path, aid: str, workers: int, budget: float, sandbox_mode: str) -> None:
    """Refuse what cannot be graded (no gradebook, bad arguments, no sandbox unless told); warn when
    unsandboxed; make the course its owner's alone for the uid-drop sandbox."""
    if not (course / "gradebook.db").exists():
        raise FileNotFoundError(f"{course / 'gradebook.db'} is missing: run `nbgrader generate_assignment {aid}` first")
    if workers < 1:
        raise ValueError(f"workers must be a positive int; got {workers!r}")
    if not budget > 0:
        raise ValueError(f"budget must be a positive number of seconds; got {budget!r}")
    backend = sandbox.check_mode(sandbox_mode)
    if not backend:
        print(f"WARNING: {sandbox.FALLBACK_WARNING}", file=sys.stderr)
    elif backend == "uid-drop":  # that backend sees the host's files: the course must be its owner's alone
        sandbox.protect(course)


def _grade_and_record(
    course: Path,
    aid: str,
    lab: Lab,
    students: list[str],
    limits: Limits,
    sandbox_mode: str,
    budget: float,
    workers: int,
    progress: bool,
    outcomes: list[Outcome],
) -> None:
    """2. running, ``workers`` submissions at a time, each in a box of its own; 3. recording, here,
    each outcome as it comes (appended to ``outcomes``, even when recording it failed)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool:
        boxes = {s: Path(tempfile.mkdtemp(prefix="labkit-grade-")) for s in students}
        futures = {
            pool.submit(grade_one, course, aid, lab, s, limits, sandbox_mode, boxes[s], budget): s for s in students
        }
        bar = tqdm(total=len(futures), desc=f"autograding {aid}", unit="submission", disable=not progress)
        for future in as_completed(futures):
            student = futures[future]
            outcome = future.result()  # grade_one never raises
            try:
                record(course, outcome, boxes[student])
            except Exception as exc:  # noqa: BLE001 -- recording this one failed: say so, keep its notes, go on
                outcome.status = "failed"
                outcome.note(f"grader error while recording: {type(exc).__name__}: {exc}")
                _read_back(course, aid, lab, outcome)  # the summary says what the gradebook holds
            finally:
                outcomes.append(outcome)
                shutil.rmtree(boxes[student], ignore_errors=True)
            bar.update(1)
        bar.close()
