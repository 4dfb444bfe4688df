"""Autograde a class: student code sandboxed, test cells scored by the trusted judge, no grade lost.

    labkit-course grade COURSE 1 [--workers 2] [--sandbox require|fallback]

Steps of :func:`grade` (one lab, every submission in ``submitted/*/labN``):

1. **Snapshot the gradebook** with SQLite's online backup API (``.labkit/backups/``, the last
   :data:`KEEP_BACKUPS`), so nothing a run does can lose a grade recorded before it.
2. For each submission, ``workers`` at a time (:func:`grade_one`, which never raises):

   a. **Execute the notebook** with ``nbgrader autograde`` inside the sandbox, in a throw-away copy of
      the course that holds only what the student may see: the released notebook and ``labkit``,
      their own submission, and a gradebook with no other student in it. The executed notebook is
      for reading (public checks' output, written answers), not for scoring.
   b. **Judge the exercise module** (:func:`labkit_course.judge.judge`): hidden cases from the
      student's seed, run in the sandbox, compared here with the reference.

3. **Record** (:func:`record`, in this process, one submission at a time): each autograded test cell
   scores its points times the fraction of its exercises the judge passed; written answers wait for
   a human. A flagged submission (static audit, audit log, tampered test cells) scores 0 on
   autograded cells until an instructor reviews it. A failure of one submission is recorded for that
   student and the batch goes on.
4. **Feedback**: nbgrader's feedback, plus ``feedback/<student>/labN/grading_report.html`` with the
   judge's verdict per exercise.
5. **Summary**: returned as a DataFrame and always written to ``reports/labN.csv``.

Hidden seeds are derived from the course secret, the lab and the student: fixed per student (a
regrade gives the same grade), unknown to students.
"""

from __future__ import annotations

import copy
import hashlib
import html
import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from labkit.labs import Lab
from labkit_course import sandbox
from labkit_course.build import (
    COURSE_ID,
    META_DIR,
    course_info,
    ensure_bin_on_path,
    lab_in_course,
    nbgrader,
    nbgrader_config,
)
from labkit_course.sandbox import Limits

KEEP_BACKUPS = 5
AUDIT_LOG = "LABKIT_AUDIT_LOG"

# Installed in the notebook sandbox (sitecustomize): records what the kernel opens. The sandbox
# already hides the course; this turns an attempt into evidence.
AUDIT_SITECUSTOMIZE = """\
import os, sys
_log = os.environ.get("LABKIT_AUDIT_LOG")
if _log and os.environ.get("NBGRADER_EXECUTION") == "autograde":
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, ("START %d\\n" % os.getpid()).encode())
    def _hook(event, args, _fd=_fd, _w=os.write, _fs=os.fsdecode):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = _fs(args[0])
            if path.endswith((".ipynb", ".db", ".db-journal")) or "/.labkit" in path:
                _w(_fd, ("open %r\\n" % path).encode())
        elif event == "sqlite3.connect":
            _w(_fd, ("sqlite3.connect %r\\n" % (args,)).encode())
        elif event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec"):
            _w(_fd, ("PROC %s %r" % (event, args[:2]))[:300].encode() + b"\\n")
    sys.addaudithook(_hook)
"""


@dataclass
class Outcome:
    """What grading one submission found."""

    student: str
    assignment: str
    status: str = "graded"  # graded | failed (needs a look: the notebook did not run) | flagged (review)
    seconds: float = 0.0
    scores: dict = field(default_factory=dict)  # grade_id -> auto score (None: graded by hand)
    max_scores: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)  # exercise -> labkit_course.judge.Verdict
    judge_seconds: float = 0.0
    notebook_log: str = ""

    @property
    def auto_score(self) -> float:
        return sum(v for v in self.scores.values() if v is not None)


def student_seed(secret: str, aid: str, student: str) -> int:
    """The hidden-test seed of a student: fixed per (course secret, lab, student)."""
    return int.from_bytes(hashlib.sha256(f"{secret}/{aid}/{student}".encode()).digest()[:4], "big") % 2**31


