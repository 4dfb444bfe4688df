"""Grading, step 1: preparing, before any student code runs.

The course's safety net (:func:`snapshot_gradebook`), the student's hidden-test seed
(:func:`student_seed`), and the two throw-away boxes one submission is graded in: the course
nbgrader runs in (:func:`prepare_notebook_box`: released files, the submission, a gradebook with no
other student, :func:`scrubbed_gradebook`) and the folders its sandboxed kernel gets
(:func:`prepare_kernel_box`: the audit hook, fontconfig, the kernel's environment and limits).
Nothing here writes to the course but the backups.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from labkit.labs import Lab
from labkit_course.build import COURSE_ID, META_DIR, course_info, nbgrader_config
from labkit_course.grading.outcome import Outcome
from labkit_course.sandbox import Limits

KEEP_BACKUPS = 5
BOX_DISK_MB = 256  # the kernel's writable /tmp (a tmpfs: memory, so small)
AUDIT_LOG = "LABKIT_AUDIT_LOG"  # the environment variable naming the kernel's audit log
# installed as the kernel's sitecustomize.py: records what the kernel opens and starts (see the file)
KERNEL_SITECUSTOMIZE = Path(__file__).with_name("kernel_sitecustomize.py")
# fontconfig's own file: the sandbox has no /etc/fonts, and without one every figure prints an error
FONTS_CONF = """\
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><dir>/usr/share/fonts</dir><cachedir>/tmp/.cache/fontconfig</cachedir></fontconfig>
"""


def student_seed(secret: str, aid: str, student: str) -> int:
    """The hidden-test seed of a student: fixed per (course secret, lab, student), in ``[0, 2**31)``."""
    return int.from_bytes(hashlib.sha256(f"{secret}/{aid}/{student}".encode()).digest()[:4], "big") % 2**31


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


def scrubbed_gradebook(course: Path, dest: Path, student: str) -> None:
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


def prepare_notebook_box(course: Path, aid: str, lab: Lab, student: str, box: Path, outcome: Outcome) -> Path:
    """The throw-away course nbgrader runs in (``box/course``, returned): released files, the
    submission, a scrubbed gradebook. nbgrader's own scores (its SaveAutoGrades) land in that copy
    and are thrown away with it: the course's gradebook gets the judge's only (step 3)."""
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
    scrubbed_gradebook(course, root / "gradebook.db", student)
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
    _keep_only_course_files(root / "source" / aid, sub_root, outcome)
    return root


def _keep_only_course_files(released: Path, sub_root: Path, outcome: Outcome) -> None:
    """Only the course's files, the notebooks and the exercise module count: anything else (a
    ``torch.py`` shadowing a library, a link out of the submission) is left out."""
    allowed = {p.relative_to(released) for p in released.rglob("*") if p.is_file()}
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


def prepare_kernel_box(box: Path, limits: Limits, backend: str, seconds: float) -> dict[str, str]:
    """The folders of the notebook's sandboxed kernel in ``box`` (``rt``: its private runtime folder,
    sockets and audit log, given to the kernel's uid by the launcher; ``site``: its sitecustomize and
    fonts.conf, read-only; ``connect``, ``home``) and ``kernel-box.json``, the launcher's settings
    (:mod:`labkit_course.crash_tolerant_execute`): backend, limits for ``seconds``, environment.
    Returns the environment ``nbgrader autograde`` runs with."""
    from labkit_course.crash_tolerant_execute import BOX_SETTINGS, kernel_spec
    from labkit_course.notebooks import thread_env

    runtime, site, connect = box / "rt", box / "site", box / "connect"
    runtime.mkdir(mode=0o700)
    for folder in (site, connect, box / "home"):
        folder.mkdir()
    os.chmod(site, 0o755)
    shutil.copyfile(KERNEL_SITECUSTOMIZE, site / "sitecustomize.py")
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
    return {
        "PATH": kernel_env["PATH"],
        "HOME": str(box / "home"),
        "JUPYTER_PATH": str(kernel_spec(box / "jupyter").parent.parent),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(box / "home" / "jupyter"),
        BOX_SETTINGS: str(box / "kernel-box.json"),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
