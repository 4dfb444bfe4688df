"""Every lab runs headless and offline: solved notebooks end to end (quick parameters), student
notebooks up to the first unfinished exercise, where they stop with the friendly NotImplementedError."""

import nbformat
import pytest

from labkit_course import notebooks, repo

LABS = repo.available_labs()


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    return repo.solved_tree(tmp_path_factory.mktemp("solved"))


def _quick(path):
    return nbformat.read(path, as_version=4).metadata["labkit"]["quick_parameters"]


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.notebook)
def test_solved_notebook_runs_offline(lab, solved, monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    path = solved / "notebooks" / f"{lab.notebook}.ipynb"
    result = notebooks.execute_notebook(
        path, cwd=solved / "notebooks", pythonpath=solved, parameters=_quick(path), threads=1
    )
    assert result.error is None, str(result.error)[-3000:]
    stderr = [
        o.text
        for c in result.notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("name") == "stderr" and "Warning" in o.get("text", "")
    ]
    assert not stderr, f"warnings printed: {stderr[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.notebook)
def test_student_notebook_stops_at_the_first_exercise(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    path = repo.REPO / "notebooks" / f"{lab.notebook}.ipynb"
    result = notebooks.execute_notebook(path, cwd=tmp_path, parameters=_quick(path), threads=1)
    assert result.error is not None, "the student notebook ran to the end on stubs"
    assert result.error.ename == "NotImplementedError", str(result.error)[-2000:]
    assert "is not implemented yet" in result.error.evalue
    assert f"labkit/{lab.module}.py" in result.error.evalue
