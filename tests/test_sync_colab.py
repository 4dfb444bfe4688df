"""One repository URL (pyproject's [project.urls] Repository) drives every Colab cell and README badge."""

from __future__ import annotations

import re

import nbformat
import pytest

from labkit_course import colab, repo
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