# ----------------------------------------------------------------------------------------------
# Safety net
# ----------------------------------------------------------------------------------------------
def snapshot_gradebook(course: Path, keep: int = KEEP_BACKUPS) -> Path | None:
    """Copy ``gradebook.db`` with SQLite's online backup API to ``.labkit/backups/``; keep the last ``keep``."""
    db = Path(course) / "gradebook.db"
    if not db.exists():
        return None
    folder = Path(course) / META_DIR / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"gradebook-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}.db"
    with sqlite3.connect(db) as src, sqlite3.connect(dest) as out:
        src.backup(out)
    for old in sorted(folder.glob("gradebook-*.db"))[:-keep]:
        old.unlink()
    return dest


# ----------------------------------------------------------------------------------------------
# One submission
# ----------------------------------------------------------------------------------------------
def _scrubbed_gradebook(course: Path, dest: Path, student: str) -> None:
    """A copy of the gradebook holding the course's structure and no student but ``student``."""
    from nbgrader.api import Gradebook

    with sqlite3.connect(course / "gradebook.db") as src, sqlite3.connect(dest) as out:
        src.backup(out)
    with Gradebook(f"sqlite:///{dest}", COURSE_ID) as gb:
        for other in [s.id for s in gb.students if s.id != student]:
            gb.remove_student(other)


def _prepare_notebook_box(course: Path, aid: str, lab: Lab, student: str, box: Path, outcome: Outcome) -> Path:
    """The throw-away course the notebook runs in: released files, the submission, a scrubbed gradebook."""
    root = box / "sandbox" / "course"
    (root / "source").mkdir(parents=True)
    info = course_info(course)
    exclude = {aid: [f"labkit/{lab.module}.py"]}
    (root / "nbgrader_config.py").write_text(
        nbgrader_config(
            info.get("course_id", COURSE_ID),
            exclude,
            info.get("cell_timeout", 300),
            execute="crash_tolerant_execute.CrashTolerantExecute",
        )
    )
    shutil.copy(Path(__file__).with_name("crash_tolerant_execute.py"), root / "crash_tolerant_execute.py")
    # the released notebook stands in for the solved one: nbgrader reads cells from the gradebook
    released = course / "release" / aid
    shutil.copytree(released if released.exists() else course / "source" / aid, root / "source" / aid)
    _scrubbed_gradebook(course, root / "gradebook.db", student)
    sub_root = root / "submitted" / student / aid
    shutil.copytree(
        course / "submitted" / student / aid,
        sub_root,
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    module_rel = Path("labkit") / f"{lab.module}.py"
    if not (sub_root / module_rel).is_file():
        outcome.notes.append(f"the submission has no {module_rel}: the untouched stub was graded")
        (sub_root / "labkit").mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "source" / aid / module_rel, sub_root / module_rel)
    # Only the course's files, the notebooks and the exercise module count: anything else (a
    # `torch.py` shadowing a library, a link out of the submission) is left out.
    allowed = {p.relative_to(root / "source" / aid) for p in (root / "source" / aid).rglob("*") if p.is_file()}
    for path in sorted(sub_root.rglob("*"), reverse=True):
        rel = path.relative_to(sub_root)
        if path.is_symlink() or (
            path.is_file()
            and rel not in allowed
            and rel.name != "timestamp.txt"
            and not (rel.suffix == ".ipynb" and len(rel.parts) == 1)
        ):
            path.unlink()
            outcome.notes.append(f"extra file {rel} in the submission was ignored")
    return root


