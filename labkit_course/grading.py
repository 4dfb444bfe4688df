"""Autograde a class: scores from the trusted judge only, student code sandboxed, no grade lost.

    labkit-course grade COURSE 1 [--workers 2] [--budget 1200] [--sandbox require|fallback]

Steps of :func:`grade` (one lab, every submission in ``submitted/*/labN``):

1. **Snapshot the gradebook** with SQLite's online backup API (``.labkit/backups/``, the last
   :data:`KEEP_BACKUPS`), so nothing a run does can lose a grade recorded before it.
2. For each submission, ``workers`` at a time (:func:`grade_one`, which never raises), within a
   total budget of ``budget`` seconds (:data:`BUDGET` by default):

   a. **Judge the exercise module** (:func:`labkit_course.judge.judge`): hidden cases from the
      student's seed, run in the sandbox, compared here with the reference. This is the only
      source of scores.
   b. **Audit the notebook's code cells** (:func:`audit_notebook`, the judge's static audit).
   c. **Execute the notebook** with ``nbgrader autograde``, for reading (public checks' output,
      written answers), never for scoring. nbgrader runs in a process of ours, in a throw-away copy
      of the course (the released files, the submission, a gradebook with no other student); only
      its kernel runs student code, in a sandbox of its own
      (:mod:`labkit_course.crash_tolerant_execute`): another PID namespace and user, no network, a
      size-limited ``/tmp`` (:data:`BOX_DISK_MB`), nothing of the course. What comes back from it
      (outputs, its audit log) is untrusted data, read with caps.

3. **Record** (:func:`record`, in this process, one submission at a time, one transaction): each
   autograded test cell scores its points (from ``source/``, through the gradebook) times the
   fraction of its exercises the judge passed; written answers wait for a human. A flagged
   submission (static audit of module or notebook, audit log, tampered test cells) scores 0 on
   autograded cells until an instructor reviews it. Any failure makes the status ``failed`` and
   keeps every note; the summary's scores are read back from the gradebook, so the two agree.
4. **Feedback**: nbgrader's feedback, plus ``feedback/<student>/labN/grading_report.html`` with the
   judge's verdict per exercise.
5. **Summary**: returned as a DataFrame and always written to ``reports/labN.csv``.

Hidden seeds are derived from the course secret, the lab and the student: fixed per student (a
regrade gives the same grade), unknown to students.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import math
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field, replace
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
from labkit_course.scoring import cell_score

KEEP_BACKUPS = 5
BUDGET = 1200  # seconds per submission, judge and notebook together (`--budget`)
JUDGE_TIMEOUT = 900  # seconds: the most the judge's sandboxed worker may run, within the budget
BOX_DISK_MB = 256  # the kernel's writable /tmp (a tmpfs: memory, so small)
LOG_CAP = 64 * 2**10  # bytes read from the end of a log
AUDIT_CAP = 2**20  # bytes of the kernel's audit log read
AUDIT_LOG = "LABKIT_AUDIT_LOG"

# Installed in the kernel's sandbox (sitecustomize): records what the kernel opens and starts. The
# sandbox already hides the course; this turns an attempt into evidence. The kernel writes it: it is
# read as untrusted data, and nothing the sandbox prevents depends on it.
AUDIT_SITECUSTOMIZE = """\
import os, sys
_log = os.environ.get("LABKIT_AUDIT_LOG")
if _log and os.environ.get("NBGRADER_EXECUTION") == "autograde":
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_fd, ("START %d\\n" % os.getpid()).encode())
    # the runtime's own process starts are not the student's: ctypes.util.find_library runs
    # ldconfig and gcc, platform runs uname, matplotlib's font manager fc-list
    import importlib.util
    _own = [os.path.join(os.path.dirname(os.__file__), f) for f in ("ctypes/util.py", "platform.py")]
    _mpl = importlib.util.find_spec("matplotlib")  # found, not imported
    _own = tuple(_own + [os.path.join(p, "font_manager.py") for p in (_mpl and _mpl.submodule_search_locations or ())])

    def _runtime_own(_getframe=sys._getframe, _own=_own):
        frame = _getframe(1)
        while frame is not None:
            if frame.f_code.co_filename in _own:
                return True
            frame = frame.f_back
        return False

    def _hook(event, args, _fd=_fd, _w=os.write, _fs=os.fsdecode):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = _fs(args[0])
            if (path.endswith((".ipynb", ".db", ".db-journal")) or "/.labkit" in path
                    or (path.startswith("/proc/") and path.endswith("/mem"))):
                _w(_fd, ("open %r\\n" % path).encode())
        elif event == "sqlite3.connect":
            _w(_fd, ("sqlite3.connect %r\\n" % (args,)).encode())
        elif event in ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec") and not _runtime_own():
            _w(_fd, ("PROC %s %r" % (event, args[:2]))[:300].encode() + b"\\n")
    sys.addaudithook(_hook)
