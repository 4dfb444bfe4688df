"""Student files, generated from ``solutions/``.

* ``labkit/<module>.py``: each marked body becomes a friendly ``NotImplementedError``;
* ``notebooks/<lab>.ipynb``: solutions and outputs are removed by nbgrader's own preprocessors,
  exactly as ``nbgrader generate_assignment`` would;
* in ``solutions/notebooks/<lab>.ipynb`` itself, each autograded test cell's exercises (cell metadata
  ``labkit.exercises``), which the course build and the Gradescope zip score it by.

``sync()`` writes them, ``sync(check=True)`` reports stale ones (the test suite runs it).
:func:`student_package` is the student's ``labkit`` package every course build and zip ships.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
from pathlib import Path

import nbformat

from labkit.labs import Lab
from labkit_course.repo import REPO, SOLUTIONS, available_labs

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
# --------------------------------------------------------------------------
_DEF = re.compile(r"^(\s*)def\s+(\w+)\s*\(")

STUDENT_HEADER = (
    "# Your exercises for this lab. Fill in every body that raises\n"
    "# NotImplementedError; the docstrings say exactly what to return.\n"
    "# Save (Ctrl+S) and re-run the notebook's check cell, or check them all from a\n"
    "# terminal: python -m labkit.check {module}\n"
    # the course's linter reads these instead of a per-file list in pyproject.toml: the validation before
    # each "YOUR CODE HERE" binds names only the solution uses, and the layout is the solution's
    "# (for the course's linter: this file is generated, in the solutions' layout)\n"
    "# ruff: noqa: F401, F841\n"
    "# fmt: off\n"
)


def stub_source(solution: str, module: str) -> str:
    """Turn a reference module into its student version.

    Each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block is replaced by a
    ``raise NotImplementedError`` that names the function and the file, at the
    block's indentation. Everything outside the markers (signatures,
    docstrings, input validation) is kept verbatim.
    """
    out: list[str] = [STUDENT_HEADER.format(module=module)]
    function = None
    inside = False
    for lineno, line in enumerate(solution.splitlines(keepends=True), 1):
        m = _DEF.match(line)
        if m and not inside:
            function = m.group(2)
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{module}.py:{lineno}: nested {BEGIN_SOLUTION}")
            if function is None:
                raise ValueError(f"{module}.py:{lineno}: {BEGIN_SOLUTION} outside a function")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(
                f"{indent}# YOUR CODE HERE\n"
                f"{indent}raise NotImplementedError(\n"
                f'{indent}    "{function}() is not implemented yet: "\n'
                f'{indent}    "fill in its body in labkit/{module}.py"\n'
                f"{indent})\n"
            )
        elif stripped == END_SOLUTION:
            if not inside:
                raise ValueError(f"{module}.py:{lineno}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{module}.py: unterminated {BEGIN_SOLUTION}")
    return "".join(out)


def student_package(repo: Path, dest: Path) -> Path:
    """Write to ``dest`` a copy of ``repo/labkit`` whose exercise modules (one per
    ``repo/solutions/labkit/<module>.py``) are their student versions, whatever ``repo/labkit`` holds:
    the package a student gets, no solution in it. Returns ``dest``."""
    shutil.copytree(repo / "labkit", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for solution in sorted((repo / "solutions" / "labkit").glob("*.py")):
        text = stub_source(solution.read_text(encoding="utf-8"), solution.stem)
        (dest / solution.name).write_text(text, encoding="utf-8")
    return dest


# --------------------------------------------------------------------------
def student_notebook(solved: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solved notebook, made with nbgrader's preprocessors.

    The same preprocessors, in the same order, as ``nbgrader generate_assignment``
    (minus the database): lock cells, clear solutions, clear outputs, clear
    hidden tests and mark schemes, then checksum the graded cells.
    """
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = copy.deepcopy(solved)
    resources: dict = {}
    for pp in (
        LockCells(),
        ClearSolutions(),
        ClearOutput(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
    ):
        nb, resources = pp.preprocess(nb, resources)
    nb.metadata.pop("widgets", None)
    return nb


#: the student notebooks' folder, relative to the repository: their links to labkit/ start from there
NOTEBOOKS_TO_REPO = ".."
_EXERCISE = re.compile(r"^###\s+Exercise\b", re.M)
#: starts the line sync adds under each exercise's instructions (tests find it by this)
EXERCISE_LINK_MARK = "**Your code goes in**"


def exercise_link(lab: Lab) -> str:
    """The markdown link to ``labkit/<module>.py`` from a student notebook in ``notebooks/``.

    JupyterLab resolves a relative link from the notebook's folder and opens the file in its editor, when
    the server's root holds both (``make lab``, Binder and conda start it at the repository's root).
    """
    path = f"labkit/{lab.module}.py"
    return f"[`{path}`]({NOTEBOOKS_TO_REPO}/{path})"


def with_exercise_links(solved: nbformat.NotebookNode, lab: Lab) -> nbformat.NotebookNode:
    """A copy of ``solved`` whose exercise instructions (markdown cells with a ``### Exercise`` heading)
    end with a link that opens the exercise file; the first also gives the self-grading command.

    For the student notebooks of ``notebooks/`` only: the solved notebooks (``solutions/notebooks/``, whose
    ``../labkit/`` holds the solutions) and nbgrader's release (built from them, ``labkit/`` beside the
    notebook, in the file browser's first view) have none, so no link points at the wrong file.
    """
    nb = copy.deepcopy(solved)
    first = True
    for cell in nb.cells:
        if cell.cell_type != "markdown" or not _EXERCISE.search(cell.source):
            continue
        line = (
            f"{EXERCISE_LINK_MARK} {exercise_link(lab)}: the link opens it in the editor (on Colab it is open on "
            "the right). Save it with Ctrl+S, then run the check below."
        )
        if first:
            line += f" To check all of this lab's exercises in a terminal: `python -m labkit.check {lab.number}`."
            first = False
        cell.source = cell.source.rstrip("\n") + "\n\n" + line
    return nb


def _python(source: str) -> str:
    """A code cell's source as Python: IPython's magics (``%matplotlib inline``, ``!pip``) become comments,
    line numbers unchanged."""
    return "\n".join("#" + x if x.lstrip().startswith(("%", "!")) else x for x in source.split("\n"))


def quiet_setup_cell(nb: nbformat.NotebookNode) -> bool:
    """End the set-up cell (the code cell after the Colab cell) with ``;`` if its last statement is a bare
    call, so that the call's value (``trim_memory_after_each_cell()`` returns True) is not displayed.
    Returns whether it changed."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if len(code) < 2:
        return False
    cell = code[1]
    lines = cell.source.split("\n")
    body = ast.parse(_python(cell.source)).body
    last = body[-1] if body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
        return False
    row = lines[last.end_lineno - 1]
    head, tail = row[: last.end_col_offset], row[last.end_col_offset :]
    if tail.lstrip().startswith(";"):
        return False
    lines[last.end_lineno - 1] = head + ";" + tail
    cell.source = "\n".join(lines)
    return True


def check_calls(source: str, module: str) -> list[str]:
    """The exercises whose public check the code ``source`` calls (``check.<module>.<exercise>()``), in order."""
    called: list[str] = []
    for node in ast.walk(ast.parse(_python(source))):
        f = node.func if isinstance(node, ast.Call) and not (node.args or node.keywords) else None
        if (
            isinstance(f, ast.Attribute)
            and isinstance(f.value, ast.Attribute)
            and f.value.attr == module
            and isinstance(f.value.value, ast.Name)
            and f.value.value.id == "check"
            and f.attr not in called
        ):
            called.append(f.attr)
    return called


def _is_test_cell(cell) -> bool:
    from nbgrader.utils import is_grade, is_solution

    return cell.cell_type == "code" and is_grade(cell) and not is_solution(cell)


def tag_test_cells(nb: nbformat.NotebookNode, lab: Lab, exercises: list[str]) -> None:
    """Store in each autograded test cell's metadata (``labkit.exercises``) the exercises whose public checks
    it calls (:func:`check_calls`): what the cell's points stand for when the judge scores them.

    ``exercises``: the hidden tests' ``EXERCISES``. Raises ValueError unless every test cell calls at least
    one check, and together they call each of ``exercises`` exactly once (and nothing else)."""
    seen: list[str] = []
    for cell in filter(_is_test_cell, nb.cells):
        called = check_calls(cell.source, lab.module)
        if not called:
            grade_id = cell.metadata.nbgrader["grade_id"]
            raise ValueError(f"{lab.notebook}: test cell {grade_id} calls no check.{lab.module}.<exercise>()")
        cell.metadata.setdefault("labkit", {})["exercises"] = called
        seen += called
    if sorted(seen) != sorted(exercises):
        raise ValueError(
            f"{lab.notebook}: the test cells call the checks of {sorted(seen)}; the hidden tests "
            f"(labkit_course/hidden/{lab.module}.py) score {sorted(exercises)}: each must be called exactly once"
        )


def cell_exercises(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """grade_id -> the exercises each autograded test cell stands for, as :func:`tag_test_cells` stored them."""
    cells = {}
    for cell in filter(_is_test_cell, nb.cells):
        grade_id = cell.metadata.nbgrader["grade_id"]
        try:
            cells[grade_id] = list(cell.metadata["labkit"]["exercises"])
        except KeyError:
            raise ValueError(f"test cell {grade_id}: no labkit.exercises metadata (run `labkit-course sync`)") from None
    return cells


def _write_if_changed(path: Path, text: str, check: bool) -> bool:
    """Write ``text`` to ``path`` unless identical; return True if it was stale."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return False
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return True


def clean_solved_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solved notebook as committed: no outputs, no execution counts."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def sync(check: bool = False, url: str | None = None) -> list[Path]:
    """Regenerate every student file from ``solutions/``, and what the repository URL decides.

    ``url`` (default: ``[project.urls] Repository`` of ``pyproject.toml``) goes into every notebook's
    Colab cell (solved and student) and the README's Colab/Binder badges. Every set-up cell is made
    quiet (:func:`quiet_setup_cell`), every test cell says which exercises it stands for
    (:func:`tag_test_cells`) and every student notebook's exercise links to its file (:func:`with_exercise_links`).
    Returns the files that were stale. With ``check=True`` nothing is written.
    """
    from labkit_course.colab import readme_with_badges, repository_url, set_colab_cell
    from labkit_course.judge import hidden_tests

    url = url or repository_url()
    stale: list[Path] = []
    readme = REPO / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        if _write_if_changed(readme, readme_with_badges(text, url, available_labs()), check):
            stale.append(readme)
    for lab in available_labs():
        solution = (SOLUTIONS / "labkit" / f"{lab.module}.py").read_text(encoding="utf-8")
        target = REPO / "labkit" / f"{lab.module}.py"
        if _write_if_changed(target, stub_source(solution, lab.module), check):
            stale.append(target)

        solved_path = SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb"
        solved = nbformat.read(solved_path, as_version=4)
        set_colab_cell(solved, url, lab)
        quiet_setup_cell(solved)
        tag_test_cells(solved, lab, list(hidden_tests(lab.module, REPO / "labkit_course" / "hidden").EXERCISES))
        cleaned = nbformat.writes(clean_solved_notebook(solved)) + "\n"
        if _write_if_changed(solved_path, cleaned, check):
            stale.append(solved_path)
        target = REPO / "notebooks" / f"{lab.notebook}.ipynb"
        text = nbformat.writes(student_notebook(with_exercise_links(solved, lab))) + "\n"
        if _write_if_changed(target, text, check):
            stale.append(target)
    return stale
