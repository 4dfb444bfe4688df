"""The one scoring rule (labkit_course.scoring): exact values, shared cells, empty cells, flags."""

from types import SimpleNamespace

import pytest

from labkit_course.scoring import cell_score, exercise_points, exercise_score, exercise_scores

PASS, FAIL = SimpleNamespace(passed=True), SimpleNamespace(passed=False)
CELLS = {"test_a": ["a"], "test_bc": ["b", "c"], "test_ab": ["a", "b"], "test_none": []}
POINTS = {"test_a": 2, "test_bc": 3, "test_ab": 1, "test_none": 4}


def test_a_cell_points_are_shared_equally_by_its_exercises():
    assert exercise_points(CELLS, POINTS) == {"a": 2.5, "b": 2.0, "c": 1.5}  # a: 2 + 1/2; b: 3/2 + 1/2
    assert exercise_points({}, {}) == {}
    assert exercise_points({"test_none": []}, {"test_none": 4}) == {}  # a cell checking nothing gives no points


def test_a_cell_scores_the_fraction_of_its_exercises_passed():
    verdicts = {"a": PASS, "b": FAIL, "c": PASS}
    assert cell_score(2.0, ["a"], verdicts, flagged=False) == 2.0
    assert cell_score(3.0, ["b", "c"], verdicts, flagged=False) == 1.5
    assert cell_score(3.0, ["b"], verdicts, flagged=False) == 0.0
    assert cell_score(3.0, ["d"], verdicts, flagged=False) == 0.0  # not judged: not passed
    assert cell_score(4.0, [], verdicts, flagged=False) == 0.0  # checks no exercise


def test_a_flagged_submission_scores_zero_everywhere():
    verdicts = {"a": PASS, "b": PASS, "c": PASS}
    assert cell_score(3.0, ["b", "c"], verdicts, flagged=True) == 0.0
    assert exercise_score(2.5, PASS, flagged=True) == 0.0
    assert exercise_scores(exercise_points(CELLS, POINTS), verdicts, flagged=True) == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_an_exercise_scores_its_points_when_passed():
    assert exercise_score(2.5, PASS, flagged=False) == 2.5
    assert exercise_score(2.5, FAIL, flagged=False) == 0.0
    assert exercise_score(2.5, None, flagged=False) == 0.0
    verdicts = {"a": PASS, "b": FAIL}  # c not judged
    assert exercise_scores(exercise_points(CELLS, POINTS), verdicts, flagged=False) == {"a": 2.5, "b": 0.0, "c": 0.0}


@pytest.mark.parametrize("flagged", [False, True])
@pytest.mark.parametrize("outcomes", [(1, 1, 1), (1, 0, 1), (0, 1, 0), (0, 0, 0)])
def test_per_cell_and_per_exercise_totals_agree(outcomes, flagged):
    """Summed per cell (nbgrader) or per exercise (Gradescope), a submission's total is the same."""
    verdicts = {e: PASS if ok else FAIL for e, ok in zip("abc", outcomes)}
    per_cell = sum(cell_score(POINTS[g], CELLS[g], verdicts, flagged) for g in CELLS)
    per_exercise = sum(exercise_scores(exercise_points(CELLS, POINTS), verdicts, flagged).values())
    assert per_cell == pytest.approx(per_exercise)
