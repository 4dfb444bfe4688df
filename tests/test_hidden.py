"""The hidden tests of every lab (labkit_course/hidden/<module>.py), judged for real.

For each lab and two seeds the judge runs the reference (solutions/labkit/<module>.py) in the
bubblewrap sandbox, which must pass every exercise, and the committed stub (labkit/<module>.py),
which must be "not implemented" everywhere. Fast checks (no sandbox) make sure the hidden cases
cover exactly the public checks' exercises and do not depend on torch's global RNG.
"""

import importlib
import json
import random

import numpy as np
import pytest
import torch

from labkit.labs import MODULES as LABS
from labkit_course import sandbox
from labkit_course.judge import hidden_tests, judge, worker
from labkit_course.judge.cases import encode_call as _encode_call
from labkit_course.repo import REPO, SOLUTIONS


def exercises_of(module: str) -> list[str]:
    """The exercises of a lab, from its public checks (``labkit.check.<module>.EXERCISES``)."""
    return [ex.name for ex in importlib.import_module(f"labkit.check.{module}").EXERCISES]


SEEDS = [1, 12345]
LIMITS = sandbox.Limits(wall_timeout=600, memory_mb=4096, threads=1)

needs_bwrap = pytest.mark.skipif(
    sandbox.bwrap() is None,
    reason=(
        "bubblewrap (bwrap) is missing or not working: the judge's sandbox cannot run here (apt-get install bubblewrap)"
    ),
)


@pytest.mark.parametrize("module", LABS)
def test_hidden_tests_cover_the_public_exercises(module):
    hidden = hidden_tests(module)
    assert list(hidden.EXERCISES) == exercises_of(module)
    for name in hidden.EXERCISES:
        assert callable(getattr(hidden, name)), name


def _drawn(module: str, seed: int) -> list:
    """The encoded cases of a seed: the request the sandbox would get, arrays included."""
    hidden = hidden_tests(module)
    rng = random.Random(seed)
    store = worker.Store()
    request = []
    for name in hidden.EXERCISES:
        for case in getattr(hidden, name)(random.Random(rng.getrandbits(64))):
            request.append([case.describe, [_encode_call(c, name, store) for c in case.calls]])
    return [json.dumps(request, sort_keys=True), {k: np.asarray(v) for k, v in store.arrays.items()}]


@pytest.mark.parametrize("module", LABS)
def test_cases_depend_on_the_seed_only(module):
    torch.manual_seed(0)
    np.random.seed(0)
    first = _drawn(module, 7)
    torch.manual_seed(1)
    np.random.seed(1)
    torch.rand(5)
    second = _drawn(module, 7)
    assert first[0] == second[0]
    assert first[1].keys() == second[1].keys()
    assert all(np.array_equal(first[1][k], second[1][k]) for k in first[1])
    assert _drawn(module, 8)[0] != first[0], "another seed should draw other cases"


def _judge(exercises_dir, module, seed, workdir):
    """The sandboxed verdict on ``exercises_dir/<module>.py`` (the rest of labkit is the student's package)."""
    return judge(
        module, exercises_dir / f"{module}.py", seed, labkit_dir=REPO / "labkit", limits=LIMITS, workdir=workdir
    )


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module", LABS)
def test_reference_passes_every_hidden_case(module, seed, tmp_path):
    verdict = _judge(SOLUTIONS / "labkit", module, seed, tmp_path)
    assert verdict.sandboxed
    assert list(verdict.verdicts) == exercises_of(module)
    failed = [v.message for v in verdict.verdicts.values() if not v.passed]
    assert not failed, failed
    assert all(v.cases >= 3 for v in verdict.verdicts.values())
    assert verdict.flags == []


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module", LABS)
def test_stub_is_not_implemented(module, seed, tmp_path):
    verdict = _judge(REPO / "labkit", module, seed, tmp_path)
    assert list(verdict.verdicts) == exercises_of(module)
    for v in verdict.verdicts.values():
        assert not v.passed and v.failure == "not implemented", v.message
        assert v.message == f"{v.exercise}: not implemented yet"
