"""Where the course's single source of truth lives, and how to load the reference from it.

``solutions/labkit/<module>.py`` holds each lab's exercise functions, their bodies wrapped in
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers (nbgrader's syntax);
``solutions/notebooks/<lab>.ipynb`` holds the solved notebook with nbgrader cell metadata.
"""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path

from labkit.labs import LABS, Lab

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def pieces(lab: Lab) -> list[str]:
    """The files a maintainer writes for ``lab``, relative to the repository (CONTRIBUTING's "Adding a lab");
    ``labkit-course sync`` generates the student module and notebook from them."""
    return [
        f"solutions/labkit/{lab.module}.py",
        f"labkit/check/{lab.module}.py",
        f"labkit_course/hidden/{lab.module}.py",
        f"solutions/notebooks/{lab.notebook}.ipynb",
        f"tests/test_{lab.module}.py",
    ]


def missing_pieces(repo: Path = REPO) -> list[str]:
    """What the registry's labs lack in ``repo``, one line each: ``lab 6: no labkit_course/hidden/foo.py``."""
    return [
        f"lab {lab.number}: no {piece}"
        for lab in LABS.values()
        for piece in pieces(lab)
        if not (repo / piece).is_file()
    ]


def available_labs(repo: Path = REPO) -> list[Lab]:
    """Every lab of :data:`labkit.labs.LABS`, in order. A half-added lab is never dropped: ValueError
    names each missing piece (:func:`missing_pieces`)."""
    missing = missing_pieces(Path(repo))
    if missing:
        raise ValueError('a lab is not complete (CONTRIBUTING.md, "Adding a lab"):\n' + "\n".join(missing))
    return list(LABS.values())


_LOAD_LOCK = threading.Lock()


def load_module(path: Path, name: str):
    """The module in the file ``path``, executed once, under the name ``name`` in ``sys.modules``.

    Thread-safe: one thread executes it, under a lock, and it enters ``sys.modules`` only once fully
    executed (another thread never gets it half-loaded); a module whose execution fails is not kept."""
    import importlib.util

    with _LOAD_LOCK:
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
        return sys.modules[name]


def load_reference(module: str, solutions: Path | None = None):
    """The reference exercise module ``solutions/labkit/<module>.py``, whatever the student file holds.

    Loaded once under the name ``labkit_reference_<module>`` (:func:`load_module`); ``solutions`` is
    the folder that holds it (default ``solutions/labkit/``).
    """
    return load_module((solutions or SOLUTIONS / "labkit") / f"{module}.py", f"labkit_reference_{module}")


def solved_tree(dest: Path) -> Path:
    """Materialize the solved course in ``dest``: labkit with reference modules.

    ``dest/labkit`` is a copy of the package whose exercise modules are the
    reference ones; ``dest/notebooks`` holds the solved notebooks. Put ``dest``
    first on ``PYTHONPATH`` and ``import labkit`` gives the reference.
    """
    dest = Path(dest)
    if (dest / "labkit").exists():
        shutil.rmtree(dest / "labkit")
    shutil.copytree(REPO / "labkit", dest / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    for lab in available_labs():
        shutil.copy(SOLUTIONS / "labkit" / f"{lab.module}.py", dest / "labkit" / f"{lab.module}.py")
        (dest / "notebooks").mkdir(parents=True, exist_ok=True)
        shutil.copy(
            SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb",
            dest / "notebooks" / f"{lab.notebook}.ipynb",
        )
    return dest