def grade_one(course: Path, aid: str, lab: Lab, student: str, limits: Limits, sandbox_mode: str, box: Path) -> Outcome:
    """Execute the notebook and judge the module of one submission, both sandboxed, in ``box``.

    Touches nothing in ``course``. Never raises: a harness failure is an outcome with status "failed"."""
    from labkit_course.judge import judge
    from labkit_course.notebooks import thread_env

    outcome = Outcome(student, aid)
    start = time.perf_counter()
    try:
        sandboxed = sandbox.check_mode(sandbox_mode)
        root = _prepare_notebook_box(course, aid, lab, student, box, outcome)
        work = box / "sandbox"  # all the notebook's processes may write; box itself is ours
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(AUDIT_SITECUSTOMIZE)
        (work / "home").mkdir()
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": str(work / "home"),
            "JUPYTER_RUNTIME_DIR": str(work / "home" / "runtime"),
            "IPYTHONDIR": str(work / "home" / "ipython"),
            "PYTHONPATH": str(work / "site"),
            AUDIT_LOG: str(work / "audit.log"),
            "LABKIT_OFFLINE": "1",
            "MPLBACKEND": "agg",
            "TQDM_MININTERVAL": "5",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            **thread_env(limits.threads or os.cpu_count() or 1),
        }
        cmd = [
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            aid,
            "--student",
            student,
            "--force",
            f"--Execute.timeout={limits.cell_timeout}",
        ]
        run = sandbox.run(
            cmd,
            limits=limits,
            mounts=[sandbox.Mount(work, writable=True)],
            env=env,
            cwd=root,
            output=box / "nbgrader.log",
            sandbox=sandboxed,
            writable=[work],
        )
        outcome.notes += run.notes
        outcome.notebook_log = (box / "nbgrader.log").read_bytes()[-4000:].decode(errors="replace")
        if run.returncode and run.returncode < 0 and not run.killed:
            outcome.notes.append(
                f"the notebook run was killed by signal {-run.returncode} "
                f"(memory limit {limits.memory_mb} MB or CPU limit {limits.cpu} s?)"
            )

        secret = (course / META_DIR / "secret").read_text().strip()
        judge_start = time.perf_counter()
        judgement = judge(
            lab.module,
            root / "submitted" / student / aid / "labkit" / f"{lab.module}.py",
            student_seed(secret, aid, student),
            labkit_dir=course / "source" / aid / "labkit",
            hidden_dir=course / META_DIR / "judge" / "hidden",
            reference_dir=course / META_DIR / "judge" / "reference",
            limits=replace(limits, wall_timeout=min(limits.wall_timeout, 900)),
            sandbox_mode=sandbox_mode,
            workdir=box,
        )
        outcome.judge_seconds = time.perf_counter() - judge_start
        outcome.verdicts = judgement.verdicts
        outcome.notes += [n for n in judgement.notes if n not in outcome.notes]
        if judgement.flags:
            outcome.status = "flagged"
            outcome.notes.append(f"labkit/{lab.module}.py needs review: " + "; ".join(judgement.flags[:5]))
    except sandbox.SandboxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 -- the harness failed for this one: record it, go on
        outcome.status = "failed"
        outcome.notes.append(f"grader error: {type(exc).__name__}: {exc}")
        outcome.notebook_log += traceback.format_exc()[-3000:]
    outcome.seconds = time.perf_counter() - start
    return outcome


# ----------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------
def _test_cells(nb) -> dict[str, str]:
    """grade_id -> source of every autograded test cell."""
    from nbgrader.utils import is_grade, is_solution

    return {
        c.metadata.nbgrader["grade_id"]: c.source
        for c in nb.cells
        if c.cell_type == "code" and is_grade(c) and not is_solution(c)
    }