"""
# fontconfig's own file: the sandbox has no /etc/fonts, and without one every figure prints an error
FONTS_CONF = """\
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><dir>/usr/share/fonts</dir><cachedir>/tmp/.cache/fontconfig</cachedir></fontconfig>
"""


@dataclass
class Outcome:
    """What grading one submission found."""

    student: str
    assignment: str
    status: str = "graded"  # graded | failed (needs a look: the notebook did not run) | flagged (review)
    flagged: bool = False  # needs review: autograded cells score 0, whatever the status became after
    seconds: float = 0.0
    scores: dict = field(default_factory=dict)  # grade_id -> auto score in the gradebook (None: by hand)
    max_scores: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    verdicts: dict = field(default_factory=dict)  # exercise -> labkit_course.judge.Verdict
    judge_seconds: float = 0.0
    notebook_log: str = ""

    @property
    def auto_score(self) -> float:
        return sum(v for v in self.scores.values() if v is not None)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def flag(self, text: str) -> None:
        """Hold the submission for review (its autograded cells score 0), saying why. A later
        failure changes the status to ``failed``, never the hold."""
        self.flagged = True
        if self.status == "graded":
            self.status = "flagged"
        self.note(text)


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
    """A copy of the gradebook holding the course's structure and no student but ``student``: the
    others' rows are deleted, then the file is rebuilt (``VACUUM``), so no freed page still holds
    them, whatever SQLite's compile-time secure-delete setting."""
    from nbgrader.api import Gradebook

    with sqlite3.connect(course / "gradebook.db") as src, sqlite3.connect(dest) as out:
        src.backup(out)
    with Gradebook(f"sqlite:///{dest}", COURSE_ID) as gb:
        for other in [s.id for s in gb.students if s.id != student]:
            gb.remove_student(other)
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        out.execute("VACUUM")
    finally:
        out.close()


def _prepare_notebook_box(course: Path, aid: str, lab: Lab, student: str, box: Path, outcome: Outcome) -> Path:
    """The throw-away course nbgrader runs in: released files, the submission, a scrubbed gradebook."""
    from labkit_course.crash_tolerant_execute import KERNEL_NAME

    root = box / "course"
    (root / "source").mkdir(parents=True)
    info = course_info(course)
    exclude = {aid: [f"labkit/{lab.module}.py"]}
    (root / "nbgrader_config.py").write_text(
        nbgrader_config(info.get("course_id", COURSE_ID), exclude, info.get("cell_timeout", 300))
        # the kernel: sandboxed (crash_tolerant_execute.launch), reached over unix sockets in box/rt
        + f"c.Execute.kernel_name = {KERNEL_NAME!r}\n"
        + "c.KernelManager.transport = 'ipc'\n"
        + f"c.KernelManager.ip = {str(box / 'rt' / 'k')!r}\n"
        # not the shared temp folder (jupyter_client's default): nothing of a kernel's is left there
        + f"c.KernelManager.connection_file = {str(box / 'connect' / 'kernel.json')!r}\n"
    )
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
        outcome.note(f"the submission has no {module_rel}: the untouched stub was graded")
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
            outcome.note(f"extra file {rel} in the submission was ignored")
    return root


