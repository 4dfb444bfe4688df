"""The machinery behind ``labkit.check``: run an exercise's public checks, print PASS/FAIL.

A lab's check module declares small check functions with :func:`check` and
bundles them per exercise with :class:`Exercise`::

    @check("returns one map per image, shape (N,H,W)", hint="reduce over dim=1")
    def returns_nhw(fn):
        assert fn(model, x, 0).shape == (2, 8, 8)

    gradient_saliency = Exercise("saliency", "gradient_saliency", [returns_nhw, ...])

Students call ``check.saliency.gradient_saliency()``; pytest iterates over
``gradient_saliency.checks`` and calls each one with the implementation under
test, so the notebook and the test suite run the very same checks.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

PASS, FAIL, TODO, ERROR = "PASS", "FAIL", "TODO", "ERROR"


@contextlib.contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block (if torch is loaded; a lab without it has nothing to limit).

    The checks' tiny models are fastest that way, and several threads spin-wait for ~100x longer
    on a busy, shared CPU.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check(description: str, hint: str = "") -> Callable:
    """Decorate ``f(fn)``, a check that raises AssertionError when ``fn`` is wrong.

    The check runs under :func:`one_thread`, in the notebook as in pytest.
    """

    def decorate(f):
        @functools.wraps(f)
        def run(fn):
            with one_thread():
                return f(fn)

        run.description = description
        run.hint = hint
        return run

    return decorate


def _quiet(exc: BaseException) -> BaseException:
    """``exc``, shown in a notebook as its one-line message instead of a traceback.

    IPython (>= 7, ipykernel included) renders an exception through its ``_render_traceback_()`` when it
    has one: the cell still fails (an ``error`` output, so ``Run All`` and nbgrader stop there), but the
    student sees the sentence, not the check machinery's frames. pytest ignores it.
    """
    message = str(exc)
    exc._render_traceback_ = lambda: [message]
    return exc


@dataclass
class Report:
    """What one run of an exercise's checks found. Truthy when every check passed.

    ``assert check.lab.exercise()`` is how notebooks use it: on a report that did not pass, ``bool()``
    raises a one-line error that a notebook shows without a traceback (the report above it says
    the rest): the stub's own ``NotImplementedError`` message for an exercise not written yet, an
    ``AssertionError`` naming the exercise for one that fails. Either way the cell fails, so a
    notebook run (and nbgrader) stops exactly where the work is. Use :attr:`passed` to test a report
    without raising.
    """

    exercise: str
    results: list[tuple[str, str, str]] = field(default_factory=list)  # (status, description, detail)

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(status == PASS for status, _, _ in self.results)

    @property
    def implemented(self) -> bool:
        return not any(status == TODO for status, _, _ in self.results)

    def __bool__(self) -> bool:
        if self.passed:
            return True
        module, name = self.exercise.rsplit(".", 1)
        if not self.implemented:
            message = f"{name}() is not implemented yet: fill in its body in labkit/{module}.py"
            raise _quiet(NotImplementedError(message))
        failed = sum(status != PASS for status, _, _ in self.results)
        raise _quiet(
            AssertionError(
                f"{name}() failed {failed} of its {len(self.results)} checks: fix labkit/{module}.py (see above)"
            )
        )

    def __str__(self) -> str:
        lines = []
        for status, description, detail in self.results:
            lines.append(f"  {status:5s} {description}")
            if detail:
                lines.extend(f"        {line}" for line in detail.splitlines())
        n_ok = sum(status == PASS for status, _, _ in self.results)
        total = len(self.results)
        if not self.implemented:
            verdict = "not implemented yet"
        else:
            verdict = f"{n_ok}/{total} checks passed" + (" - well done!" if self.passed else "")
        return f"{self.exercise}: {verdict}\n" + "\n".join(lines)

    __repr__ = __str__


class Exercise:
    """The public checks of one exercise function ``labkit.<module>.<name>``."""

    def __init__(self, module: str, name: str, checks: list[Callable]):
        self.module, self.name, self.checks = module, name, list(checks)

    def implementation(self) -> Callable:
        """The student's current function (looked up at call time, so edits are seen after a reload)."""
        return getattr(importlib.import_module(f"labkit.{self.module}"), self.name)

    def __call__(self, fn: Callable | None = None, verbose: bool = True) -> Report:
        """Run every check on ``fn`` (default: the student's function); print and return a Report."""
        fn = fn or self.implementation()
        report = Report(f"{self.module}.{self.name}")
        for c in self.checks:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # library chatter would bury the verdicts
                    c(fn)
            except NotImplementedError:
                report.results.append((TODO, c.description, f"fill in {self.name}() in labkit/{self.module}.py"))
                break
            except AssertionError as exc:
                detail = "\n".join(filter(None, [str(exc), c.hint and f"hint: {c.hint}"]))
                report.results.append((FAIL, c.description, detail))
            except Exception as exc:  # the student's code crashed: show where, briefly
                where = _student_frame(exc)
                detail = f"{type(exc).__name__}: {exc}" + (f"\n  at {where}" if where else "")
                if c.hint:
                    detail += f"\nhint: {c.hint}"
                report.results.append((ERROR, c.description, detail))
            else:
                report.results.append((PASS, c.description, ""))
        if verbose:
            print(report, file=sys.stdout)
        return report

    def __repr__(self) -> str:
        return f"<checks for labkit.{self.module}.{self.name}: call me to run them>"


def _student_frame(exc: BaseException) -> str:
    """The innermost traceback line inside an exercise module, if any."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "labkit" in f.filename and "check" not in f.filename
    ]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}: {f.line}"
