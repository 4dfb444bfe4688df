"""The trusted judge: a student's exercise functions, run in a sandbox on random inputs, judged outside it.

Steps of :func:`judge` (one submission, one lab):

1. **Read the module, don't run it**: :func:`labkit_course.judge.static.audit` flags imports that
   could hand over an answer or reach outside (ctypes, frame inspection, the public checks, Captum...).
2. **Draw the hidden cases** from the per-student seed: ``labkit_course/hidden/<module>.py`` has one
   function per exercise, ``name(rng) -> list[Case]``.
3. **Call the student's functions in the sandbox** (:mod:`labkit_course.sandbox`): the worker
   (:mod:`labkit_course.judge.worker`) sees the inputs as data, the course's ``labkit`` package with
   the student's module in it, and nothing else; it writes back plain data only.
4. **Compute the expected results here**, from the same cases, with the reference implementation
   (``solutions/labkit/<module>.py``) or a case's own closed form, in this process, which never
   imports the student's code.
5. **Compare** (:func:`compare`, or a case's own ``check``), and give each exercise a
   :class:`Verdict` whose message names the failed property (shape, range, value, timeout, crash)
   without showing the inputs' code or the reference.

Nothing the submission does makes :func:`judge` raise or cost without bound: this process stops
the worker when a call outlives its timeout and when the submission's time budget is spent (the
worker's own timer is in the student's process), reads results as data only (no result names code
to run) within byte limits per call and per submission, and turns whatever goes wrong while judging
an exercise into that exercise's failure. Hidden tests and references are loaded once, under a lock.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labkit_course import sandbox
from labkit_course.judge import worker
from labkit_course.judge.compare import Mismatch, _first_line, check_form, compare
from labkit_course.judge.static import audit
from labkit_course.repo import load_module

__all__ = [
    "Attr",
    "Call",
    "Case",
    "Judgement",
    "Mismatch",
    "Toy",
    "Verdict",
    "as_expected",
    "check_form",
    "compare",
    "hidden_tests",
    "judge",
    "reference",
]


# ----------------------------------------------------------------------------------------------
# What hidden tests are made of
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Toy:
    """A public test model, built by name on each side: ``Toy("labkit.check.saliency:tiny_cnn", seed=3)``."""

    factory: str
    kwargs: dict = field(default_factory=dict)

    def __init__(self, factory: str, **kwargs):
        object.__setattr__(self, "factory", factory)
        object.__setattr__(self, "kwargs", kwargs)


@dataclass(frozen=True)
class Attr:
    """An attribute of the call's positional argument ``arg``: ``Attr(0, "conv2")`` is the model's layer."""

    arg: int
    path: str


@dataclass
class Call:
    """One call of an exercise function. ``function`` defaults to the exercise being judged.

    ``patch`` replaces labkit attributes with public stand-ins during the call, on both sides:
    ``{"labkit.adversarial.pgd": "labkit.check.toys:toy_pgd"}`` judges Lab 5's use of
    Lab 2's ``pgd`` without needing the student's (or the reference) Lab 2 in the sandbox."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    function: str | None = None
    timeout: float = 60.0
    patch: dict = field(default_factory=dict)

    @classmethod
    def of(cls, *args, **kwargs) -> Call:
        return cls(args, kwargs)


@dataclass
class Case:
    """Calls whose results are judged together.

    ``describe`` says what the inputs are, in words a student may read ("4 images, 5x5, targeted").
    By default each call's result must equal the reference's on the same inputs (:func:`compare`
    with ``atol`` and ``rtol``). ``check(results, expected, calls)`` replaces that: it gets the
    decoded student results, the reference results (None when ``reference=False``) and the decoded
    calls, and raises :class:`Mismatch`. A check validates arrays with :func:`check_form` (type,
    shape, dtype, NaN, range) before it reads their values; a case without a reference must test a
    property that the unchanged input, zeros or NaN can't have (``tests/test_judge_garbage.py``).
    """

    calls: list[Call]
    describe: str = "a random input"
    atol: float = 1e-5
    rtol: float = 1e-4
    check: Callable | None = None
    reference: bool = True


@dataclass
class Verdict:
    """The judge's word on one exercise."""

    exercise: str
    passed: bool
    cases_passed: int
    cases: int
    failure: str = ""  # kind of the first failure: not implemented | crash | timeout | shape | type | range | value
    message: str = ""  # for the student


@dataclass
class Judgement:
    """The judge's word on one submission."""

    verdicts: dict[str, Verdict]
    flags: list[str]
    notes: list[str]
    seconds: float
    sandboxed: bool


