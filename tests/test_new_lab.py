"""A sixth lab, added to a throw-away copy of the course by CONTRIBUTING.md's "Adding a lab" checklist.

The copy's own ``labkit`` and ``labkit_course`` run (``PYTHONPATH``), so its registry is the one with
the new entry: the completeness check names the piece still missing, ``labkit-course sync`` generates the
student files and tags the test cells, and ``build_course`` makes the nbgrader assignment. The lab is
tests/grading_samples' toy (lists, no torch model), so the whole test takes seconds of work.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit.labs import LABS, Lab
from labkit_course.colab import COLAB_MARKER, colab_cell, repository_url
from labkit_course.repo import REPO, pieces
from tests.grading_samples.toy_lab import CHECKS, HIDDEN, SOLUTION

NEW = Lab(max(LABS) + 1, f"{max(LABS) + 1:02d}_toy", "toy", "Toy lab")

TEST_FILE = '''\
"""Lab {n} (toy): the public checks, on the implementation --impl chooses."""

EXERCISE_MODULE = "toy"


def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))
'''


def _cell_meta(grade_id: str, **nbgrader) -> dict:
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "schema_version": 3, "grade_id": grade_id}}


def solved_notebook() -> nbformat.NotebookNode:
    """The outline tests/test_course.py checks, with one autograded test cell per exercise."""

    def graded(grade_id, points, solution=False):
        meta = _cell_meta(grade_id)
        meta["nbgrader"].update(grade=True, solution=solution, points=points, locked=not solution)
        return meta

    cells = [
        new_markdown_cell(f"# Lab {NEW.number} — Lists\n\n**Learning goals.** Scale and sum a list."),
        new_markdown_cell("## Set-up"),
        new_code_cell(f"import sys\n{COLAB_MARKER}:\n    pass  # sync writes this cell"),
        new_code_cell("from labkit import check\nfrom labkit.toy import scale, total"),
        new_code_cell("N = 8", metadata={"tags": ["parameters"]}),
        new_markdown_cell("## 1. Warm-up\n\n### Exercise 1: `scale` (2 points)"),
        new_code_cell("assert check.toy.scale()", metadata=graded("test_scale", 2)),
        new_markdown_cell("### Exercise 2: `total` (3 points)"),
        new_code_cell("assert check.toy.total()", metadata=graded("test_total", 3)),
        new_markdown_cell("## 2. Questions (answer in the cells below; graded by hand)\n\nWhy is `total([])` 0?"),
        new_markdown_cell("The sum of nothing is 0.", metadata=graded("answer", 1, solution=True)),
        new_markdown_cell("## Going further\n\nNothing."),
        new_markdown_cell("## Summary\n\nLists."),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["labkit"] = {"quick_parameters": {"N": 2}}
    return nb


def copy_of_the_course(dest: Path) -> Path:
    """What the course's tools read: both packages, solutions/, notebooks/, every lab's test file, README."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("labkit", "labkit_course", "solutions", "notebooks"):
        shutil.copytree(REPO / folder, dest / folder, ignore=skip)
    for name in ("README.md", "pyproject.toml", *(f"tests/test_{lab.module}.py" for lab in LABS.values())):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, dest / name)
    return dest


def run(tree: Path, *args: str) -> str:
    """``python *args`` on the copy's own packages; its stdout."""
    env = dict(os.environ, PYTHONPATH=str(tree), LABKIT_OFFLINE="1")
    done = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def missing(tree: Path) -> list[str]:
    return json.loads(
        run(tree, "-c", "import json; from labkit_course import repo; print(json.dumps(repo.missing_pieces()))")
    )


@pytest.mark.slow  # four Python processes that import the course (about 20 s of CPU)
def test_a_sixth_lab_is_its_checklist(tmp_path):
    tree = copy_of_the_course(tmp_path / "repo")
    m = NEW.module
    # the checklist, in order; the hidden tests come last here, to see the completeness check name them
    (tree / "solutions" / "labkit" / f"{m}.py").write_text(SOLUTION)
    (tree / "labkit" / "check" / f"{m}.py").write_text(CHECKS)
    nbformat.write(solved_notebook(), tree / "solutions" / "notebooks" / f"{NEW.notebook}.ipynb")
    (tree / "tests" / f"test_{m}.py").write_text(TEST_FILE.format(n=NEW.number))
    registry = tree / "labkit" / "labs.py"
    text = registry.read_text()
    head, tail = text.split("LABS = {", 1)  # the entry goes last in the dict
    entry = f"    {NEW.number}: {NEW!r},\n}}\n"
    registry.write_text(head + "LABS = {" + tail.replace("\n}\n", "\n" + entry, 1))
    assert missing(tree) == [f"lab {NEW.number}: no labkit_course/hidden/{m}.py"]
    (tree / "labkit_course" / "hidden" / f"{m}.py").write_text(HIDDEN)
    assert all((tree / piece).is_file() for piece in pieces(NEW))

    wrote = run(tree, "-m", "labkit_course", "sync")  # it refuses a half-added lab: it names what is missing
    for path in (f"labkit/{m}.py", f"notebooks/{NEW.notebook}.ipynb", f"solutions/notebooks/{NEW.notebook}.ipynb"):
        assert f"wrote: {path}" in wrote
    assert "wrote: labkit/saliency.py" not in wrote, "the other labs' files were in sync before"
    assert "is not implemented yet" in (tree / "labkit" / f"{m}.py").read_text()
    solved = nbformat.read(tree / "solutions" / "notebooks" / f"{NEW.notebook}.ipynb", as_version=4)
    tagged = {c.metadata.nbgrader.grade_id: c.metadata.labkit.exercises for c in solved.cells if "labkit" in c.metadata}
    assert tagged == {"test_scale": ["scale"], "test_total": ["total"]}
    assert next(c for c in solved.cells if c.cell_type == "code").source == colab_cell(repository_url(), NEW)

    course = tmp_path / "course"
    run(tree, "-m", "labkit_course", "course", "build", str(course), "--labs", str(NEW.number))
    info = json.loads((course / ".labkit" / "course.json").read_text())
    assert info["labs"][f"lab{NEW.number}"]["cells"] == tagged
    release = course / "release" / f"lab{NEW.number}"
    assert (release / f"{NEW.notebook}.ipynb").is_file()
    assert "is not implemented yet" in (release / "labkit" / f"{m}.py").read_text()
