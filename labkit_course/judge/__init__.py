"""The trusted judge: a student's exercise functions, run in a sandbox on random inputs, judged outside it.

Steps of :func:`judge` (one submission, one lab), one module each:

1. **Read the module, don't run it** (:mod:`~labkit_course.judge.static`): :func:`static.audit`
   flags imports that could hand over an answer or reach outside (ctypes, frame inspection, the
   public checks, Captum...).
2. **Draw the hidden cases** from the per-student seed (:mod:`~labkit_course.judge.cases`):
   ``labkit_course/hidden/<module>.py`` has one function per exercise, ``name(rng) -> list[Case]``;
   they are encoded as the worker's request, plain data.
3. **Call the student's functions in the sandbox** (:mod:`~labkit_course.judge.run`): the worker
   (:mod:`labkit_course.judge.worker`) sees the inputs as data, the course's ``labkit`` package with
   the student's module in it, and nothing else; it writes back plain data only. This process's
   clock stops it when a call outlives its timeout or the submission its time budget, and starts it
   again for the exercises a lost call left unrun.
4. **Compute the expected results here** (:mod:`~labkit_course.judge.verdicts`), from the same
   cases, with the reference implementation (``solutions/labkit/<module>.py``) or a case's own
   closed form, in this process, which never imports the student's code.
5. **Compare** (:func:`compare`, :mod:`~labkit_course.judge.compare`, or a case's own ``check``), and
   give each exercise a :class:`Verdict` whose message names the failed property (shape, range,
   value, timeout, crash) without showing the inputs' code or the reference.

Nothing the submission does makes :func:`judge` raise or cost without bound: this process stops
the worker when a call outlives its timeout and when the submission's time budget is spent (the
worker's own timer is in the student's process), reads results as data only (no result names code
to run) within byte limits per call and per submission, and turns whatever goes wrong while judging
an exercise into that exercise's failure. Hidden tests and references are loaded once, under a lock.
"""

from __future__ import annotations

import time
from pathlib import Path

from labkit_course import sandbox
from labkit_course.judge import worker
from labkit_course.judge.cases import Attr, Call, Case, Toy, draw, encode_call, hidden_tests, reference
from labkit_course.judge.compare import Mismatch, check_form, compare
from labkit_course.judge.run import box, prepare, run_worker, shares
from labkit_course.judge.static import audit, read_source
from labkit_course.judge.verdicts import Judgement, Verdict, as_expected, judge_all

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
    :data:`~labkit_course.judge.run.BUDGET_FACTOR` x the sum over exercises of their longest per-call
    timeout), shared among the exercises in proportion to their longest per-call timeout (an exercise
    past its share fails as a timeout; the others keep theirs); each call is also stopped by this
    process past its own timeout. Never raises for anything the submission does:
    whatever goes wrong while judging an exercise is that exercise's failure.
    """
    start = time.perf_counter()
    backend = sandbox.check_mode(sandbox_mode)
    hidden, ref = hidden_tests(module, hidden_dir), reference(module, reference_dir)
    # 1. read and audit
    source, flags = read_source(Path(student_file))
    flags += audit(source, module) if source else []
    # 2. the hidden cases, as the worker's request
    cases = draw(hidden, seed)
    budget, exercise_shares = shares(cases, budget)
    store = worker.Store()
    request = [
        {"exercise": name, "calls": [encode_call(c, name, store) for c in case.calls]}
        for name in cases
        for case in cases[name]
    ]
    notes: list[str] = []
    with box(workdir) as folder:
        # 3. the worker's runs, in the sandbox
        prepare(folder, labkit_dir, module, source, request, store, limits.threads or 1)
        runs = run_worker(folder, request, exercise_shares, start + budget, limits=limits, backend=backend, notes=notes)
        if runs.over_budget:
            notes.append(f"the judge stopped the submission at its time budget of {budget:.0f} s")
        # 4, 5. the expected results, and the verdicts
        verdicts = judge_all(cases, request, store.arrays, ref, runs, notes)
        error = runs.error()
        if error and any(not v.passed for v in verdicts.values()):
            notes.append(error)
        return Judgement(verdicts, flags, notes, time.perf_counter() - start, backend)
