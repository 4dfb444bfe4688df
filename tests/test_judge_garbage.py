"""No garbage passes the judge: every exercise of every lab fails on NaN, zeros, all-True, extreme ints,
random numbers, the input itself and the stub, shaped exactly like the expected result.

The garbage goes through the real trusted path, without the sandbox: the worker's codec (``encode``,
JSON, ``decode_result``), then the judge's verdict on an exercise (:func:`labkit_course.judge.verdicts.judge_exercise`:
the reference, :func:`compare` or the case's own ``check``), on the hidden cases of one seed. The
reference's own results, through the same path, pass (so a failure above is the garbage's).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from labkit.labs import MODULES
from labkit_course.judge import hidden_tests, reference, worker
from labkit_course.judge.cases import encode_call as _encode_call
from labkit_course.judge.verdicts import judge_exercise as _judge_exercise
from labkit_course.judge.verdicts import reference_results as _reference_results

SEED = 3
KINDS = ("random", "zeros", "nan", "all_true", "extreme", "huge_int", "input", "stub", "wrong_shape", "wrong_dtype")


def _garbage(kind: str, expected, inputs: list, rng: np.random.Generator):
    """A value shaped like ``expected`` (a decoded reference result), with ``kind``'s contents; or, for
    ``wrong_shape``/``wrong_dtype``, the expected values themselves in the wrong form."""
    if kind == "stub":
        return NotImplementedError("fake is not implemented yet: fill in the body")
    if kind == "huge_int":
        return 10**400
    if isinstance(expected, np.ndarray):
        if kind == "wrong_shape":
            return expected[None]
        if kind == "wrong_dtype":  # booleans as numbers, numbers as complex numbers
            return expected.astype(np.float64 if expected.dtype.kind == "b" else np.complex128)
        if kind == "input":
            same = [x for x in inputs if isinstance(x, np.ndarray) and x.shape == expected.shape]
            return same[0] if same else (inputs[0] if inputs else expected * 0)
        if kind == "all_true":
            return np.ones(expected.shape, dtype=bool)
        if kind == "zeros":
            return np.zeros_like(expected)
        if kind == "nan":
            return np.full(expected.shape, np.nan)
        if kind == "extreme":
            return np.full(expected.shape, np.iinfo(np.int64).max)
        return rng.random(expected.shape).astype(expected.dtype if expected.dtype.kind == "f" else np.float64)
    if isinstance(expected, (bool, int, float)):
        if kind == "wrong_shape":
            return [expected]
        if kind == "wrong_dtype":
            return str(expected)
        if kind == "input":
            return inputs[0] if inputs else 0
        return {"all_true": True, "zeros": 0.0, "nan": float("nan"), "extreme": 10**400}.get(kind, float(rng.random()))
    if isinstance(expected, (list, tuple)):
        return type(expected)(_garbage(kind, e, inputs, rng) for e in expected)
    if isinstance(expected, pd.DataFrame):
        if kind == "wrong_shape":
            return expected.iloc[:-1] if len(expected) else expected.assign(extra=0)
        if kind == "input":
            frames = [x for x in inputs if isinstance(x, pd.DataFrame)]
            return frames[0] if frames else inputs[0]
        frame = expected.copy()
        for column in frame.columns:
            values = np.asarray(frame[column])
            if values.dtype.kind in "biuf":
                frame[column] = _garbage(kind, values, inputs, rng)
        return frame
    if isinstance(expected, dict) and expected.get("$") == "module":
        import torch

        if kind == "input":
            return inputs[0]
        model = torch.nn.Module()  # the expected parameters, garbage values
        for key, value in expected["state"].items():
            model.register_buffer(key.replace(".", "_"), torch.as_tensor(_garbage(kind, value, inputs, rng)))
        return model
    if isinstance(expected, dict) and expected.get("$") == "raised":
        return _garbage(kind, np.zeros(3), inputs, rng)  # a value where an exception is due
    return expected


def _through_codec(value):
    """``value`` as the judge reads it back from a worker: encoded, JSON, decoded as data."""
    store = worker.Store()
    encoded = json.loads(json.dumps(worker.encode(value, store), allow_nan=True, default=str))
    return worker.decode_result(encoded, {k: np.asarray(v) for k, v in store.arrays.items()}, worker.Budget(2**30))


@pytest.fixture(scope="module", params=MODULES)
def lab(request):
    """One lab's cases for SEED, encoded as the judge encodes them, and the reference's results."""
    module = request.param
    hidden, ref = hidden_tests(module), reference(module)
    rng, store = random.Random(SEED), worker.Store()
    exercises = []
    for name in hidden.EXERCISES:
        cases = getattr(hidden, name)(random.Random(rng.getrandbits(64)))
        encoded = [{"exercise": name, "calls": [_encode_call(c, name, store) for c in case.calls]} for case in cases]
        expected = [_reference_results(ref, e, store.arrays) for e in encoded]
        exercises.append((name, cases, encoded, expected))
    return module, ref, store, exercises


def _inputs(call: dict, arrays: dict) -> list:
    """A call's positional arguments as a student would return them: arrays, models as state_dicts."""
    from labkit_course.judge.cases import decode_call as _decode_call

    args, _ = _decode_call(call, arrays)
    return [_through_codec(a) for a in args]


def _verdict(lab, name, cases, encoded, results):
    module, ref, store, _ = lab
    notes: list[str] = []

    def read(c, k):
        return results[c][k]

    verdict = _judge_exercise(name, cases, encoded, store.arrays, ref, read, notes)
    assert notes == [], notes  # every garbage result was a Mismatch, never an error of the judge
    return verdict


def test_the_reference_s_own_results_pass(lab):
    for name, cases, encoded, expected in lab[3]:
        results = [[_through_codec(e) if not _is_raised(e) else e for e in case] for case in expected]
        verdict = _verdict(lab, name, cases, encoded, results)
        assert verdict.passed, verdict.message


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_scores_zero_on_every_exercise(lab, kind):
    rng = np.random.default_rng(0)
    for name, cases, encoded, expected in lab[3]:
        results = []
        for case_calls, case_expected in zip(encoded, expected):
            row = []
            for call, e in zip(case_calls["calls"], case_expected):
                value = _garbage(kind, e, _inputs(call, lab[2].arrays), rng)
                row.append(_read_back(value))
            results.append(row)
        verdict = _verdict(lab, name, cases, encoded, results)
        assert not verdict.passed, f"{lab[0]}.{name} passed on {kind} garbage"


def _is_raised(value) -> bool:
    return isinstance(value, dict) and value.get("$") == "raised"


def _read_back(value):
    """What the judge's result reader makes of a value the worker returned (exceptions included)."""
    from labkit_course.judge import Mismatch
    from labkit_course.judge.verdicts import Failed as _Failed

    if isinstance(value, BaseException):
        raised = worker.raised(value)
        if "NotImplementedError" in raised["types"] and "not implemented yet" in raised["message"]:
            return _Failed(Mismatch("not implemented", "it is not implemented yet"))
        return raised
    return _through_codec(value)