def as_expected(value):
    """A reference result in the form a decoded student result takes (numbers, not tensors)."""
    store = worker.Store()
    encoded = worker.encode(value, store)
    return worker.decode_result(encoded, store.arrays)


# ----------------------------------------------------------------------------------------------
# Loading the hidden tests and the reference (once, thread-safe: grading runs submissions in threads)
# ----------------------------------------------------------------------------------------------
def hidden_tests(module: str, folder: Path | None = None):
    """The hidden-test module of a lab: ``labkit_course/hidden/<module>.py``, or ``folder/<module>.py``."""
    if folder is None:
        import importlib

        return importlib.import_module(f"labkit_course.hidden.{module}")
    return load_module(Path(folder) / f"{module}.py", f"labkit_hidden_{module}_{abs(hash(str(folder)))}")


def reference(module: str, folder: Path | None = None):
    """The reference exercise module (``solutions/labkit/<module>.py``, or ``folder/<module>.py``)."""
    from labkit_course.repo import SOLUTIONS

    folder = Path(folder) if folder is not None else SOLUTIONS / "labkit"
    return load_module(folder / f"{module}.py", f"labkit_reference_{module}_{abs(hash(str(folder)))}")


_REFERENCE_LOCK = threading.Lock()  # reference code and toy factories use torch's global RNG


def _decode_call(call: dict, arrays: dict):
    args: list = []
    for a in call["args"]:
        args.append(worker.decode(a, arrays, args))
    return args, {k: worker.decode(v, arrays, args) for k, v in call["kwargs"].items()}


def _encode_call(call: Call, exercise: str, store: worker.Store) -> dict:
    def enc(v):
        if isinstance(v, Toy):
            return {"$": "toy", "factory": v.factory, "kwargs": enc(v.kwargs)}
        if isinstance(v, Attr):
            return {"$": "attr", "arg": v.arg, "path": v.path}
        if isinstance(v, (list, tuple)) and any(isinstance(x, (Toy, Attr)) for x in v):
            return {"$": type(v).__name__, "items": [enc(x) for x in v]}
        if isinstance(v, dict) and any(isinstance(x, (Toy, Attr)) for x in v.values()):
            return {"$": "dict", "items": [[k, enc(x)] for k, x in v.items()]}
        return worker.encode(v, store)

    return {
        "function": call.function or exercise,
        "args": [enc(a) for a in call.args],
        "kwargs": {k: enc(v) for k, v in call.kwargs.items()},
        "timeout": call.timeout,
        "patch": call.patch,
    }


# ----------------------------------------------------------------------------------------------
# Costs, bounded by the trusted side
# ----------------------------------------------------------------------------------------------
#: the worker runs of one submission (their starts included) may take this many times the sum, over
#: its exercises, of the exercise's longest per-call timeout; each exercise gets its part of that (its
#: longest timeout x this, the worker's start not included), and fails as a timeout past it. Below
#: 1.5: a submission that loops in every exercise costs the judge at most 1.5 x that sum, the verdicts
#: included. Honest submissions take a few percent of it (the references of the 5 labs: 3 to 16 s of
#: 336 to 588 s, on 2 busy cores).
BUDGET_FACTOR = 1.4
CALL_GRACE = 2.0  # seconds past a call's timeout before the judge kills the worker (its own timer fires first)
START_GRACE = 30.0  # seconds for a run to start (Python, numpy, torch, the module) before its first call's clock
MAX_SOURCE_BYTES = 2 * 2**20  # a larger exercise module is not judged
MAX_RESULT_JSON = 2 * 2**20  # JSON of one call's result
MAX_RESULT_BYTES = 64 * 2**20  # one call's result: JSON plus every array it references, counted per reference
MAX_DECODED_BYTES = 256 * 2**20  # all the results of one submission


class _Clock(threading.Thread):
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


def _tail(path: Path, size: int = 2000) -> str:
    """The last ``size`` bytes of a log, read without reading the rest."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read(size).decode(errors="replace")
    except OSError:
        return ""


def _read_source(path: Path) -> tuple[str, list[str]]:
    """The student's module (``""`` if missing or unreadable) and what the static audit says of it."""
    try:
        data = worker.open_regular(str(path), MAX_SOURCE_BYTES)
    except worker.TooLarge:
        return "", [f"the module is larger than {MAX_SOURCE_BYTES // 2**20} MB: not judged, review it by hand"]
    except (OSError, ValueError):
        return "", []
    return data.decode("utf-8", errors="replace"), []


