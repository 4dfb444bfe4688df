"""One repository URL (pyproject's [project.urls] Repository) drives every Colab cell and README badge."""

from __future__ import annotations

import re

import nbformat
import pytest

from labkit_course import colab, repo
from labkit_course import sync as sync_module
from labkit_course.sync import sync

LABS = repo.available_labs()
FORK = "https://github.com/someone-else/their-labkit"


def test_pyproject_declares_the_repository_once():
    url = colab.repository_url()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url)
    text = (repo.REPO / "pyproject.toml").read_text()
    assert text.count(url) == 1


def test_a_fork_changes_one_line(tmp_path):
    text = (repo.REPO / "pyproject.toml").read_text()
    fork = tmp_path / "pyproject.toml"
    fork.write_text(text.replace(colab.repository_url(), FORK))
    assert colab.repository_url(fork) == FORK
    fork.write_text(text.replace(colab.repository_url(), "https://gitlab.com/a/b"))
    with pytest.raises(ValueError, match="github.com"):
        colab.repository_url(fork)


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.notebook)
@pytest.mark.parametrize("folder", ["solutions/notebooks", "notebooks"])
def test_every_colab_cell_is_generated_from_the_url(lab, folder):
    nb = nbformat.read(repo.REPO / folder / f"{lab.notebook}.ipynb", as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == colab.colab_cell(colab.repository_url(), lab)
    assert f"labkit/{lab.module}.py" in first.source  # tells the student where the exercise file is


def test_readme_badges_use_the_url():
    text = (repo.REPO / "README.md").read_text()
    slug = colab.owner_name(colab.repository_url())
    colab_links = re.findall(r"https://colab\.research\.google\.com/github/([^)\s]+)", text)
    binder_links = re.findall(r"https://mybinder\.org/v2/gh/([^)\s]+)", text)
    assert len(colab_links) == len(LABS) and binder_links
    assert all(link.startswith(f"{slug}/blob/{colab.BRANCH}/notebooks/") for link in colab_links)
    assert all(link.startswith(f"{slug}/{colab.BRANCH}") for link in binder_links)
    for lab in LABS:
        assert colab.colab_badge(colab.repository_url(), lab) in text


def test_sync_check_catches_a_url_mismatch():
    """With another URL, every notebook (solved and student) and the README are stale; nothing is written."""
    before = {
        p: p.read_bytes()
        for p in [
            repo.REPO / "README.md",
            *(repo.REPO / "notebooks").glob("*.ipynb"),
            *(repo.SOLUTIONS / "notebooks").glob("*.ipynb"),
        ]
    }
    stale = set(sync(check=True, url=FORK))
    assert repo.REPO / "README.md" in stale
    for lab in LABS:
        assert repo.REPO / "notebooks" / f"{lab.notebook}.ipynb" in stale
        assert repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb" in stale
    assert all(p.read_bytes() == data for p, data in before.items())


def test_readme_badges_are_rewritten_for_a_fork():
    text = (repo.REPO / "README.md").read_text()
    forked = colab.readme_with_badges(text, FORK, LABS)
    assert "someone-else/their-labkit/blob/main/notebooks/01_saliency.ipynb" in forked
    assert "mybinder.org/v2/gh/someone-else/their-labkit/main" in forked
    assert colab.readme_with_badges(forked, colab.repository_url(), LABS) == text


# --- the exercise file, one click away on every delivery -------------------------------------------------
_LINK = re.compile(r"\]\(([^)\s]+\.py)\)")


def _landing(makefile_args: str) -> tuple[str, str]:
    """(root_dir, landing folder) of a JupyterLab command line."""
    root = re.search(r"--ServerApp\.root_dir=(\S+)", makefile_args)
    landing = re.search(r"--LabApp\.default_url=/lab/tree/(\S+)", makefile_args)
    return (root.group(1) if root else "."), landing.group(1)


def _exercise_links(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "markdown" and re.search(r"^###\s+Exercise", c.source, re.M)]
    assert cells, path
    return [target for source in cells for target in _LINK.findall(source.split(sync_module.EXERCISE_LINK_MARK)[-1])]


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.notebook)
def test_make_lab_binder_and_conda_open_notebooks_whose_links_reach_the_exercise_file(lab):
    """``make lab``, Binder and conda root JupyterLab at the repository and land in ``notebooks/``; from there,
    every exercise's link resolves to ``labkit/<module>.py`` inside the server's root."""
    makefile = (repo.REPO / "Makefile").read_text()
    lab_args = re.search(r"^LAB_ARGS := (.*)$", makefile, re.M).group(1)
    assert re.search(r"^\t\$\(STUDENT_JUPYTER\) \$\(BIN\)/jupyter lab \$\(LAB_ARGS\)", makefile, re.M)
    root, landing = _landing(lab_args)
    assert root == "$(CURDIR)" and landing == "notebooks"
    # Binder serves the repository's root (repo2docker's home) and opens the badge's urlpath
    readme = (repo.REPO / "README.md").read_text()
    assert re.findall(r"mybinder\.org/v2/gh/[^)\s]*\?urlpath=lab/tree/([\w/]+)\)", readme) == [landing]
    # conda: README's environment.yml command, run from the repository's root
    conda = next(line for line in (repo.REPO / "environment.yml").read_text().splitlines() if "jupyter lab" in line)
    assert _landing(conda) == (".", landing) and "JUPYTER_CONFIG_PATH=binder/student" in conda
    notebook = repo.REPO / landing / f"{lab.notebook}.ipynb"
    links = _exercise_links(notebook)
    assert len(links) == sum(
        bool(re.search(r"^###\s+Exercise", c.source, re.M))
        for c in nbformat.read(notebook, as_version=4).cells
        if c.cell_type == "markdown"
    )
    for target in set(links):
        resolved = (notebook.parent / target).resolve()
        assert resolved == repo.REPO / "labkit" / f"{lab.module}.py" and resolved.exists()
        assert resolved.is_relative_to(repo.REPO)  # the server's root


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.notebook)
def test_nbgrader_release_has_the_exercise_file_beside_the_notebook_and_no_repository_link(lab, tmp_path):
    """nbgrader releases ``labN/`` with the notebook and ``labkit/`` side by side, built from the solved
    notebook: the file browser shows ``labkit/`` where the notebook opens, and no link points elsewhere."""
    from labkit_course.build import assignment_id, build_course

    solved = nbformat.read(repo.SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    assert not any(sync_module.EXERCISE_LINK_MARK in c.source for c in solved.cells)
    source = build_course(tmp_path / "course", [lab], generate=False) / "source" / assignment_id(lab)
    assert (source / f"{lab.notebook}.ipynb").exists() and (source / "labkit" / f"{lab.module}.py").exists()


def test_the_first_exercise_gives_the_self_grading_command():
    for lab in LABS:
        text = (repo.REPO / "notebooks" / f"{lab.notebook}.ipynb").read_text()
        assert f"python -m labkit.check {lab.number}" in text, lab.notebook


def test_student_files_mention_no_instructor_command():
    """The exercise files and the student notebooks outside the Colab cell (whose failure message is for the
    course's maintainer) name no instructor command."""
    for lab in LABS:
        stub = (repo.REPO / "labkit" / f"{lab.module}.py").read_text()
        nb = nbformat.read(repo.REPO / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
        texts = [stub, *(c.source for c in nb.cells if colab.COLAB_MARKER not in c.source)]
        for text in texts:
            assert not re.search(r"labkit(-course)? (sync|course|grade)|nbgrader ", text), lab.module
        assert f"python -m labkit.check {lab.module}" in stub


def test_quiet_setup_cell_ends_a_bare_call_with_a_semicolon():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell('import sys\nif "google.colab" in sys.modules:\n    pass'),
            nbformat.v4.new_code_cell("%matplotlib inline\nx = f(1)\ntrim()  # frees memory"),
        ]
    )
    assert sync_module.quiet_setup_cell(nb)
    assert nb.cells[1].source == "%matplotlib inline\nx = f(1)\ntrim();  # frees memory"
    assert not sync_module.quiet_setup_cell(nb)  # already quiet
    nb.cells[1].source = "trim()\nx = 1"
    assert not sync_module.quiet_setup_cell(nb)  # the last statement displays nothing


# --- Colab without a home ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_colab_cell_stops_with_one_message_when_the_clone_fails(tmp_path):
    """On "Colab" (a stand-in google.colab module) with a repository that does not exist: no prompt, one short
    message that says what to set, and the notebook stops there."""
    from labkit_course.notebooks import execute_notebook

    missing = "https://github.com/labkit-course/no-such-course-repository"
    cells = [
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')",
        colab.colab_cell(missing, LABS[0], dest=str(tmp_path / "clone")),
        "import labkit_is_not_there",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nbformat.write(nb, tmp_path / "colab.ipynb")
    result = execute_notebook(tmp_path / "colab.ipynb", timeout=120)
    assert result.error is not None and result.error.ename == "SetupFailed", result.error
    outputs = result.notebook.cells[1].outputs
    assert [o.output_type for o in outputs] == ["error"], outputs
    (message,) = outputs[0].traceback
    assert message.startswith(f"Could not fetch the course from {missing}: ")
    assert "[project.urls] Repository" in message and "`labkit-course sync`" in message
    assert "CalledProcessError" not in message and "Traceback" not in message
    assert result.notebook.cells[2].outputs == [] and not (tmp_path / "clone").exists()