def read_untrusted(path: Path, limit: int = 64 * 2**20) -> bytes:
    """The bytes of a regular file that student code could have replaced: no links followed, size capped."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"{path.name} is not a regular file of a sensible size")
        return f.read(limit)


def copy_regular_files(src: Path, dest: Path) -> None:
    """Copy the regular files under ``src`` (links and special files are left behind)."""
    for path in sorted(src.rglob("*")):
        if (
            path.is_file()
            and not path.is_symlink()
            and not any(p.is_symlink() for p in path.parents if src in p.parents)
        ):
            target = dest / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(read_untrusted(path))


def _read_notebook(path: Path, outcome: Outcome, what: str):
    import nbformat

    try:
        return nbformat.reads(read_untrusted(path).decode("utf-8"), as_version=4)
    except (FileNotFoundError, NotADirectoryError):
        outcome.notes.append(
            f"the submission has no {path.name}" if what == "submitted" else "nbgrader could not execute the notebook"
        )
    except Exception as exc:  # noqa: BLE001 -- malformed JSON, wrong schema...
        outcome.notes.append(f"{path.name} could not be read: {type(exc).__name__}: {str(exc)[:300]}")
    return None


def record(course: Path, outcome: Outcome, box: Path | None) -> Outcome:
    """Write one outcome to the course: grades in the gradebook, the executed (or, failing that, the
    submitted) notebook in ``autograded/`` for formgrader. Runs in this trusted process."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import SaveAutoGrades

    course = Path(course).resolve()
    aid, lab = lab_in_course(course, outcome.assignment)
    cells = course_info(course)["labs"][aid].get("cells", {})
    student = outcome.student
    submitted_dir = course / "submitted" / student / aid
    nb_name = f"{lab.notebook}.ipynb"
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    ensure_bin_on_path()
    warnings.filterwarnings("ignore", message=".*not in session.*")  # nbgrader's api, harmless

    # what the student changed that was restored from source
    release_dir = course / "release" / aid
    for path in sorted((course / "source" / aid).rglob("*")):
        rel = path.relative_to(course / "source" / aid)
        if path.is_file() and rel.suffix != ".ipynb" and rel != Path("labkit") / f"{lab.module}.py":
            theirs, given = submitted_dir / rel, release_dir / rel
            reference = given if given.exists() else path
            if theirs.is_file() and theirs.read_bytes() != reference.read_bytes():
                outcome.notes.append(f"{rel} was edited in the submission; the course's version was used")

    submitted_nb = _read_notebook(submitted_dir / nb_name, outcome, "submitted")
    if submitted_nb is None:
        outcome.status = "failed" if outcome.status == "graded" else outcome.status
    elif (release_dir / nb_name).exists():
        import nbformat

        released = _test_cells(nbformat.read(release_dir / nb_name, as_version=4))
        for gid, source in _test_cells(submitted_nb).items():
            if gid in released and source != released[gid]:
                outcome.notes.append(f"test cell {gid!r} was edited in the submission; it was restored from source")

    graded_dir = box / "sandbox" / "course" / "autograded" / student / aid if box else None
    graded_nb = (
        _read_notebook(graded_dir / nb_name, outcome, "graded") if (graded_dir and submitted_nb is not None) else None
    )
    try:
        events = [e for e in read_untrusted(box / "sandbox" / "audit.log").decode(errors="replace").splitlines() if e]
    except (OSError, ValueError, TypeError):
        events = []
    if graded_nb is not None and not any(e.startswith("START") for e in events):
        outcome.status = "flagged"
        outcome.notes.append("the kernel's audit log is missing: possible tampering")
    started = sorted({e[5:] for e in events if e.startswith("PROC ") and "'uname'" not in e})
    if started:  # not flagged (libraries do it too), but reported
        outcome.notes.append("the kernel started processes: " + "; ".join(started[:3]))
    suspicious = sorted({e for e in events if not e.startswith(("START", "PROC ")) and ":memory:" not in e})
    if suspicious:
        outcome.status = "flagged"
        outcome.notes.append("student code touched grading files: " + "; ".join(suspicious[:5]))

    with Gradebook(db_url, COURSE_ID) as gb:
        notebook = gb.find_notebook(lab.notebook, aid)
        sources = {c.name: c.source for c in notebook.source_cells}
        grade_cells = {c.name: c for c in notebook.grade_cells}
        if graded_nb is not None:
            for gid, source in _test_cells(graded_nb).items():
                if gid not in sources or source != sources[gid]:
                    outcome.status = "flagged"
                    outcome.notes.append(f"test cell {gid!r} differs from source after grading")
            _note_cell_errors(graded_nb, outcome)
        gb.update_or_create_student(student)
        ts_file = submitted_dir / "timestamp.txt"
        timestamp = ts_file.read_text().strip() if ts_file.is_file() else None
        gb.update_or_create_submission(aid, student, **({"timestamp": timestamp} if timestamp else {}))
        shown = graded_nb if graded_nb is not None and outcome.status != "flagged" else None
        if shown is not None:
            resources = {
                "nbgrader": {"notebook": lab.notebook, "assignment": aid, "student": student, "db_url": db_url}
            }
            SaveAutoGrades().preprocess(copy.deepcopy(shown), resources)
        dest = course / "autograded" / student / aid
        if dest.exists():
            shutil.rmtree(dest)
        if graded_nb is not None:
            copy_regular_files(graded_dir, dest)
        elif submitted_nb is not None:  # the notebook did not run: the written answers still need a grader
            dest.mkdir(parents=True)
            shutil.copy(submitted_dir / nb_name, dest / nb_name)
        for name, gc in grade_cells.items():
            grade = gb.find_grade(name, lab.notebook, aid, student)
            if gc.cell_type == "code" and name in cells:
                exercises = cells[name]
                passed = sum(bool(outcome.verdicts.get(e) and outcome.verdicts[e].passed) for e in exercises)
                score = gc.max_score * passed / len(exercises) if exercises else 0.0
                if outcome.status == "flagged":
                    grade.auto_score, grade.needs_manual_grade = 0.0, True
                else:
                    grade.auto_score, grade.needs_manual_grade = score, False
            else:
                grade.auto_score, grade.needs_manual_grade = None, True
        gb.db.commit()
        for name, gc in grade_cells.items():
            try:
                outcome.scores[name] = gb.find_grade(name, lab.notebook, aid, student).auto_score
            except MissingEntry:
                continue
            outcome.max_scores[name] = gc.max_score
    return outcome