# ----------------------------------------------------------------------------------------------
# Running a judgement
# ----------------------------------------------------------------------------------------------
def judge(
    module: str,
    student_file: Path,
    seed: int,
    *,
    labkit_dir: Path,
    hidden_dir: Path | None = None,
    reference_dir: Path | None = None,
    limits: sandbox.Limits = sandbox.Limits(wall_timeout=600),
    sandbox_mode: str = "require",
    workdir: Path | None = None,
    budget: float | None = None,
) -> Judgement:
    """Judge ``student_file`` (the student's ``labkit/<module>.py``) on the hidden cases of ``seed``.

    ``labkit_dir`` is the course's student-side ``labkit`` package (the release: stubs, helpers,
    public checks); the student's file is put in it, in a copy, and that copy is all the sandbox
    sees of the course. ``hidden_dir``/``reference_dir`` default to this package's hidden tests and
    ``solutions/labkit``. ``budget``: seconds for the sandboxed calls of the whole submission (default:
    :data:`BUDGET_FACTOR` x the sum over exercises of their longest per-call timeout), shared among
    the exercises in proportion to their longest per-call timeout (an exercise past its share fails
    as a timeout; the others keep theirs); each call is also stopped by this process past its own
    timeout. Never raises for anything the submission does:
    whatever goes wrong while judging an exercise is that exercise's failure.
    """
    start = time.perf_counter()
    sandboxed = sandbox.check_mode(sandbox_mode)
    hidden = hidden_tests(module, hidden_dir)
    ref = reference(module, reference_dir)
    names = list(hidden.EXERCISES)
    source, flags = _read_source(Path(student_file))
    flags += audit(source, module) if source else []
    notes: list[str] = []
    rng = random.Random(seed)
    cases = {name: getattr(hidden, name)(random.Random(rng.getrandbits(64))) for name in names}
    longest = {n: max((c.timeout for case in cases[n] for c in case.calls), default=0.0) for n in names}
    if budget is None:
        budget = BUDGET_FACTOR * sum(longest.values())
    deadline = start + budget
    # each exercise's share of the budget, in proportion to its longest call: one slow exercise can't
    # spend the time of the others
    shares = {n: budget * longest[n] / sum(longest.values()) if sum(longest.values()) else budget for n in names}

    box = Path(tempfile.mkdtemp(prefix="labkit-judge-", dir=workdir))
    try:
        inbox, pkg = box / "in", box / "pkg"
        inbox.mkdir()
        shutil.copytree(labkit_dir, pkg / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if source:
            (pkg / "labkit" / f"{module}.py").write_text(source, encoding="utf-8")
        shutil.copy(Path(worker.__file__), inbox / "worker.py")
        store = worker.Store()
        request_cases = [
            {"exercise": name, "calls": [_encode_call(c, name, store) for c in case.calls]}
            for name in names
            for case in cases[name]
        ]
        (inbox / "request.json").write_text(
            json.dumps({"module": module, "cases": request_cases, "threads": limits.threads or 1})
        )
        store.save(str(inbox / "arrays.npz"))

        site = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
        stdlib = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" not in p]
        inside = Path("/judge")
        if sandboxed:
            paths, where = [*stdlib, *site, str(inside / "pkg")], inside
        else:  # the same script, on the host's paths
            paths, where = [*stdlib, *site, str(pkg)], box
        from labkit_course.notebooks import thread_env

        env = {
            "HOME": "/tmp",
            "LABKIT_OFFLINE": "1",
            "MPLBACKEND": "agg",
            "PYTHONHASHSEED": "0",
            "TQDM_DISABLE": "1",
            **thread_env(limits.threads or 1),
        }
        # case index -> the folder its results are in, and why the run that was to produce them was stopped
        ran: dict[int, tuple[Path, str]] = {}
        start_case, log_tail, run, stopped = 0, "", None, ""
        for attempt in range(len(names) + 1):  # a call that kills the worker costs its exercise only
            # each run writes to a fresh folder: nothing a killed run left there is read or walked
            outbox = box / f"out{attempt}"
            outbox.mkdir()
            mounts = [
                sandbox.Mount(inbox, inside / "in"),
                sandbox.Mount(outbox, inside / "out", writable=True),
                sandbox.Mount(pkg, inside / "pkg"),
            ]
            out = inside / "out" if sandboxed else outbox
            argv = [sys.executable, "-S", "-E", "-B", str(where / "in" / "worker.py"), str(where / "in"), str(out)]
            argv += [str(start_case), *paths]
            calls = [
                (f"{c}_{k}", float(call["timeout"]), request_cases[c]["exercise"])
                for c in range(start_case, len(request_cases))
                for k, call in enumerate(request_cases[c]["calls"])
            ]
            clock = _Clock(inbox, outbox, calls, shares, deadline)
            clock.start()
            try:
                run = sandbox.run(
                    argv,
                    limits=limits,
                    mounts=mounts,
                    env=env,
                    cwd=out,
                    output=box / "worker.log",
                    sandbox=sandboxed,
                    writable=[outbox],
                )
            except sandbox.SandboxUnavailable:
                if not clock.killed:  # the sandbox failed on its own: the harness's fault, not the student's
                    raise
                run = sandbox.Run(-9, 0.0)  # the clock stopped it before the sandbox had started it
            finally:
                clock.stop()
            notes += [n for n in run.notes if n not in notes]
            log_tail = _tail(box / "worker.log")
            stopped = clock.killed or run.killed
            ran.update({c: (outbox, stopped) for c in range(start_case, len(request_cases))})
            missing = next(
                (
                    c
                    for c in range(start_case, len(request_cases))
                    for k in range(len(request_cases[c]["calls"]))
                    if not (outbox / f"{c}_{k}.json").exists()
                ),
                None,
            )
            if missing is None or stopped == "budget":
                break
            lost = request_cases[missing]["exercise"]
            start_case = next(
                (c for c in range(missing, len(request_cases)) if request_cases[c]["exercise"] != lost),
                len(request_cases),
            )
            if start_case >= len(request_cases):
                break
            if time.perf_counter() > deadline:  # no time for another run: the rest is over budget
                ran.update({c: (outbox, "budget") for c in range(start_case, len(request_cases))})
                break
        if any(why == "budget" for _, why in ran.values()):
            notes.append(f"the judge stopped the submission at its time budget of {budget:.0f} s")

        total = worker.Budget(MAX_DECODED_BYTES)
        verdicts, index = {}, 0
        for name in names:
            verdicts[name] = _judge_exercise(
                name,
                cases[name],
                request_cases[index : index + len(cases[name])],
                store.arrays,
                ref,
                lambda c, k, first=index: _read_result(*ran[first + c], first + c, k, total),
                notes,
            )
            index += len(cases[name])
        if run.returncode not in (0, None) and not stopped and any(not v.passed for v in verdicts.values()):
            notes.append(
                "the judge's worker ended with an error: " + log_tail.strip().splitlines()[-1][:300]
                if log_tail.strip()
                else f"the judge's worker ended with code {run.returncode}"
            )
        return Judgement(verdicts, flags, notes, time.perf_counter() - start, sandboxed)
    finally:
        _remove(box)


def _remove(box: Path) -> None:
    """Delete the judge's folder, whatever the student left in it (shutil.rmtree recurses: a deep
    enough tree of folders would raise RecursionError)."""
    try:
        shutil.rmtree(box, ignore_errors=True)
    except RecursionError:
        import subprocess

        subprocess.run(["rm", "-rf", "--", str(box)], check=False)


def _judge_exercise(
    name: str, cases: list[Case], request_cases: list[dict], arrays: dict, ref, read: Callable, notes: list[str]
) -> Verdict:
    """The verdict on one exercise: ``read(case, call)`` gives a decoded student result (or a
    :class:`_Failed`); the reference ``ref`` (or a case's ``check``) judges it. Nothing a result holds
    makes this raise: an unexpected error is that case's failure, and a note for the instructor."""
    passed, failure = 0, None
    for i, case in enumerate(cases):
        try:
            results = [read(i, k) for k in range(len(case.calls))]
            _unwrap_failures(results)  # a call without a value fails the case: no reference needed
            expected = _reference_results(ref, request_cases[i], arrays) if case.reference else None
            if case.check is not None:
                with _REFERENCE_LOCK:
                    decoded_calls = [_decode_call(call, arrays) for call in request_cases[i]["calls"]]
                case.check(results, expected, decoded_calls)
            else:
                for k, (r, e) in enumerate(zip(results, expected)):
                    what = "the result" if len(results) == 1 else f"the result of call {k + 1}"
                    compare(r, e, atol=case.atol, rtol=case.rtol, what=what)
            passed += 1
        except Mismatch as m:
            failure = failure or (m.kind, f"on {case.describe}: {m.detail}")
        except Exception as exc:  # noqa: BLE001 -- whatever a result makes a comparison raise
            failure = failure or ("type", f"on {case.describe}: the result is not of the form the docstring describes")
            note = f"the judge could not judge a result of {name}: {type(exc).__name__}: {str(exc)[:200]}"
            if note not in notes:
                notes.append(note)
    return _verdict(name, passed, len(cases), failure)


class _Failed(Exception):
    """A call that produced no value (timeout, crash, not implemented)."""

    def __init__(self, mismatch: Mismatch):
        self.mismatch = mismatch


_STOPPED = {
    "timeout": ("timeout", "the call took too long (the exercise's later hidden cases are not run)"),
    "share": ("timeout", "its hidden calls together took longer than the judge's time for this exercise"),
    "budget": ("timeout", "not run: the submission used up the judge's time budget"),
    "memory": ("crash", "the submission ran out of memory"),
    "processes": ("crash", "the submission started too many processes"),
}


def _read_result(outbox: Path, stopped: str, c: int, k: int, total: worker.Budget):
    """One call's result as the judge sees it: a decoded value, or a :class:`_Failed` for no value.
    Its bytes count against ``total``, the submission's; a result over the limits is a failure."""
    stem = outbox / f"{c}_{k}"
    call = worker.Budget(min(MAX_RESULT_BYTES, total.limit - total.used))
    too_large = _Failed(
        Mismatch(
            "crash",
            f"its result is larger than the judge reads ({MAX_RESULT_BYTES // 2**20} MB for a call, "
            f"{MAX_DECODED_BYTES // 2**20} MB for a submission)",
        )
    )
    try:
        text = worker.Budget(min(MAX_RESULT_JSON, call.limit))
        result = worker.load_json(str(stem.with_suffix(".json")), text)
        call.take(text.used)
        npz = stem.with_suffix(".npz")
        # the file's arrays within the call's cap; the value charges each reference to them once more
        arrays = worker.load_arrays(str(npz), worker.Budget(call.limit)) if os.path.lexists(npz) else {}
    except FileNotFoundError:
        kind, why = _STOPPED.get(stopped, ("crash", "the call never returned (the process died)"))
        return _Failed(Mismatch(kind, why))
    except worker.TooLarge:
        return too_large
    except Exception as exc:  # noqa: BLE001 -- a forged or broken result file
        return _Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))
    if not isinstance(result, dict):
        return _Failed(Mismatch("crash", "its result could not be read"))
    if result.get("timeout"):
        if result.get("not_run"):
            return _Failed(Mismatch("timeout", "not run: an earlier call of this exercise took too long"))
        return _Failed(Mismatch(*_STOPPED["timeout"]))
    try:
        if "raised" in result:
            raised = worker.decode_result({**result["raised"], "$": "raised"}, {})
            if "NotImplementedError" in raised["types"] and "not implemented yet" in raised["message"]:
                return _Failed(Mismatch("not implemented", "it is not implemented yet"))
            if result.get("import_error"):
                return _Failed(
                    Mismatch("crash", f"the module could not be imported: {raised['types'][0]}: {_first_line(raised)}")
                )
            return raised
        value = worker.decode_result(result["value"], arrays, call)
    except worker.TooLarge:
        return too_large
    except Exception as exc:  # noqa: BLE001
        return _Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))
    total.take(call.used)
    return value


