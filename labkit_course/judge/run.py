"""Step 3 of the judge: call the student's functions in the sandbox, on the trusted side's clock.

1. :func:`box` makes the judge's private folder (removed afterwards, whatever the student left in it)
   and :func:`prepare` fills it: a copy of the course's ``labkit`` package with the student's module
   in it, the worker script (:mod:`labkit_course.judge.worker`) and the request (the encoded calls,
   their arrays in an ``.npz``).
2. :func:`run_worker` runs the worker in the sandbox (:mod:`labkit_course.sandbox`), which sees the
   request, the package and an empty output folder, and writes each call's result there as data.
   :class:`Clock`, in this process, kills the worker when a call outlives its timeout, when an
   exercise outlives its share of the submission's budget (:func:`shares`) or when the budget is
   spent: the worker's own timer is in the student's process, which can reset it.
3. A call that kills the worker (a crash, a timeout, memory) costs its exercise only: the worker is
   started again at the next exercise's first case, writing to a fresh folder, until every exercise
   has had its run or the budget is spent. :class:`Runs` says where each case's results are and why
   the run that was to produce them was stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labkit_course import sandbox
from labkit_course.judge import worker
from labkit_course.judge.cases import Case

#: the worker runs of one submission (their starts included) may take this many times the sum, over
#: its exercises, of the exercise's longest per-call timeout; each exercise gets its part of that (its
#: longest timeout x this, the worker's start not included), and fails as a timeout past it. Below
#: 1.5: a submission that loops in every exercise costs the judge at most 1.5 x that sum, the verdicts
#: included. Honest submissions take a few percent of it (the references of the 5 labs: 3 to 16 s of
#: 336 to 588 s, on 2 busy cores).
BUDGET_FACTOR = 1.4
CALL_GRACE = 2.0  # seconds past a call's timeout before the judge kills the worker (its own timer fires first)
START_GRACE = 30.0  # seconds for a run to start (Python, numpy, torch, the module) before its first call's clock
INSIDE = Path("/judge")  # where the sandbox sees the judge's folder


def shares(cases: dict[str, list[Case]], budget: float | None) -> tuple[float, dict[str, float]]:
    """The submission's budget (``budget``, or :data:`BUDGET_FACTOR` x the sum over exercises of their
    longest per-call timeout) and each exercise's share of it, in proportion to its longest call: one
    slow exercise can't spend the time of the others."""
    longest = {n: max((c.timeout for case in cases[n] for c in case.calls), default=0.0) for n in cases}
    if budget is None:
        budget = BUDGET_FACTOR * sum(longest.values())
    total = sum(longest.values())
    return budget, {n: budget * longest[n] / total if total else budget for n in cases}


class Clock(threading.Thread):
    """The trusted side's clock on one run of the worker: it kills the worker's process tree when the
    call the worker is on has run past its timeout (the worker's own timer is in the student's process,
    which can reset it), when the exercise it is on has run past its share of the budget, or when
    ``deadline`` (the submission's time budget) has passed.

    ``calls`` are ``(result file stem, timeout, exercise)`` in order; ``shares`` give each exercise's
    seconds, counted from the worker's start (its ``ready`` file) for its first exercise, else from the
    previous exercise's last result. The call the worker is on is the first one without a result
    file. A file the student writes ahead of time only moves the clock on to later calls, each with
    its own timeout, all within their exercise's share and ``deadline``."""

    def __init__(self, inbox: Path, outbox: Path, calls: list[tuple[str, float, str]], shares: dict, deadline: float):
        super().__init__(daemon=True)
        self.inbox, self.outbox, self.calls, self.shares, self.deadline = inbox, outbox, calls, shares, deadline
        self.killed = ""  # "" | "timeout" | "share" | "budget"
        self._done = threading.Event()

    def run(self) -> None:
        i, since, grace = 0, time.perf_counter(), CALL_GRACE + START_GRACE
        exercise_since = math.inf  # the worker's start is not its first exercise's: START_GRACE bounds it
        while not self._done.wait(0.1):
            now = time.perf_counter()
            if i == 0 and grace > CALL_GRACE and (self.outbox / "ready").exists():  # the worker has started
                since, grace, exercise_since = now, CALL_GRACE, now
            while i < len(self.calls) and (self.outbox / f"{self.calls[i][0]}.json").exists():
                i, since, grace = i + 1, now, CALL_GRACE
                if i < len(self.calls) and (self.calls[i][2] != self.calls[i - 1][2] or exercise_since > now):
                    exercise_since = now
            if i == len(self.calls):
                return
            stem, timeout, exercise = self.calls[i]
            if not self.killed and now > self.deadline:
                self.killed = "budget"
            elif not self.killed and now - since > timeout + grace:
                self.killed = "timeout"
            elif not self.killed and now - exercise_since > self.shares[exercise]:
                self.killed = "share"
            if self.killed:  # again at every tick: the run may not have started yet
                self._kill()

    def _kill(self) -> None:
        import psutil

        for child in psutil.Process().children():  # the run's first process names our folders
            try:
                if str(self.inbox) in " ".join(child.cmdline()):
                    sandbox.kill_tree(child.pid)
            except psutil.Error:
                pass

    def stop(self) -> None:
        self._done.set()
        self.join()


