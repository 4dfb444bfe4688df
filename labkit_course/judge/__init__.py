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
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit_course import sandbox
from labkit_course.judge import worker
from labkit_course.judge.static import audit


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


class Mismatch(AssertionError):
    """A failed hidden property: ``kind`` is what a student reads first ("shape", "value", ...)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass
class Case:
    """Calls whose results are judged together.

    ``describe`` says what the inputs are, in words a student may read ("4 images, 5x5, targeted").
    By default each call's result must equal the reference's on the same inputs (:func:`compare`
    with ``atol`` and ``rtol``). ``check(results, expected, calls)`` replaces that: it gets the
    decoded student results, the reference results (None when ``reference=False``) and the decoded
    calls, and raises :class:`Mismatch`.
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


# ----------------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------------
def _raised_names(result) -> list[str] | None:
    if isinstance(result, dict) and result.get("$") == "raised":
        return result["types"]
    return None


def compare(actual, expected, *, atol: float = 1e-5, rtol: float = 1e-4, what: str = "the result") -> None:
    """Raise :class:`Mismatch` unless the decoded student result ``actual`` matches ``expected``.

    Arrays and tensors compare by shape then values (``|a - e| <= atol + rtol |e|``); numbers the
    same way; sequences, dicts, tables and state_dicts element by element; an expected exception
    must be raised with the same class (or a subclass of it)."""
    import pandas as pd

    expected_raise = _raised_names(expected)
    actual_raise = _raised_names(actual)
    if expected_raise is not None:
        if actual_raise is None:
            raise Mismatch("value", f"{what} should raise {expected_raise[0]}, but it returned a value")
        if expected_raise[0] not in actual_raise:
            raise Mismatch("crash", f"{what} should raise {expected_raise[0]}, but raised {actual_raise[0]}")
        return
    if actual_raise is not None:
        raise Mismatch("crash", f"{what} raised {actual_raise[0]}: {_first_line(actual)}")
    if isinstance(actual, dict) and actual.get("$") == "opaque":
        raise Mismatch("type", f"{what} is a {actual['type']}, which is not what the docstring asks for")
    if _is_array(expected):
        if not _is_array(actual):
            raise Mismatch("type", f"{what} should be an array or tensor; got {_kind(actual)}")
        e, a = np.asarray(expected), np.asarray(actual)
        if a.shape != e.shape:
            raise Mismatch("shape", f"{what} has shape {tuple(a.shape)}; expected {tuple(e.shape)}")
        if e.dtype.kind == "b" or a.dtype.kind == "b":
            if not np.array_equal(a.astype(bool), e.astype(bool)):
                raise Mismatch("value", f"{what} differs from the expected values")
            return
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        if (
            e64.size
            and np.all(np.isfinite(e64))
            and e64.min() >= 0
            and e64.max() <= 1
            and a64.size
            and (np.nanmin(a64) < -atol or np.nanmax(a64) > 1 + atol)
        ):
            raise Mismatch(
                "range", f"{what} has values outside [0, 1] (from {np.nanmin(a64):.3g} to {np.nanmax(a64):.3g})"
            )
        if not np.allclose(a64, e64, atol=atol, rtol=rtol, equal_nan=True):
            diff = np.abs(a64 - e64)
            worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
            raise Mismatch("value", f"{what} differs from the expected values (largest difference {worst:.3g})")
        return
    if isinstance(expected, pd.DataFrame):
        if not isinstance(actual, pd.DataFrame):
            raise Mismatch("type", f"{what} should be a pandas DataFrame; got {_kind(actual)}")
        if actual.shape != expected.shape:
            raise Mismatch("shape", f"{what} is a table of shape {actual.shape}; expected {expected.shape}")
        if list(map(str, actual.columns)) != list(map(str, expected.columns)):
            raise Mismatch("value", f"{what} has columns {list(actual.columns)}; expected {list(expected.columns)}")
        compare(list(actual.index), list(expected.index), atol=atol, rtol=rtol, what=f"the index of {what}")
        if actual.index.name != expected.index.name:
            raise Mismatch(
                "value", f"the index of {what} is named {actual.index.name!r}; expected {expected.index.name!r}"
            )
        for i, column in enumerate(expected.columns):
            compare(
                _values(actual.iloc[:, i]),
                _values(expected.iloc[:, i]),
                atol=atol,
                rtol=rtol,
                what=f"column {column!r} of {what}",
            )
        return
    if isinstance(expected, dict) and expected.get("$") == "module":
        if not (isinstance(actual, dict) and actual.get("$") == "module"):
            raise Mismatch("type", f"{what} should be a torch.nn.Module; got {_kind(actual)}")
        if set(actual["state"]) != set(expected["state"]):
            raise Mismatch("value", f"{what} has other parameters than expected")
        for key, value in expected["state"].items():
            compare(actual["state"][key], value, atol=atol, rtol=rtol, what=f"parameter {key!r} of {what}")
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            raise Mismatch("type", f"{what} should be a sequence of {len(expected)}; got {_kind(actual)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            compare(a, e, atol=atol, rtol=rtol, what=f"item {i} of {what}")
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(map(repr, actual)) != set(map(repr, expected)):
            raise Mismatch("value", f"{what} should have the keys {sorted(map(repr, expected))}")
        for k, e in expected.items():
            compare(actual[k], e, atol=atol, rtol=rtol, what=f"{what}[{k!r}]")
        return
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if actual != expected or type(actual) is not type(expected):
            raise Mismatch("value", f"{what} is {_short(actual)}; expected {_short(expected)}")
        return
    if isinstance(expected, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            if _is_array(actual) and np.asarray(actual).size == 1:
                actual = np.asarray(actual).item()
            else:
                raise Mismatch("type", f"{what} should be a number; got {_kind(actual)}")
        if not (
            math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol) or (math.isnan(expected) and math.isnan(actual))
        ):
            raise Mismatch("value", f"{what} is {actual:.6g}; expected {expected:.6g}")
        return
    raise TypeError(f"the judge cannot compare a {type(expected).__name__}")


def _values(column) -> list | np.ndarray:
    array = np.asarray(column)
    return array if array.dtype.kind in "biuf" else [v.item() if isinstance(v, np.generic) else v for v in array]


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch") and hasattr(x, "shape")


def _kind(x) -> str:
    if isinstance(x, dict) and "$" in x:
        return x.get("type", x["$"])
    return type(x).__name__


def _short(x) -> str:
    text = repr(x)
    return text if len(text) < 60 else text[:57] + "..."


def _first_line(raised: dict) -> str:
    return (raised.get("message") or "").strip().splitlines()[0][:200] if raised.get("message") else ""


def as_expected(value):
    """A reference result in the form a decoded student result takes (numbers, not tensors)."""
    store = worker.Store()
    encoded = worker.encode(value, store)
    return worker.decode(encoded, store.arrays, torch_tensors=False)


# ----------------------------------------------------------------------------------------------
# Running a judgement
# ----------------------------------------------------------------------------------------------
def _load(path: Path, name: str):
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def hidden_tests(module: str, folder: Path | None = None):
    """The hidden-test module of a lab: ``labkit_course/hidden/<module>.py``, or ``folder/<module>.py``."""
    if folder is None:
        import importlib

        return importlib.import_module(f"labkit_course.hidden.{module}")
    return _load(Path(folder) / f"{module}.py", f"labkit_hidden_{module}_{abs(hash(str(folder)))}")


def reference(module: str, folder: Path | None = None):
    """The reference exercise module (``solutions/labkit/<module>.py``, or ``folder/<module>.py``)."""
    from labkit_course.repo import SOLUTIONS

    folder = Path(folder) if folder is not None else SOLUTIONS / "labkit"
    return _load(folder / f"{module}.py", f"labkit_reference_{module}_{abs(hash(str(folder)))}")


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
) -> Judgement:
    """Judge ``student_file`` (the student's ``labkit/<module>.py``) on the hidden cases of ``seed``.

    ``labkit_dir`` is the course's student-side ``labkit`` package (the release: stubs, helpers,
    public checks); the student's file is put in it, in a copy, and that copy is all the sandbox
    sees of the course. ``hidden_dir``/``reference_dir`` default to this package's hidden tests and
    ``solutions/labkit``. Never raises for anything the submission does.
    """
    start = time.perf_counter()
    sandboxed = sandbox.check_mode(sandbox_mode)
    hidden = hidden_tests(module, hidden_dir)
    names = list(hidden.EXERCISES)
    student_file = Path(student_file)
    source = student_file.read_text(encoding="utf-8", errors="replace") if student_file.is_file() else ""
    flags = audit(source, module) if source else []
    notes: list[str] = []
    rng = random.Random(seed)
    cases = {name: getattr(hidden, name)(random.Random(rng.getrandbits(64))) for name in names}

    box = Path(tempfile.mkdtemp(prefix="labkit-judge-", dir=workdir))
    try:
        inbox, outbox, pkg = box / "in", box / "out", box / "pkg"
        inbox.mkdir()
        outbox.mkdir()
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
        mounts = [
            sandbox.Mount(inbox, inside / "in"),
            sandbox.Mount(outbox, inside / "out", writable=True),
            sandbox.Mount(pkg, inside / "pkg"),
        ]
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
        runs: dict[int, sandbox.Run] = {}  # case index -> the run that was to produce it
        start_case, log_tail = 0, ""
        for _ in range(len(names) + 1):  # a call that kills the worker costs its exercise only
            argv = [
                sys.executable,
                "-S",
                "-E",
                "-B",
                str(where / "in" / "worker.py"),
                str(where / "in"),
                str(where / "out"),
                str(start_case),
                *paths,
            ]
            run = sandbox.run(
                argv,
                limits=limits,
                mounts=mounts,
                env=env,
                cwd=where / "out" if sandboxed else outbox,
                output=box / "worker.log",
                sandbox=sandboxed,
                writable=[outbox],
            )
            notes += [n for n in run.notes if n not in notes]
            log_tail = (box / "worker.log").read_bytes()[-2000:].decode(errors="replace")
            runs.update({c: run for c in range(start_case, len(request_cases))})
            missing = next(
                (
                    c
                    for c in range(start_case, len(request_cases))
                    for k in range(len(request_cases[c]["calls"]))
                    if not (outbox / f"{c}_{k}.json").exists()
                ),
                None,
            )
            if missing is None:
                break
            lost = request_cases[missing]["exercise"]
            start_case = next(
                (c for c in range(missing, len(request_cases)) if request_cases[c]["exercise"] != lost),
                len(request_cases),
            )
            if start_case >= len(request_cases):
                break

        verdicts = {}
        ref = None
        index = 0
        for name in names:
            passed, failure = 0, None
            for case in cases[name]:
                results, decoded_calls = [], []
                for k in range(len(case.calls)):
                    results.append(_read_result(outbox, index, k, runs[index]))
                    decoded_calls.append(_decode_call(request_cases[index]["calls"][k], store.arrays))
                try:
                    expected = None
                    if case.reference:
                        ref = ref or reference(module, reference_dir)
                        expected = _reference_results(ref, request_cases[index], store.arrays)
                    if case.check is not None:
                        _unwrap_failures(results)
                        case.check(results, expected, decoded_calls)
                    else:
                        for k, (r, e) in enumerate(zip(results, expected)):
                            what = "the result" if len(results) == 1 else f"the result of call {k + 1}"
                            compare(_unwrap(r), e, atol=case.atol, rtol=case.rtol, what=what)
                    passed += 1
                except Mismatch as m:
                    failure = failure or (m.kind, f"on {case.describe}: {m.detail}")
                index += 1
            verdicts[name] = _verdict(name, passed, len(cases[name]), failure)
        if run.returncode not in (0, None) and not run.killed and any(not v.passed for v in verdicts.values()):
            notes.append(
                "the judge's worker ended with an error: " + log_tail.strip().splitlines()[-1][:300]
                if log_tail.strip()
                else f"the judge's worker ended with code {run.returncode}"
            )
        return Judgement(verdicts, flags, notes, time.perf_counter() - start, sandboxed)
    finally:
        shutil.rmtree(box, ignore_errors=True)


