"""Where the course's single source of truth lives, and how to load the reference from it.

``solutions/labkit/<module>.py`` holds each lab's exercise functions, their bodies wrapped in
``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers (nbgrader's syntax);
``solutions/notebooks/<lab>.ipynb`` holds the solved notebook with nbgrader cell metadata.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from labkit.labs import LABS, Lab

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"


def available_labs() -> list[Lab]:
    """The labs whose reference module and solved notebook both exist."""
    return [
        lab
        for lab in LABS.values()
        if (SOLUTIONS / "labkit" / f"{lab.module}.py").exists()
        and (SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb").exists()
    ]


def load_reference(module: str, solutions: Path | None = None):
    """The reference exercise module ``solutions/labkit/<module>.py``, whatever the student file holds.

    Loaded once under the name ``labkit_reference_<module>``; ``solutions`` is the folder that holds it
    (default ``solutions/labkit/``).
    """
    import importlib.util
    import sys

    name = f"labkit_reference_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, (solutions or SOLUTIONS / "labkit") / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


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
