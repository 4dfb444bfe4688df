"""labkit_course.repo and .sync: student files are generated from solutions/ and stay in sync."""

import nbformat
import pytest

from labkit_course import notebooks, repo, sync


def test_student_files_are_in_sync_with_solutions():
    stale = sync.sync(check=True)
    assert not stale, f"run `labkit-course sync`: stale {[str(p.relative_to(repo.REPO)) for p in stale]}"


def test_every_lab_is_complete():
    """All five labs have their reference, student module, public checks, hidden tests and notebooks."""
    from labkit.labs import LABS

    assert [lab.number for lab in repo.available_labs()] == [1, 2, 3, 4, 5] == sorted(LABS)
    for lab in LABS.values():
        for path in (
            f"labkit/{lab.module}.py",
            f"labkit/check/{lab.module}.py",
            f"labkit_course/hidden/{lab.module}.py",
            f"notebooks/{lab.notebook}.ipynb",
            f"tests/test_{lab.module}.py",
        ):
            assert (repo.REPO / path).is_file(), f"lab {lab.number} has no {path}"


SOLUTION = '''"""Module doc."""
import torch


def double(x):
    """Return 2x."""
    if x is None:
        raise ValueError("x")
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


class Thing:
    def method(self):
        ### BEGIN SOLUTION
        return 1
        ### END SOLUTION
'''


def test_stub_source_replaces_each_solution_with_a_friendly_error():
    stub = sync.stub_source(SOLUTION, "demo")
    assert "return 2 * x" not in stub and "return 1" not in stub and "BEGIN SOLUTION" not in stub
    assert '"""Return 2x."""' in stub and 'raise ValueError("x")' in stub
    namespace = {}
    exec(compile(stub, "demo.py", "exec"), namespace)
    with pytest.raises(
        NotImplementedError, match=r"double\(\) is not implemented yet: fill in its body in labkit/demo.py"
    ):
        namespace["double"](1)
    with pytest.raises(NotImplementedError, match=r"method\(\)"):
        namespace["Thing"]().method()


@pytest.mark.parametrize(
    "broken, message",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "unterminated"),
        ("def f():\n    ### END SOLUTION\n", "without"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "outside a function"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n", "nested"),
    ],
)
def test_stub_source_rejects_broken_markers(broken, message):
    with pytest.raises(ValueError, match=message):
        sync.stub_source(broken, "demo")


@pytest.mark.parametrize("lab", repo.available_labs(), ids=lambda lab: lab.notebook)
def test_solved_notebook_is_an_nbgrader_assignment(lab):
    nb = nbformat.read(repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    meta = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    ids = [m["grade_id"] for m in meta]
    assert len(ids) == len(set(ids)), "duplicate grade_ids"
    tests = [m for m in meta if m["grade"] and not m["solution"]]
    answers = [m for m in meta if m["grade"] and m["solution"]]
    assert tests and answers, "needs autograded test cells and manually graded answers"
    assert all(m["locked"] for m in tests)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert nb.metadata["labkit"]["quick_parameters"]
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert 'if "google.colab" in sys.modules' in first_code.source, "the first code cell installs labkit on Colab"


@pytest.mark.parametrize("lab", repo.available_labs(), ids=lambda lab: lab.notebook)
def test_every_lab_follows_the_course_outline(lab):
    """One voice: intro with goals, set-up, numbered sections from a warm-up to the questions, then
    "Going further" and a summary."""
    nb = nbformat.read(repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    headers = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ") or line.startswith("# ")
    ]
    assert headers[0].startswith(f"# Lab {lab.number} — ") and "**Learning goals.**" in nb.cells[0].source
    assert headers[1] == "## Set-up" and headers[2].startswith("## 1. Warm-up")
    numbered = [h for h in headers if h[3:4].isdigit()]
    assert [int(h[3:].split(".")[0]) for h in numbered] == list(range(1, len(numbered) + 1))
    assert numbered[-1].endswith(". Questions (answer in the cells below; graded by hand)")
    assert headers[-2:] == ["## Going further", "## Summary"]


@pytest.mark.parametrize("lab", repo.available_labs(), ids=lambda lab: lab.notebook)
def test_student_notebook_hides_solutions(lab):
    nb = nbformat.read(repo.REPO / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    for cell in nb.cells:
        assert "### BEGIN HIDDEN TESTS" not in cell.source and "### BEGIN SOLUTION" not in cell.source
        if cell.cell_type == "code":
            assert not cell.outputs
        grading = cell.metadata.get("nbgrader", {})
        if grading.get("solution") and cell.cell_type == "markdown":
            assert cell.source == "YOUR ANSWER HERE"
        if grading.get("grade") and not grading.get("solution"):
            assert grading.get("checksum"), "graded cells carry checksums"


def test_inject_parameters_goes_after_the_parameters_cell():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(a)"),
        ]
    )
    injected = notebooks.inject_parameters(nb, {"a": 2, "names": ["x"]})
    assert injected.cells[1].source == "# Injected parameters\na = 2\nnames = ['x']"
    assert len(nb.cells) == 2, "the original is not modified"
    with pytest.raises(ValueError, match="no cell tagged"):
        notebooks.inject_parameters(nbformat.v4.new_notebook(), {"a": 1})


@pytest.mark.parametrize("lab", repo.available_labs(), ids=lambda lab: lab.notebook)
def test_each_exercise_has_one_test_cell_and_no_hidden_tests_in_notebooks(lab):
    """Hidden tests live with the judge (labkit_course/hidden/), never in a notebook a student gets."""
    import importlib

    from labkit_course.build import test_cell_exercises

    nb = nbformat.read(repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    assert "HIDDEN TESTS" not in nbformat.writes(nb) and "hidden_seed" not in nbformat.writes(nb)
    exercises = [ex.name for ex in importlib.import_module(f"labkit.check.{lab.module}").EXERCISES]
    cells = test_cell_exercises(nb, exercises)
    assert sorted(e for called in cells.values() for e in called) == sorted(exercises)