class _Failed(Exception):
    """A call that produced no value (timeout, crash, not implemented)."""

    def __init__(self, mismatch: Mismatch):
        self.mismatch = mismatch


def _read_result(outbox: Path, c: int, k: int, run: sandbox.Run):
    """One call's result as the judge sees it: a decoded value, or a Mismatch for no value."""
    stem = outbox / f"{c}_{k}"
    try:
        result = worker.load_json(str(stem.with_suffix(".json")))
        arrays = worker.load_arrays(str(stem.with_suffix(".npz"))) if stem.with_suffix(".npz").exists() else {}
    except FileNotFoundError:
        why = {
            "timeout": "the submission ran out of time before this call",
            "memory": "the submission ran out of memory",
            "processes": "the submission started too many processes",
        }
        return _Failed(
            Mismatch(
                "timeout" if run.killed == "timeout" else "crash",
                why.get(run.killed, "the call never returned (the process died)"),
            )
        )
    except Exception as exc:  # noqa: BLE001 -- a forged or broken result file
        return _Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))
    if not isinstance(result, dict):
        return _Failed(Mismatch("crash", "its result could not be read"))
    if result.get("timeout"):
        if result.get("not_run"):
            return _Failed(Mismatch("timeout", "not run: an earlier call of this exercise took too long"))
        return _Failed(Mismatch("timeout", "the call took too long (the exercise's later hidden cases are not run)"))
    if "raised" in result:
        raised = result["raised"]
        if not isinstance(raised, dict) or not isinstance(raised.get("types"), list):
            return _Failed(Mismatch("crash", "its result could not be read"))
        if "NotImplementedError" in raised["types"] and "not implemented yet" in str(raised.get("message")):
            return _Failed(Mismatch("not implemented", "it is not implemented yet"))
        if result.get("import_error"):
            return _Failed(
                Mismatch("crash", f"the module could not be imported: {raised['types'][0]}: {_first_line(raised)}")
            )
        return {"$": "raised", "types": [str(t) for t in raised["types"]], "message": str(raised.get("message"))}
    try:
        return worker.decode(result["value"], arrays, torch_tensors=False)
    except Exception as exc:  # noqa: BLE001
        return _Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))


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