def _note_cell_errors(graded_nb, outcome: Outcome) -> None:
    """Say what went wrong in the executed notebook's test cells (they don't score: the judge does)."""
    from nbgrader.utils import is_grade, is_solution

    for cell in graded_nb.cells:
        if is_grade(cell) and cell.cell_type == "code" and not is_solution(cell):
            gid = cell.metadata.nbgrader["grade_id"]
            errors = [o.ename for o in cell.outputs if o.output_type == "error"]
            if "CellTimeoutError" in errors:
                outcome.notes.append(f"test cell {gid!r} exceeded the per-cell timeout in the notebook")
            elif "KernelDied" in errors:
                outcome.notes.append(f"the kernel crashed in test cell {gid!r}")


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------
def write_report(course: Path, outcome: Outcome, lab: Lab) -> None:
    """``feedback/<student>/labN/grading_report.html``: status, the judge's word per exercise, notes."""
    dest = Path(course) / "feedback" / outcome.student / outcome.assignment
    dest.mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{'to be graded by hand' if v is None else f'{v:g}'}</td>"
        f"<td>{outcome.max_scores.get(k, 0):g}</td></tr>"
        for k, v in outcome.scores.items()
    )
    verdicts = (
        "".join(
            f"<li>{'PASS' if v.passed else 'FAIL'}: {html.escape(v.message)}</li>" for v in outcome.verdicts.values()
        )
        or "<li>the exercises could not be judged</li>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes) or "<li>none</li>"
    why = ""
    if outcome.status == "flagged":
        why = (
            "<h2>Why</h2><p>Autograding flagged this submission: its autograded parts score 0 until an "
            "instructor reviews it.</p>"
        )
    elif outcome.status == "failed":
        why = "<h2>Why</h2><p>The notebook could not be executed; the exercises were still judged.</p>"
        if outcome.notebook_log:
            log = "\n".join(line for line in outcome.notebook_log.splitlines() if "/labkit-" not in line)
            why += f"<h3>Grader log (end)</h3><pre>{html.escape(log[-3000:])}</pre>"
    (dest / "grading_report.html").write_text(
        f"<html><body><h1>{html.escape(lab.title)}: grading report for {html.escape(outcome.student)}</h1>"
        f"<p>status: <b>{outcome.status}</b>; autograded score {outcome.auto_score:g}</p>{why}"
        f"<h2>Exercises (hidden tests on random inputs)</h2><ul>{verdicts}</ul>"
        f"<h2>Notes</h2><ul>{notes}</ul><table border=1><tr><th>cell</th><th>score</th><th>max</th></tr>"
        f"{rows}</table></body></html>\n"
    )


def summary(outcomes: list[Outcome]):
    """One row per student: status, score per cell, autograded total, seconds, notes."""
    import pandas as pd

    rows = []
    for o in sorted(outcomes, key=lambda o: o.student):
        row = {
            "student": o.student,
            "status": o.status,
            **o.scores,
            "auto_total": o.auto_score,
            "seconds": round(o.seconds, 1),
            "judge_seconds": round(o.judge_seconds, 1),
            "notes": " | ".join(o.notes),
        }
        rows.append(row)
    df = pd.DataFrame(rows)
    if len(df):
        df = df.set_index("student")
    df.attrs["outcomes"] = outcomes
    return df


# ----------------------------------------------------------------------------------------------
# A class
# ----------------------------------------------------------------------------------------------
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
):
    """Autograde every submission of ``lab``; see the module doc. Returns the summary DataFrame."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    course = Path(course).resolve()
    aid, lab_ = lab_in_course(course, lab)
    if not (course / "gradebook.db").exists():
        raise FileNotFoundError(f"{course / 'gradebook.db'} is missing: run `nbgrader generate_assignment {aid}` first")
    if workers < 1:
        raise ValueError(f"workers must be a positive int; got {workers!r}")
    if not sandbox.check_mode(sandbox_mode):
        print(f"WARNING: {sandbox.FALLBACK_WARNING}", file=sys.stderr)
    if students is None:
        students = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{aid}") if p.is_dir())
    if limits.threads is None:  # oversubscribed cores spin-wait: N kernels x 2 threads on 2 cores crawl
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // workers))
    snapshot_gradebook(course)
    outcomes: list[Outcome] = []
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            boxes = {s: Path(tempfile.mkdtemp(prefix="labkit-grade-")) for s in students}
            futures = {
                pool.submit(grade_one, course, aid, lab_, s, limits, sandbox_mode, boxes[s]): s for s in students
            }
            bar = tqdm(total=len(futures), desc=f"autograding {aid}", unit="submission", disable=not progress)
            for future in as_completed(futures):
                student = futures[future]
                try:
                    outcomes.append(record(course, future.result(), boxes[student]))
                except Exception as exc:  # noqa: BLE001 -- recording this one failed: say so, go on
                    outcomes.append(
                        Outcome(
                            student,
                            aid,
                            status="failed",
                            notes=[f"grader error while recording: {type(exc).__name__}: {exc}"],
                        )
                    )
                finally:
                    shutil.rmtree(boxes[student], ignore_errors=True)
                bar.update(1)
            bar.close()
        if feedback and outcomes:
            try:
                nbgrader(course, "generate_feedback", aid, "--force")
            except RuntimeError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        for outcome in outcomes:  # after generate_feedback, which replaces feedback/<student>/<lab>/
            write_report(course, outcome, lab_)
    finally:
        table = summary(outcomes)
        (course / "reports").mkdir(exist_ok=True)
        table.to_csv(course / "reports" / f"{aid}.csv")
    return table
