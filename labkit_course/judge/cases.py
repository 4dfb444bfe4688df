"""Step 2 of the judge: the hidden cases, what they are made of, how they are drawn and sent to the worker.

A lab's hidden tests (``labkit_course/hidden/<module>.py``) have one function per exercise,
``name(rng) -> list[Case]``; a :class:`Case` is :class:`Call` s whose results are judged together,
and a call's arguments may name public test models (:class:`Toy`) or an attribute of another
argument (:class:`Attr`), built on each side rather than sent. :func:`draw` draws every exercise's
cases from the per-student seed; :func:`encode_call` turns a call into the worker's request (plain
data, arrays in a :class:`~labkit_course.judge.worker.Store`), :func:`decode_call` turns it back into
arguments on the trusted side, for the reference and a case's own ``check``.

Hidden tests and references are loaded once, thread-safe (grading runs submissions in threads), by
:func:`labkit_course.repo.load_module`.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labkit_course.judge import worker
from labkit_course.repo import SOLUTIONS, load_module


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
    By default each call's result must equal the reference's on the same inputs
    (:func:`~labkit_course.judge.compare.compare` with ``atol`` and ``rtol``).
    ``check(results, expected, calls)`` replaces that: it gets the decoded student results, the
    reference results (None when ``reference=False``) and the decoded calls, and raises
    :class:`~labkit_course.judge.compare.Mismatch`. A check validates arrays with
    :func:`~labkit_course.judge.compare.check_form` (type, shape, dtype, NaN, range) before it reads
    their values; a case without a reference must test a property that the unchanged input, zeros or
    NaN can't have (``tests/test_judge_garbage.py``).
    """

    calls: list[Call]
    describe: str = "a random input"
    atol: float = 1e-5
    rtol: float = 1e-4
    check: Callable | None = None
    reference: bool = True


# ----------------------------------------------------------------------------------------------
# Loading the hidden tests and the reference
# ----------------------------------------------------------------------------------------------
def hidden_tests(module: str, folder: Path | None = None):
    """The hidden-test module of a lab: ``labkit_course/hidden/<module>.py``, or ``folder/<module>.py``."""
    if folder is None:
        return importlib.import_module(f"labkit_course.hidden.{module}")
    return _load_from(Path(folder), module, "labkit_hidden")


def reference(module: str, folder: Path | None = None):
    """The reference exercise module (``solutions/labkit/<module>.py``, or ``folder/<module>.py``)."""
    return _load_from(Path(folder) if folder is not None else SOLUTIONS / "labkit", module, "labkit_reference")


def _load_from(folder: Path, module: str, prefix: str):
    """``folder/<module>.py``, loaded once by :func:`labkit_course.repo.load_module` under a name that
    includes the folder's (two folders may hold modules of the same name: a course's and a test's)."""
    return load_module(folder / f"{module}.py", f"{prefix}_{module}_{abs(hash(str(folder)))}")


# ----------------------------------------------------------------------------------------------
# Drawing the cases, and the request's codec
# ----------------------------------------------------------------------------------------------
def draw(hidden, seed: int) -> dict[str, list[Case]]:
    """Every exercise's hidden cases for ``seed``, in ``hidden.EXERCISES`` order; each exercise draws
    from a generator of its own (seeded from ``seed``'s), so its cases don't depend on the others'."""
    rng = random.Random(seed)
    return {name: getattr(hidden, name)(random.Random(rng.getrandbits(64))) for name in hidden.EXERCISES}


def encode_call(call: Call, exercise: str, store: worker.Store) -> dict:
    """``call`` as the worker's request holds it (JSON; its arrays go to ``store``)."""

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


def decode_call(call: dict, arrays: dict) -> tuple[list, dict]:
    """The positional and keyword arguments of an encoded call (toys built, attributes looked up)."""
    args: list = []
    for a in call["args"]:
        args.append(worker.decode(a, arrays, args))
    return args, {k: worker.decode(v, arrays, args) for k, v in call["kwargs"].items()}
