"""labkit.check.runner: every lab's checks report PASS/FAIL/TODO the same friendly way."""

import importlib

import pytest

from labkit.labs import MODULES
from labkit_course.repo import REPO, load_reference


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


def test_a_failing_check_raises_a_one_line_assertion(capsys):
    from labkit.check import saliency

    report = saliency.input_gradients(lambda model, images, targets: images * 0)
    out = capsys.readouterr().out
    assert report.implemented and not report.passed and "FAIL" in out
    failed = r"input_gradients\(\) failed \d+ of its \d+ checks: fix labkit/saliency.py"
    with pytest.raises(AssertionError, match=failed):
        assert report
    assert saliency.input_gradients(load_reference("saliency").input_gradients, verbose=False)


def test_python_m_labkit_check_runs_a_labs_public_checks(capsys):
    from labkit.check.__main__ import main

    assert main(["2"]) == 1  # the repository's labkit/adversarial.py is the stub
    out = capsys.readouterr().out
    assert "adversarial.linear_adversarial: not implemented yet" in out and "adversarial.fooling_image" in out
    assert out.rstrip().endswith("0/4 exercises pass") and "Traceback" not in out
    with pytest.raises(SystemExit):
        main(["9"])
    assert "the labs are 1 (saliency)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_notebook_shows_the_report_and_one_line_no_traceback(tmp_path):
    """In a real kernel, as JupyterLab shows it: the report, then the one-line error of the failed assert
    (which still fails the cell, so nbgrader and Run All stop there); Lab 2's set-up prints nothing."""
    import nbformat

    from labkit_course import notebooks

    setup = [c.source for c in nbformat.read(REPO / "notebooks" / "02_adversarial.ipynb", as_version=4).cells][2:4]
    cells = [
        *setup,
        "assert check.adversarial.linear_adversarial()",
        "assert check.adversarial.fgsm(lambda model, images, labels, eps, targeted=False: images)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nbformat.write(nb, tmp_path / "quiet.ipynb")
    result = notebooks.execute_notebook(tmp_path / "quiet.ipynb", allow_errors=True, threads=1)
    outputs = [c.outputs for c in result.notebook.cells]
    assert outputs[0] == [] and outputs[1] == [], f"a set-up cell printed: {outputs[:2]}"
    todo, fail = outputs[2], outputs[3]
    assert [o.output_type for o in todo] == ["stream", "error"], todo
    assert "adversarial.linear_adversarial: not implemented yet" in todo[0].text
    assert todo[1].ename == "NotImplementedError" and todo[1].traceback == [
        "linear_adversarial() is not implemented yet: fill in its body in labkit/adversarial.py"
    ]
    assert [o.output_type for o in fail] == ["stream", "error"], fail
    assert "FAIL" in fail[0].text and fail[1].ename == "AssertionError"
    assert len(fail[1].traceback) == 1 and fail[1].traceback[0].startswith("fgsm() failed"), fail[1].traceback