# ----------------------------------------------------------------------------------------------
# The judge's folder
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def box(workdir: Path | None = None) -> Iterator[Path]:
    """A private folder for one judgement (under ``workdir``, default the temp folder), removed after."""
    path = Path(tempfile.mkdtemp(prefix="labkit-judge-", dir=workdir))
    try:
        yield path
    finally:
        _remove(path)


def _remove(box: Path) -> None:
    """Delete the judge's folder, whatever the student left in it (shutil.rmtree recurses: a deep
    enough tree of folders would raise RecursionError)."""
    try:
        shutil.rmtree(box, ignore_errors=True)
    except RecursionError:
        import subprocess

        subprocess.run(["rm", "-rf", "--", str(box)], check=False)


def prepare(
    box: Path, labkit_dir: Path, module: str, source: str, request: list[dict], store: worker.Store, threads: int
) -> None:
    """Fill ``box``: ``pkg/labkit`` (a copy of ``labkit_dir`` whose ``<module>.py`` is ``source``, if
    any: else the release's stub), and ``in/`` (the worker, ``request.json`` and ``arrays.npz``)."""
    inbox, pkg = box / "in", box / "pkg"
    inbox.mkdir()
    shutil.copytree(labkit_dir, pkg / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if source:
        (pkg / "labkit" / f"{module}.py").write_text(source, encoding="utf-8")
    shutil.copy(Path(worker.__file__), inbox / "worker.py")
    (inbox / "request.json").write_text(json.dumps({"module": module, "cases": request, "threads": threads}))
    store.save(str(inbox / "arrays.npz"))


# ----------------------------------------------------------------------------------------------
# Running the worker
# ----------------------------------------------------------------------------------------------
@dataclass
class Runs:
    """What the worker's runs left: ``ran`` maps a case's index to the folder its results are in and
    why the run that was to produce them was stopped ("" | "timeout" | "share" | "budget" | "memory" |
    "processes"); the rest is the last run's."""

    ran: dict[int, tuple[Path, str]]
    returncode: int | None
    stopped: str
    log_tail: str

    @property
    def over_budget(self) -> bool:
        return any(why == "budget" for _, why in self.ran.values())

    def error(self) -> str:
        """What the last run's log says of an error it ended with ("" if it ended well or was stopped)."""
        if self.returncode in (0, None) or self.stopped:
            return ""
        if self.log_tail.strip():
            return "the judge's worker ended with an error: " + self.log_tail.strip().splitlines()[-1][:300]
        return f"the judge's worker ended with code {self.returncode}"


@dataclass(frozen=True)
class _Job:
    """What every run of one submission's worker shares."""

    box: Path
    request: list[dict]
    shares: dict[str, float]
    deadline: float
    limits: sandbox.Limits
    backend: str  # sandbox.check_mode's: "" runs the same script on the host's paths
    env: dict[str, str]


def run_worker(
    box: Path, request: list[dict], shares: dict[str, float], deadline: float, *, limits, backend: str, notes: list
) -> Runs:
    """Run the worker on ``request`` (prepared in ``box``) until every case has had its run or the
    ``deadline`` (perf_counter) has passed; the sandbox's notes are added to ``notes``."""
    job = _Job(box, request, shares, deadline, limits, backend, _env(limits.threads or 1))
    ran: dict[int, tuple[Path, str]] = {}
    start_case, log_tail, run, stopped = 0, "", None, ""
    for attempt in range(len(shares) + 1):  # one run, and one more per exercise a lost call may cost
        # each run writes to a fresh folder: nothing a killed run left there is read or walked
        outbox = box / f"out{attempt}"
        outbox.mkdir()
        run, stopped = _run_from(job, start_case, outbox)
        notes += [n for n in run.notes if n not in notes]
        log_tail = _tail(box / "worker.log")
        ran.update({c: (outbox, stopped) for c in range(start_case, len(request))})
        missing = _first_missing(request, start_case, outbox)
        if missing is None or stopped == "budget":
            break
        start_case = _next_exercise(request, missing)
        if start_case >= len(request):
            break
        if time.perf_counter() > deadline:  # no time for another run: the rest is over budget
            ran.update({c: (outbox, "budget") for c in range(start_case, len(request))})
            break
    return Runs(ran, run.returncode, stopped, log_tail)


def _run_from(job: _Job, start_case: int, outbox: Path) -> tuple[sandbox.Run, str]:
    """One run of the worker, cases ``start_case`` on, results to ``outbox``; and why it was stopped."""
    inbox, pkg = job.box / "in", job.box / "pkg"
    mounts = [
        sandbox.Mount(inbox, INSIDE / "in"),
        sandbox.Mount(outbox, INSIDE / "out", writable=True),
        sandbox.Mount(pkg, INSIDE / "pkg"),
    ]
    where, out = (INSIDE, INSIDE / "out") if job.backend else (job.box, outbox)  # unsandboxed: the host's paths
    argv = [sys.executable, "-S", "-E", "-B", str(where / "in" / "worker.py"), str(where / "in"), str(out)]
    argv += [str(start_case), *_python_paths(), str(where / "pkg")]
    calls = [
        (f"{c}_{k}", float(call["timeout"]), job.request[c]["exercise"])
        for c in range(start_case, len(job.request))
        for k, call in enumerate(job.request[c]["calls"])
    ]
    clock = Clock(inbox, outbox, calls, job.shares, job.deadline)
    clock.start()
    try:
        run = sandbox.run(
            argv,
            limits=job.limits,
            mounts=mounts,
            env=job.env,
            cwd=out,
            output=job.box / "worker.log",
            sandbox=job.backend,
            writable=[outbox],
        )
    except sandbox.SandboxUnavailable:
        if not clock.killed:  # the sandbox failed on its own: the harness's fault, not the student's
            raise
        run = sandbox.Run(-9, 0.0)  # the clock stopped it before the sandbox had started it
    finally:
        clock.stop()
    return run, clock.killed or run.killed


def _python_paths() -> list[str]:
    """This environment's stdlib and site-packages: all the worker may import besides the package."""
    site = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    stdlib = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]
    return [*stdlib, *site]


def _env(threads: int) -> dict[str, str]:
    """The worker's whole environment."""
    from labkit_course.notebooks import thread_env

    return {
        "HOME": "/tmp",
        "LABKIT_OFFLINE": "1",
        "MPLBACKEND": "agg",
        "PYTHONHASHSEED": "0",
        "TQDM_DISABLE": "1",
        **thread_env(threads),
    }


def _first_missing(request: list[dict], start_case: int, outbox: Path) -> int | None:
    """The first case, from ``start_case`` on, with a call that left no result in ``outbox``."""
    return next(
        (
            c
            for c in range(start_case, len(request))
            for k in range(len(request[c]["calls"]))
            if not (outbox / f"{c}_{k}.json").exists()
        ),
        None,
    )


def _next_exercise(request: list[dict], case: int) -> int:
    """The first case after ``case`` that belongs to another exercise (``len(request)`` if none)."""
    lost = request[case]["exercise"]
    return next((c for c in range(case, len(request)) if request[c]["exercise"] != lost), len(request))


def _tail(path: Path, size: int = 2000) -> str:
    """The last ``size`` bytes of a log, read without reading the rest."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read(size).decode(errors="replace")
    except OSError:
        return ""