def _unwrap(result):
    if isinstance(result, _Failed):
        raise result.mismatch
    return result


def _unwrap_failures(results: list) -> None:
    for r in results:
        _unwrap(r)


def _reference_results(ref, request_case: dict, arrays: dict) -> list:
    """The reference's results on a case, one thread and no progress bars (tiny inputs: extra
    threads only spin, and the grader's output is not the place for bars)."""
    import contextlib
    import io

    import torch

    out = []
    with _REFERENCE_LOCK, contextlib.redirect_stderr(io.StringIO()):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for call in request_case["calls"]:
                args, kwargs = _decode_call(call, arrays)
                try:
                    with worker.patched(call.get("patch")):
                        value = getattr(ref, call["function"])(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 -- the case expects this exception
                    value = exc
                out.append(as_expected(value))
        finally:
            torch.set_num_threads(threads)
    return out


FRIENDLY = {
    "not implemented": "not implemented yet",
    "crash": "it raised an error",
    "timeout": "it took too long",
    "shape": "wrong shape",
    "type": "wrong type",
    "range": "values out of range",
    "value": "wrong values",
}


def _verdict(name: str, passed: int, total: int, failure) -> Verdict:
    if failure is None:
        return Verdict(name, True, passed, total, "", f"{name}: all {total} hidden cases passed")
    kind, detail = failure
    if kind == "not implemented":
        return Verdict(name, False, passed, total, kind, f"{name}: not implemented yet")
    return Verdict(
        name, False, passed, total, kind, f"{name}: {passed}/{total} hidden cases passed; {FRIENDLY[kind]} {detail}"
    )