def audit_notebook(nb, released, module: str) -> list[str]:
    """Reasons to review the code cells of a submitted notebook (the judge's static audit,
    :func:`labkit_course.judge.static.audit`), each prefixed by its cell's number. Cells identical
    to a code cell of the ``released`` notebook are the course's own and are not audited."""
    from IPython.core.inputtransformer2 import TransformerManager

    from labkit_course.judge.static import audit

    given = {c.source for c in released.cells if c.cell_type == "code"} if released is not None else set()
    reasons = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not isinstance(cell.source, str) or cell.source in given:
            continue
        try:
            source = TransformerManager().transform_cell(cell.source)  # %magics and !shell as Python
        except Exception:  # noqa: BLE001 -- not Python: nothing it could do runs
            continue
        reasons += [f"cell {i + 1}, {r}" for r in audit(source, module)]
    return reasons


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
    from labkit_course.judge import judge

    outcome = Outcome(student, aid)
    start = time.perf_counter()
    try:
        backend = sandbox.check_mode(sandbox_mode)
        root = _prepare_notebook_box(course, aid, lab, student, box, outcome)
        secret = (course / META_DIR / "secret").read_text().strip()
        judgement = judge(
            lab.module,
            root / "submitted" / student / aid / "labkit" / f"{lab.module}.py",
            student_seed(secret, aid, student),
            labkit_dir=course / "source" / aid / "labkit",
            hidden_dir=course / META_DIR / "judge" / "hidden",
            reference_dir=course / META_DIR / "judge" / "reference",
            limits=replace(limits, wall_timeout=int(min(limits.wall_timeout, JUDGE_TIMEOUT, budget))),
            sandbox_mode=sandbox_mode,
            workdir=box,
        )
        outcome.judge_seconds = time.perf_counter() - start
        outcome.verdicts = judgement.verdicts
        for n in judgement.notes:
            outcome.note(n)
        if judgement.flags:
            outcome.flag(f"labkit/{lab.module}.py needs review: " + "; ".join(judgement.flags[:5]))
        _audit_submitted_notebook(course, aid, lab, root / "submitted" / student / aid, outcome)
        left = budget - (time.perf_counter() - start)
        if left < 1:
            outcome.note(f"the grading budget ({budget:g} s per submission) was spent: the notebook was not run")
        else:
            _run_notebook(root, box, aid, student, limits, backend, left, outcome)
    except Exception as exc:  # noqa: BLE001 -- the harness failed for this one: record it, go on
        outcome.status = "failed"
        outcome.note(f"grader error: {type(exc).__name__}: {exc}")
        outcome.notebook_log += traceback.format_exc()[-3000:]
    outcome.seconds = time.perf_counter() - start
    return outcome


