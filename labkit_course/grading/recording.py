"""Grading, step 3: recording one outcome in the course, in this trusted process.

:func:`stage` decides the status and notes (what the student edited, what the executed notebook
and the kernel's audit log show) and prepares ``autograded/<student>/<lab>/`` outside the course;
:func:`write` writes, in one transaction, a grade for every grade cell (each autograded test cell
scored by the one scoring rule, :func:`labkit_course.scoring.cell_score`; written answers left for
a human) and the staged folder; :func:`read_back` reads the scores back from the gradebook, so the
summary says what the gradebook holds. :func:`labkit_course.grading.record` is the recipe.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from labkit.labs import Lab
from labkit_course.build import COURSE_ID, course_info
from labkit_course.grading.outcome import Outcome
from labkit_course.grading.running import read_audit_log
from labkit_course.grading.untrusted import copy_regular_files, read_untrusted
from labkit_course.scoring import cell_score


def stage(course: Path, aid: str, lab: Lab, outcome: Outcome, box: Path | None, staged: Path) -> None:
    """Decide the status and notes, and prepare ``autograded/<student>/<lab>/`` in ``staged``.

    Writes nothing to ``course``."""
    import nbformat

    from labkit_course.sanitize import clean_notebook

    student = outcome.student
    submitted_dir = course / "submitted" / student / aid
    release_dir = course / "release" / aid
    nb_name = f"{lab.notebook}.ipynb"
    _note_restored_files(course, aid, lab, submitted_dir, release_dir, outcome)

    given_nb = release_dir / nb_name if (release_dir / nb_name).exists() else course / "source" / aid / nb_name
    released = nbformat.read(given_nb, as_version=4)
    submitted_nb = _read_notebook(submitted_dir / nb_name, outcome, "submitted")
    if submitted_nb is not None:
        given = _test_cells(released)
        for gid, source in _test_cells(submitted_nb).items():
            if gid in given and source != given[gid]:
                outcome.note(f"test cell {gid!r} was edited in the submission; it was restored from source")

    graded_dir = box / "course" / "autograded" / student / aid if box else None
    graded_nb = _read_notebook(graded_dir / nb_name, outcome, "graded") if graded_dir and submitted_nb else None
    if graded_nb is None and outcome.status == "graded":
        outcome.status = "failed"  # the notebook did not run: a human looks at it
    if graded_nb is not None:
        read_audit_log(box, outcome)
        for gid, source in _test_cells(graded_nb).items():
            if source != _test_cells(released).get(gid, source):
                outcome.flag(f"test cell {gid!r} differs from source after grading")
        _note_cell_errors(graded_nb, outcome)

    dest = staged / "autograded"
    dest.mkdir()
    if graded_nb is not None:  # the executed notebook in its inert form (sanitize.view_file)
        copy_regular_files(graded_dir, dest)
    elif submitted_nb is not None:  # the written answers still need a grader
        nbformat.write(clean_notebook(answers_in_released(released, submitted_nb)), dest / nb_name)


def _note_restored_files(
    course: Path, aid: str, lab: Lab, submitted_dir: Path, release_dir: Path, outcome: Outcome
) -> None:
    """Say which course files (not the notebook, not the exercise module) the student changed: the
    course's version was used."""
    for path in sorted((course / "source" / aid).rglob("*")):
        rel = path.relative_to(course / "source" / aid)
        if path.is_file() and rel.suffix != ".ipynb" and rel != Path("labkit") / f"{lab.module}.py":
            theirs, given = submitted_dir / rel, release_dir / rel
            reference = given if given.exists() else path
            if theirs.is_file() and theirs.read_bytes() != reference.read_bytes():
                outcome.note(f"{rel} was edited in the submission; the course's version was used")


@contextlib.contextmanager
def _one_transaction(gb):
    """nbgrader's Gradebook commits after each call: hold every commit until the block ends, then
    commit once (or roll everything back if it raised)."""
    session = gb.db
    commit = session.commit
    session.commit = session.flush
    try:
        yield
        commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        del session.commit


