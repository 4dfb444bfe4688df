"""Steps 4 and 5 of the judge: read the results, compute the expected ones, give each exercise a verdict.

* :func:`read_result`: one call's result files, decoded as data only (no result names code to
  run), within byte limits per call and per submission; a call that left no value is a
  :class:`Failed` (not implemented, a crash, a timeout: why its run was stopped).
* :func:`reference_results`: the reference's results on the same inputs, computed here, in this
  process, which never imports the student's code (one thread, under a lock: reference code and
  toy factories use torch's global RNG).
* :func:`judge_exercise`: each case compared (:func:`~labkit_course.judge.compare.compare`, or the
  case's own ``check``); the first failure names the failed property (shape, range, value,
  timeout, crash) in the :class:`Verdict`'s message, without showing the inputs' code or the
  reference. Whatever goes wrong while judging an exercise is that exercise's failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labkit_course.judge import worker
from labkit_course.judge.cases import Case, decode_call
from labkit_course.judge.compare import Mismatch, compare, first_line
from labkit_course.judge.run import Runs

MAX_RESULT_JSON = 2 * 2**20  # JSON of one call's result
MAX_RESULT_BYTES = 64 * 2**20  # one call's result: JSON plus every array it references, counted per reference
MAX_DECODED_BYTES = 256 * 2**20  # all the results of one submission


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


_REFERENCE_LOCK = threading.Lock()  # reference code and toy factories use torch's global RNG


def judge_all(cases: dict[str, list[Case]], request: list[dict], arrays: dict, ref, runs: Runs, notes: list):
    """Every exercise's :class:`Verdict` (a dict in ``cases``' order), from the results ``runs`` left;
    all the results read count against one budget of :data:`MAX_DECODED_BYTES`."""
    total = worker.Budget(MAX_DECODED_BYTES)
    verdicts, index = {}, 0
    for name, exercise_cases in cases.items():
        verdicts[name] = judge_exercise(
            name,
            exercise_cases,
            request[index : index + len(exercise_cases)],
            arrays,
            ref,
            lambda c, k, first=index: read_result(*runs.ran[first + c], first + c, k, total),
            notes,
        )
        index += len(exercise_cases)
    return verdicts


def judge_exercise(
    name: str, cases: list[Case], request_cases: list[dict], arrays: dict, ref, read: Callable, notes: list[str]
) -> Verdict:
    """The verdict on one exercise: ``read(case, call)`` gives a decoded student result (or a
    :class:`Failed`); the reference ``ref`` (or a case's ``check``) judges it. Nothing a result holds
    makes this raise: an unexpected error is that case's failure, and a note for the instructor."""
    passed, failure = 0, None
    for i, case in enumerate(cases):
        try:
            results = [read(i, k) for k in range(len(case.calls))]
            _unwrap_failures(results)  # a call without a value fails the case: no reference needed
            expected = reference_results(ref, request_cases[i], arrays) if case.reference else None
            if case.check is not None:
                with _REFERENCE_LOCK:
                    decoded_calls = [decode_call(call, arrays) for call in request_cases[i]["calls"]]
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


class Failed(Exception):
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


def read_result(outbox: Path, stopped: str, c: int, k: int, total: worker.Budget):
    """One call's result as the judge sees it: a decoded value, or a :class:`Failed` for no value.
    Its bytes count against ``total``, the submission's; a result over the limits is a failure."""
    stem = outbox / f"{c}_{k}"
    call = worker.Budget(min(MAX_RESULT_BYTES, total.limit - total.used))
    too_large = Failed(
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
        return Failed(Mismatch(kind, why))
    except worker.TooLarge:
        return too_large
    except Exception as exc:  # noqa: BLE001 -- a forged or broken result file
        return Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))
    if not isinstance(result, dict):
        return Failed(Mismatch("crash", "its result could not be read"))
    if result.get("timeout"):
        if result.get("not_run"):
            return Failed(Mismatch("timeout", "not run: an earlier call of this exercise took too long"))
        return Failed(Mismatch(*_STOPPED["timeout"]))
    try:
        if "raised" in result:
            raised = worker.decode_result({**result["raised"], "$": "raised"}, {})
            if "NotImplementedError" in raised["types"] and "not implemented yet" in raised["message"]:
                return Failed(Mismatch("not implemented", "it is not implemented yet"))
            if result.get("import_error"):
                return Failed(
                    Mismatch("crash", f"the module could not be imported: {raised['types'][0]}: {first_line(raised)}")
                )
            return raised
        value = worker.decode_result(result["value"], arrays, call)
    except worker.TooLarge:
        return too_large
    except Exception as exc:  # noqa: BLE001
        return Failed(Mismatch("crash", f"its result could not be read ({type(exc).__name__})"))
    total.take(call.used)
    return value


def _unwrap_failures(results: list) -> None:
    """Raise the mismatch of the first call that produced no value."""
    for r in results:
        if isinstance(r, Failed):
            raise r.mismatch


def reference_results(ref, request_case: dict, arrays: dict) -> list:
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
                args, kwargs = decode_call(call, arrays)
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
