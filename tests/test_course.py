"""labkit_course.repo and .sync: student files are generated from solutions/ and stay in sync."""

import nbformat
import pytest

from labkit import labs
from labkit.labs import LABS
from labkit_course import notebooks, repo, sync


def test_student_files_are_in_sync_with_solutions():
    stale = sync.sync(check=True)
    assert not stale, f"run `labkit-course sync`: stale {[str(p.relative_to(repo.REPO)) for p in stale]}"


def test_every_lab_is_complete():
    """Every lab of the registry has every piece a maintainer writes (CONTRIBUTING.md, "Adding a lab"); sync
    generates the rest (test_student_files_are_in_sync_with_solutions)."""
    from labkit.labs import LABS

    assert not repo.missing_pieces(), repo.missing_pieces()
    assert repo.available_labs() == list(LABS.values())


def test_a_half_added_lab_is_named_with_its_missing_piece(tmp_path):
    for piece in repo.pieces(LABS[1]):
        if piece != "labkit_course/hidden/saliency.py":
            (tmp_path / piece).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / piece).write_text("")
    missing = repo.missing_pieces(tmp_path)
    assert "lab 1: no labkit_course/hidden/saliency.py" in missing
    assert "lab 2: no solutions/labkit/adversarial.py" in missing
    with pytest.raises(ValueError, match="lab 1: no labkit_course/hidden/saliency.py"):
        repo.available_labs(tmp_path)


def test_lab_names_are_read_in_one_place():
    assert [labs.lab_number(x) for x in (3, "3", "lab3", " lab3 ", LABS[3])] == [3] * 5
    assert labs.get_lab("lab2") is LABS[2] and labs.parse_labs("1,lab3") == [LABS[1], LABS[3]]
    for bad in ("three", "lab", "", 2.0, None):
        with pytest.raises(ValueError, match="named by its number"):
            labs.lab_number(bad)
    with pytest.raises(ValueError, match=f"no lab {max(LABS) + 1}; the labs are {', '.join(map(str, LABS))}$"):
        labs.get_lab(max(LABS) + 1)


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
    """Hidden tests live with the judge (labkit_course/hidden/), never in a notebook a student gets; each test
    cell's exercises (the metadata sync writes) are those whose public check it calls."""
    import importlib

    nb = nbformat.read(repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    assert "HIDDEN TESTS" not in nbformat.writes(nb) and "hidden_seed" not in nbformat.writes(nb)
    exercises = [ex.name for ex in importlib.import_module(f"labkit.check.{lab.module}").EXERCISES]
    cells = sync.cell_exercises(nb)
    assert sorted(e for called in cells.values() for e in called) == sorted(exercises)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in cells:
            assert cells[cell.metadata.nbgrader.grade_id] == sync.check_calls(cell.source, lab.module)


def test_test_cells_are_tagged_with_the_checks_they_call():
    lab = LABS[1]
    meta = {"nbgrader": {"grade": True, "solution": False, "locked": True, "points": 1, "grade_id": "t1"}}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%matplotlib inline\nassert check.saliency.smoothgrad()", metadata=meta),
            nbformat.v4.new_code_cell("x = check.saliency.occlusion(); saliency.grad_cam()", metadata={}),
        ]
    )
    sync.tag_test_cells(nb, lab, ["smoothgrad"])
    assert nb.cells[0].metadata["labkit"] == {"exercises": ["smoothgrad"]} and "labkit" not in nb.cells[1].metadata
    assert sync.cell_exercises(nb) == {"t1": ["smoothgrad"]}
    with pytest.raises(ValueError, match=r"score \['grad_cam', 'smoothgrad'\]: each must be called exactly once"):
        sync.tag_test_cells(nb, lab, ["smoothgrad", "grad_cam"])
    nb.cells[0].source = "assert check.adversarial.fgsm()"
    with pytest.raises(ValueError, match=r"test cell t1 calls no check.saliency.<exercise>\(\)"):
        sync.tag_test_cells(nb, lab, ["smoothgrad"])
    del nb.cells[0].metadata["labkit"]
    with pytest.raises(ValueError, match="t1: no labkit.exercises metadata"):
        sync.cell_exercises(nb)