def write(course: Path, aid: str, lab: Lab, outcome: Outcome, staged: Path | None) -> None:
    """One transaction: the submission, a grade for every grade cell of the source, and (with
    ``staged``) ``autograded/<student>/<lab>/`` replaced by the staged one."""
    from nbgrader.api import Gradebook

    student = outcome.student
    cells = course_info(course)["labs"][aid].get("cells", {})
    ts_file = course / "submitted" / student / aid / "timestamp.txt"
    timestamp = ts_file.read_text().strip()[:64] if ts_file.is_file() else None
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb, _one_transaction(gb):
        gb.update_or_create_student(student)
        gb.update_or_create_submission(aid, student, **({"timestamp": timestamp} if timestamp else {}))
        for gc in gb.find_notebook(lab.notebook, aid).grade_cells:  # points from source/, via the gradebook
            grade = gb.find_grade(gc.name, lab.notebook, aid, student)
            if gc.cell_type == "code" and gc.name in cells:
                grade.auto_score = cell_score(gc.max_score, cells[gc.name], outcome.verdicts, outcome.flagged)
                grade.needs_manual_grade = outcome.status != "graded"
            else:
                grade.auto_score, grade.needs_manual_grade = None, True
        if staged is not None and (staged / "autograded").is_dir() and any((staged / "autograded").iterdir()):
            dest = course / "autograded" / student / aid
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(staged / "autograded", dest)


def read_back(course: Path, aid: str, lab: Lab, outcome: Outcome) -> None:
    """``outcome.scores`` and ``max_scores`` as the gradebook holds them."""
    from nbgrader.api import Gradebook, MissingEntry

    outcome.scores, outcome.max_scores = {}, {}
    try:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
            for grade in gb.find_submission_notebook(lab.notebook, aid, outcome.student).grades:
                outcome.scores[grade.name] = grade.auto_score
                outcome.max_scores[grade.name] = grade.max_score
    except MissingEntry:
        pass  # nothing recorded for this student: no scores
    except Exception as exc:  # noqa: BLE001 -- the summary must still be written
        outcome.note(f"the gradebook could not be read back: {type(exc).__name__}: {str(exc)[:300]}")


def _note_cell_errors(graded_nb, outcome: Outcome) -> None:
    """Say what went wrong in the executed notebook's test cells (they don't score: the judge does)."""
    from nbgrader.utils import is_grade, is_solution

    for cell in graded_nb.cells:
        if is_grade(cell) and cell.cell_type == "code" and not is_solution(cell):
            gid = cell.metadata.nbgrader["grade_id"]
            errors = [o.get("ename") for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if "CellTimeoutError" in errors:
                outcome.note(f"test cell {gid!r} exceeded the per-cell timeout in the notebook")
            elif "KernelDied" in errors:
                outcome.note(f"the kernel crashed in test cell {gid!r}")


def _read_notebook(path: Path, outcome: Outcome, what: str):
    import nbformat

    try:
        return nbformat.reads(read_untrusted(path).decode("utf-8"), as_version=4)
    except (FileNotFoundError, NotADirectoryError):
        outcome.note(
            f"the submission has no {path.name}" if what == "submitted" else "nbgrader could not execute the notebook"
        )
    except Exception as exc:  # noqa: BLE001 -- malformed JSON, wrong schema...
        outcome.note(f"{path.name} could not be read: {type(exc).__name__}: {str(exc)[:300]}")
    return None


def _test_cells(nb) -> dict[str, str]:
    """grade_id -> source of every autograded test cell."""
    from nbgrader.utils import is_grade, is_solution

    return {
        c.metadata.nbgrader["grade_id"]: c.source
        for c in nb.cells
        if c.cell_type == "code" and is_grade(c) and not is_solution(c)
    }


def answers_in_released(released, submitted):
    """The released notebook with the student's written answers in it: each solution cell of the
    release takes the source of the submitted cell with the same ``grade_id`` and type. What a
    grader reads when nbgrader could not process the submission (e.g. a cell with an empty
    ``grade_id``): the structure is the course's, so formgrader and feedback work on it."""
    import copy

    from nbgrader.utils import is_solution

    theirs = {}
    for cell in submitted.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if isinstance(gid, str) and gid and isinstance(cell.get("source"), str):
            theirs.setdefault(gid, cell)
    nb = copy.deepcopy(released)
    for cell in nb.cells:
        if is_solution(cell):
            mine = theirs.get(cell.metadata.nbgrader["grade_id"])
            if mine is not None and mine.cell_type == cell.cell_type:
                cell.source = mine.source
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb
