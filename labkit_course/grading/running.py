"""Grading, step 2: running the student's code, sandboxed, for one submission.

The exercise module is judged (:func:`judge_module`: hidden cases from the student's seed, run in
the sandbox, compared here with the reference; the only source of scores); the notebook's code
cells get the judge's static audit (:func:`audit_submitted_notebook`); the notebook is executed
with ``nbgrader autograde`` in the box step 1 prepared, its kernel in a sandbox of its own
(:func:`run_notebook`), for reading (public checks' output, written answers), never for scoring.
What comes back (outputs, logs, the kernel's audit log, :func:`read_audit_log`) is untrusted data,
read with caps. Nothing here writes to the course.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from labkit.labs import Lab
from labkit_course import sandbox
from labkit_course.build import META_DIR
from labkit_course.grading.outcome import Outcome
from labkit_course.grading.preparing import student_seed
from labkit_course.grading.untrusted import read_tail, read_untrusted
from labkit_course.sandbox import Limits

BUDGET = 1200  # seconds per submission, judge and notebook together (`--budget`)
JUDGE_TIMEOUT = 900  # seconds: the most the judge's sandboxed worker may run, within the budget
LOG_CAP = 64 * 2**10  # bytes read from the end of a log
AUDIT_CAP = 2**20  # bytes of the kernel's audit log read


def judge_module(
    course: Path,
    aid: str,
    lab: Lab,
    student: str,
    root: Path,
    limits: Limits,
    sandbox_mode: str,
    box: Path,
    budget: float,
    outcome: Outcome,
) -> None:
    """Judge the submission's exercise module (in the notebook box ``root``) with the student's
    hidden seed, within ``budget`` seconds; its verdicts, notes and flags go to ``outcome``."""
    from labkit_course.judge import judge

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
    outcome.verdicts = judgement.verdicts
    for n in judgement.notes:
        outcome.note(n)
    if judgement.flags:
        outcome.flag(f"labkit/{lab.module}.py needs review: " + "; ".join(judgement.flags[:5]))


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


def audit_submitted_notebook(course: Path, aid: str, lab: Lab, sub_root: Path, outcome: Outcome) -> None:
    """Flag the submission in ``sub_root`` if :func:`audit_notebook` finds reasons in its notebook
    (a missing or unreadable notebook is step 3's to report)."""
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


def run_notebook(
    root: Path, box: Path, aid: str, student: str, cell_timeout: int, env: dict, seconds: float, outcome: Outcome
) -> None:
    """``nbgrader autograde`` in a process of ours, in the notebook box ``root``, with the kernel box's
    environment ``env`` (:func:`~labkit_course.grading.preparing.prepare_kernel_box`; its kernel in
    its own sandbox), for ``seconds`` at most; what it says goes to ``outcome``."""
    cmd = [sys.executable, "-m", "nbgrader", "autograde", aid, "--student", student, "--force"]
    cmd.append(f"--Execute.timeout={cell_timeout}")
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


def read_audit_log(box: Path, outcome: Outcome) -> None:
    """What the kernels' audit hook (``kernel_sitecustomize.py``) logged: ``rt/audit.log``, and
    ``rt.N/audit.log`` of the kernels a crash replaced. Written by the kernel, so evidence only: it
    can flag a submission, never clear one, and a missing log is only said."""
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