def _audit_submitted_notebook(course: Path, aid: str, lab: Lab, sub_root: Path, outcome: Outcome) -> None:
    import nbformat

    released_path = course / "release" / aid / f"{lab.notebook}.ipynb"
    try:
        nb = nbformat.reads(read_untrusted(sub_root / f"{lab.notebook}.ipynb").decode("utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 -- missing or unreadable: record() says so
        return
    released = nbformat.read(released_path, as_version=4) if released_path.exists() else None
    flags = audit_notebook(nb, released, lab.module)
    if flags:
        outcome.flag(f"the notebook {lab.notebook}.ipynb needs review: " + "; ".join(flags[:5]))


def _run_notebook(
    root: Path, box: Path, aid: str, student: str, limits: Limits, backend: str, seconds: float, outcome: Outcome
) -> None:
    """``nbgrader autograde`` in a process of ours, its kernel in its own sandbox, for ``seconds`` at most."""
    from labkit_course.crash_tolerant_execute import BOX_SETTINGS, kernel_spec
    from labkit_course.notebooks import thread_env

    # the kernel's own folder (sockets, audit log), private: given to the kernel's uid by the launcher
    runtime, site, connect = box / "rt", box / "site", box / "connect"
    runtime.mkdir(mode=0o700)
    for folder in (site, connect, box / "home"):
        folder.mkdir()
    os.chmod(site, 0o755)
    (site / "sitecustomize.py").write_text(AUDIT_SITECUSTOMIZE)
    (site / "fonts.conf").write_text(FONTS_CONF)
    kernel_env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": "/tmp" if backend == "bwrap" else str(runtime),
        "PYTHONPATH": str(site),
        AUDIT_LOG: str(runtime / "audit.log"),
        "NBGRADER_EXECUTION": "autograde",
        "FONTCONFIG_FILE": str(site / "fonts.conf"),
        "LABKIT_OFFLINE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures in the notebook, for the grader
        "TQDM_MININTERVAL": "5",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "JOBLIB_MULTIPROCESSING": "0",  # serial, as the box (no /dev/shm) makes it, without a warning per notebook
        **thread_env(limits.threads or os.cpu_count() or 1),
    }
    kernel_limits = replace(limits, wall_timeout=math.ceil(seconds), file_mb=min(limits.file_mb, BOX_DISK_MB))
    settings = {
        "backend": backend,
        "limits": asdict(kernel_limits),
        "tmp_mb": BOX_DISK_MB,
        "env": kernel_env,
        "mounts": [str(site)],
        "log": str(box / "kernel.log"),
        "runtime": str(runtime),
    }
    (box / "kernel-box.json").write_text(json.dumps(settings))
    env = {
        "PATH": kernel_env["PATH"],
        "HOME": str(box / "home"),
        "JUPYTER_PATH": str(kernel_spec(box / "jupyter").parent.parent),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(box / "home" / "jupyter"),
        BOX_SETTINGS: str(box / "kernel-box.json"),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    cmd = [sys.executable, "-m", "nbgrader", "autograde", aid, "--student", student, "--force"]
    cmd.append(f"--Execute.timeout={limits.cell_timeout}")
    with open(box / "nbgrader.log", "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            outcome.note(f"the notebook run was stopped: the grading budget ran out after {seconds:.0f} s")
        finally:
            sandbox.kill_tree(proc.pid)  # nbgrader, its kernel launchers, and with them the kernels' boxes
            proc.wait()
    tail = read_tail(box / "nbgrader.log", LOG_CAP).decode(errors="replace")
    outcome.notebook_log = tail[-4000:]
    for line in tail.splitlines():
        if line.startswith("labkit: "):  # the kernel launcher's word (memory limit, disk...)
            outcome.note(line.removeprefix("labkit: ")[:300])
    if proc.returncode and proc.returncode < 0 and proc.returncode != -9:
        outcome.note(f"the notebook run was killed by signal {-proc.returncode}")


# ----------------------------------------------------------------------------------------------
# Reading what student code could have written
# ----------------------------------------------------------------------------------------------
def read_untrusted(path: Path, limit: int = 64 * 2**20) -> bytes:
    """The bytes of a regular file that student code could have replaced: no links followed, size capped."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"{path.name} is not a regular file of a sensible size")
        return f.read(limit)


def read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of a log (b"" if there is none): a log can be as big as its writer made it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b""
        f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
        return f.read(limit)


def copy_regular_files(src: Path, dest: Path) -> None:
    """Copy the regular files under ``src`` (links and special files are left behind), each in the
    form an instructor's tool may show (:func:`labkit_course.sanitize.view_file`; files it refuses
    are left behind)."""
    from labkit_course.sanitize import view_file

    for path in sorted(src.rglob("*")):
        if (
            path.is_file()
            and not path.is_symlink()
            and not any(p.is_symlink() for p in path.parents if src in p.parents)
        ):
            rel = path.relative_to(src)
            data = view_file(rel, read_untrusted(path))
            if data is not None:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(data)


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


# ----------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------
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


def _stage(course: Path, aid: str, lab: Lab, outcome: Outcome, box: Path | None, staged: Path) -> None:
    """Decide the status and notes, and prepare ``autograded/<student>/<lab>/`` in ``staged``.

    Writes nothing to ``course``."""
    import nbformat

    from labkit_course.sanitize import clean_notebook

    student = outcome.student
    submitted_dir = course / "submitted" / student / aid
    release_dir = course / "release" / aid
    nb_name = f"{lab.notebook}.ipynb"
    # what the student changed that was restored from source
    for path in sorted((course / "source" / aid).rglob("*")):
        rel = path.relative_to(course / "source" / aid)
        if path.is_file() and rel.suffix != ".ipynb" and rel != Path("labkit") / f"{lab.module}.py":
            theirs, given = submitted_dir / rel, release_dir / rel
            reference = given if given.exists() else path
            if theirs.is_file() and theirs.read_bytes() != reference.read_bytes():
                outcome.note(f"{rel} was edited in the submission; the course's version was used")

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
        _read_audit_log(box, outcome)
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


def _read_audit_log(box: Path, outcome: Outcome) -> None:
    """What the kernels' audit hook logged (``rt/audit.log``, and ``rt.N/audit.log`` of the kernels
    a crash replaced). Written by the kernel, so evidence only: it can flag a submission, never
    clear one, and a missing log is only said."""
    logs = [read_tail(box / "rt" / "audit.log", AUDIT_CAP)]
    logs += [read_tail(path / "audit.log", AUDIT_CAP) for path in sorted(box.glob("rt.*"))]
    events = [e for log in logs for e in log.decode(errors="replace").splitlines() if e]
    if not all(log.startswith(b"START") for log in logs):
        outcome.note("the kernel's audit log is missing or was altered")
    started = sorted({e[5:] for e in events if e.startswith("PROC ")})
    if started:  # not flagged (libraries do it too), but reported
        outcome.note("the kernel started processes: " + "; ".join(s[:150] for s in started[:3]))
    suspicious = sorted({e for e in events if not e.startswith(("START", "PROC ")) and ":memory:" not in e})
    if suspicious:
        outcome.flag("student code touched grading files: " + "; ".join(s[:150] for s in suspicious[:5]))


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


def _write(course: Path, aid: str, lab: Lab, outcome: Outcome, staged: Path | None) -> None:
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


def _read_back(course: Path, aid: str, lab: Lab, outcome: Outcome) -> None:
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
    if outcome.flagged:
        why += (
            "<p>Autograding flagged this submission: its autograded parts score 0 until an instructor reviews it.</p>"
        )
    if outcome.status == "failed":
        why += "<p>The notebook could not be executed or recorded (see the notes); the exercises were still judged.</p>"
        if outcome.notebook_log:
            log = "\n".join(line for line in outcome.notebook_log.splitlines() if "/labkit-" not in line)
            why += f"<h3>Grader log (end)</h3><pre>{html.escape(log[-3000:])}</pre>"
    why = f"<h2>Why</h2>{why}" if why else ""
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
    budget: float = BUDGET,
):
    """Autograde every submission of ``lab``; see the module doc. Returns the summary DataFrame.

    ``budget``: seconds per submission, judge and notebook together (the notebook gets what the judge left)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    course = Path(course).resolve()
    aid, lab_ = lab_in_course(course, lab)
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
                pool.submit(grade_one, course, aid, lab_, s, limits, sandbox_mode, boxes[s], budget): s
                for s in students
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
                    _read_back(course, aid, lab_, outcome)  # the summary says what the gradebook holds
                finally:
                    outcomes.append(outcome)
                    shutil.rmtree(boxes[student], ignore_errors=True)
                bar.update(1)
            bar.close()
        for outcome in outcomes if feedback else []:  # one by one: a broken notebook costs only its own
            try:  # the course's config sanitizes the pages (labkit_course.sanitize.feedback_hook)
                nbgrader(course, "generate_feedback", aid, "--student", outcome.student, "--force")
            except RuntimeError as exc:
                outcome.notes.append(f"nbgrader could not write the feedback page: {str(exc)[-300:]}")
        for outcome in outcomes:  # after generate_feedback, which replaces feedback/<student>/<lab>/
            write_report(course, outcome, lab_)
    finally:
        table = summary(outcomes)
        (course / "reports").mkdir(exist_ok=True)
        table.to_csv(course / "reports" / f"{aid}.csv")
    return table
