"""The one scoring rule: the judge's verdicts -> points, for every grading path.

nbgrader grading (:mod:`labkit_course.grading`) scores each autograded test cell; the Gradescope
autograder (:mod:`labkit_course.gradescope`) scores each exercise. Both come from the same rule,
so a local grade and a Gradescope grade cannot drift apart:

* an autograded test cell of ``points`` points checks some exercises (``cell_exercises``, one
  list per ``grade_id``); its points are shared **equally** by those exercises;
* an exercise scores its share of each cell when the judge passed it, else 0;
* a **flagged** submission (held for an instructor's review) scores 0 everywhere;
* a cell that checks no exercise scores 0 (nobody earns its points).

So a cell's score is the sum of its exercises' scores, and a submission's total is the same
whether it is summed per cell or per exercise. The functions are pure: they read only their
arguments. A verdict is anything with a boolean ``passed`` (:class:`labkit_course.judge.Verdict`);
an exercise with no verdict (not judged) did not pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class Verdict(Protocol):
    """What scoring reads of a judge's verdict (:class:`labkit_course.judge.Verdict`)."""

    passed: bool


def _passed(verdict: Verdict | None) -> bool:
    return verdict is not None and bool(verdict.passed)


def exercise_points(cell_exercises: Mapping[str, Sequence[str]], cell_points: Mapping[str, float]) -> dict[str, float]:
    """Points per exercise: each test cell's ``cell_points[grade_id]`` shared equally by the
    exercises it checks (``cell_exercises[grade_id]``); an exercise checked by several cells gets a
    share of each. A cell that checks no exercise gives no one points.

    ``{"test_a": ["a"], "test_bc": ["b", "c"]}, {"test_a": 2, "test_bc": 3}`` -> ``{"a": 2.0, "b": 1.5, "c": 1.5}``.
    """
    points: dict[str, float] = {}
    for gid, exercises in cell_exercises.items():
        for name in exercises:
            points[name] = points.get(name, 0.0) + float(cell_points[gid]) / len(exercises)
    return points


def cell_score(max_score: float, exercises: Sequence[str], verdicts: Mapping[str, Verdict], flagged: bool) -> float:
    """The score of one autograded test cell worth ``max_score``: ``max_score`` times the fraction of
    its ``exercises`` the judge passed; 0 when the submission is ``flagged`` or the cell checks no
    exercise. In ``[0, max_score]``."""
    if flagged or not exercises:
        return 0.0
    return max_score * sum(_passed(verdicts.get(e)) for e in exercises) / len(exercises)


def exercise_score(points: float, verdict: Verdict | None, flagged: bool) -> float:
    """The score of one exercise worth ``points``: all of them if the judge passed it and the
    submission is not ``flagged``, else 0."""
    return float(points) if not flagged and _passed(verdict) else 0.0


def exercise_scores(points: Mapping[str, float], verdicts: Mapping[str, Verdict], flagged: bool) -> dict[str, float]:
    """Every exercise of ``points`` (from :func:`exercise_points`) -> its :func:`exercise_score`."""
    return {name: exercise_score(p, verdicts.get(name), flagged) for name, p in points.items()}
