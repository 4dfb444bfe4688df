"""labkit.check.runner: every lab's checks report PASS/FAIL/TODO the same friendly way."""

import importlib

import pytest

from labkit.labs import MODULES


@pytest.mark.parametrize("module", MODULES)
def test_an_unfinished_exercise_reports_todo_not_a_traceback(module, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("not implemented yet")

    for exercise in importlib.import_module(f"labkit.check.{module}").EXERCISES:
        report = exercise(stub)
        out = capsys.readouterr().out
        assert not report.passed and not report.implemented, exercise.name
        assert "not implemented yet" in out and "Traceback" not in out
        with pytest.raises(NotImplementedError, match=f"{exercise.name}\\(\\) is not implemented yet"):
            bool(report)


@pytest.mark.parametrize("module", MODULES)
def test_every_exercise_has_checks_named_after_it(module):
    checks = importlib.import_module(f"labkit.check.{module}")
    assert checks.EXERCISES and all(ex.module == module and ex.checks for ex in checks.EXERCISES)
    for ex in checks.EXERCISES:
        assert all(c.__name__.startswith(ex.name) for c in ex.checks), [c.__name__ for c in ex.checks]
    assert len({ex.name for ex in checks.EXERCISES}) == len(checks.EXERCISES)
