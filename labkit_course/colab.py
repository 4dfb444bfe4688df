"""The course's one repository URL, and what ``sync`` writes from it.

``pyproject.toml`` declares it once::

    [project.urls]
    Repository = "https://github.com/<owner>/<name>"

A fork changes that line and runs ``labkit-course sync``, which rewrites

* the Colab set-up cell of every notebook (the first code cell), which clones that URL and installs
  labkit with pip *without touching Colab's torch, torchvision and numpy* (no runtime restart), and
* the README's Colab and Binder badges;

``labkit-course sync --check`` (and the test suite) fails when any of them disagrees.
"""

from __future__ import annotations

import re
from pathlib import Path

from labkit.labs import Lab
from labkit_course.repo import REPO

BRANCH = "main"
#: where the Colab cell clones the course
COLAB_DIR = "/content/labkit"
#: installed on Colab (and Binder) and never replaced by installing labkit: replacing them needs a restart
KEEP = ("torch", "torchvision", "numpy")
#: marks the Colab cell (tests/test_course.py looks for it too)
COLAB_MARKER = 'if "google.colab" in sys.modules'

_URL = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def repository_url(pyproject: Path | None = None) -> str:
    """``[project.urls] Repository`` of ``pyproject.toml``: ``https://github.com/<owner>/<name>``."""
    text = (pyproject or REPO / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        match = re.search(r'^\s*Repository\s*=\s*"([^"]+)"', text, re.M)
        url = match.group(1) if match else None
    else:
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    if not url:
        raise ValueError("pyproject.toml declares no [project.urls] Repository")
    if not _URL.match(url):
        raise ValueError(f"[project.urls] Repository must be https://github.com/<owner>/<name>, got {url!r}")
    return url.rstrip("/").removesuffix(".git")


def owner_name(url: str) -> str:
    """``owner/name`` of a GitHub URL."""
    owner, name = _URL.match(url).groups()
    return f"{owner}/{name}"


def pip_keep_constraints() -> str:
    """Python source of an expression: pip constraints that pin KEEP to their installed versions."""
    return "[f\"{p}=={version(p).split('+')[0]}\" for p in " + repr(KEEP) + "]"


def colab_cell(url: str, lab: Lab, dest: str = COLAB_DIR) -> str:
    """The first code cell of ``lab``'s notebook: on Colab, clone ``url`` into ``dest``, install labkit and open
    the exercise file in Colab's editor; elsewhere nothing.

    It never waits for input (``GIT_TERMINAL_PROMPT=0``: git fails instead of asking for a password when
    the repository does not exist), and a failed clone or install stops the notebook there with one short
    message (an exception IPython shows as its message alone), which says what to fix.
    """
    return f'''\
# On Colab: fetch the course, install labkit and open your exercise file (does nothing elsewhere).
# Colab's own torch, torchvision and numpy are kept (pinned as constraints), so there is no runtime restart.
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    from importlib.metadata import version

    class SetupFailed(Exception):  # shown as its message alone: Run All stops here
        def _render_traceback_(self):
            return [str(self)]

    def run(command, failed, fix=""):
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))
        if done.returncode:
            raise SetupFailed(f"{{failed}}: {{(done.stderr.strip().splitlines() or ['?'])[-1]}}. {{fix}}")

    if not os.path.isdir("{dest}"):
        run(["git", "clone", "-q", "--depth", "1", "{url}", "{dest}"], "Could not fetch the course from {url}",
            "If that is not the course's home, its maintainer sets [project.urls] Repository in pyproject.toml "
            "and runs `labkit-course sync`.")
    with open("/tmp/labkit-keep.txt", "w") as f:
        f.write("\\n".join({pip_keep_constraints()}))
    run([sys.executable, "-m", "pip", "install", "-q", "-e", "{dest}", "-c", "/tmp/labkit-keep.txt"],
        "Could not install labkit")
    sys.path.insert(0, "{dest}")
    from google.colab import files
    files.view("{dest}/labkit/{lab.module}.py")
    print("Your exercises are in {dest}/labkit/{lab.module}.py, open on the right (also in the Files\\n"
          "panel, folder icon, left: labkit > labkit > {lab.module}.py). Edit, save (Ctrl+S);\\n"
          "the next cell you run uses it.")'''


def colab_badge(url: str, lab: Lab) -> str:
    return (
        f"[![Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{owner_name(url)}/blob/{BRANCH}/notebooks/{lab.notebook}.ipynb)"
    )


def binder_badge(url: str) -> str:
    return (
        f"[![Binder](https://mybinder.org/badge_logo.svg)]"
        f"(https://mybinder.org/v2/gh/{owner_name(url)}/{BRANCH}?urlpath=lab/tree/notebooks)"
    )


_COLAB_BADGE = re.compile(
    r"\[!\[Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
    r"\(https://colab\.research\.google\.com/github/[^)\s]*?/notebooks/(?P<nb>[\w-]+)\.ipynb\)"
)
_BINDER_BADGE = re.compile(
    r"\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]\(https://mybinder\.org/v2/gh/[^)\s]*\)"
)


def readme_with_badges(text: str, url: str, labs: list[Lab]) -> str:
    """``text`` (the README) with every Colab and Binder badge pointing at ``url``."""
    by_notebook = {lab.notebook: lab for lab in labs}

    def colab(m):
        lab = by_notebook.get(m.group("nb"))
        return colab_badge(url, lab) if lab else m.group(0)

    text = _COLAB_BADGE.sub(colab, text)
    return _BINDER_BADGE.sub(binder_badge(url), text)


def set_colab_cell(nb, url: str, lab: Lab) -> bool:
    """Make the notebook's Colab cell (its first code cell) the one generated from ``url``.

    Changes only that cell's source; returns whether it changed. Raises if the first code cell is
    not the Colab cell.
    """
    cell = next(c for c in nb.cells if c.cell_type == "code")
    if COLAB_MARKER not in cell.source:
        raise ValueError(f"{lab.notebook}: the first code cell is not the Colab set-up cell")
    source = colab_cell(url, lab)
    if cell.source == source:
        return False
    cell.source = source
    return True
