"""The course's labs, declared once: number, notebook, exercise module, title.

The public checks, the instructor's tools, the tests and the benchmarks all read this list; adding
a lab is adding its entry here plus the pieces CONTRIBUTING.md's "Adding a lab" lists (a test names
any that is missing). :func:`lab_number` is the one reader of a lab's name (``3``, ``"3"``, ``"lab3"``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lab:
    number: int
    notebook: str  # file stem, e.g. "01_saliency"
    module: str  # exercise module, e.g. "saliency" (labkit/saliency.py, labkit/check/saliency.py)
    title: str


LABS = {
    1: Lab(1, "01_saliency", "saliency", "Saliency maps"),
    2: Lab(2, "02_adversarial", "adversarial", "Adversarial examples"),
    3: Lab(3, "03_class_visualization", "classviz", "Class visualization"),
    4: Lab(4, "04_noise_probing", "noise", "Noise probing"),
    5: Lab(5, "05_non_robust_features", "robust_features", "Non-robust features"),
}

#: exercise module names, in lab order
MODULES = tuple(lab.module for lab in LABS.values())


def lab_number(name: int | str | Lab) -> int:
    """The number of the lab named ``name``: an int, its digits, ``lab<N>`` (its nbgrader assignment) or the Lab.

    Raises ValueError for anything else. The lab need not be in :data:`LABS` (a course may hold others)."""
    if isinstance(name, Lab):
        return name.number
    if isinstance(name, int) and not isinstance(name, bool):
        return name
    digits = name.strip().removeprefix("lab") if isinstance(name, str) else ""
    if digits.isdigit():
        return int(digits)
    raise ValueError(f"a lab is named by its number (3) or id (lab3); got {name!r}")


def get_lab(name: int | str | Lab) -> Lab:
    """The registered lab named ``name`` (see :func:`lab_number`); ValueError naming the labs otherwise."""
    try:
        number = lab_number(name)
    except ValueError:
        number = None
    if number not in LABS:
        raise ValueError(f"no lab {name!r}; the labs are {', '.join(map(str, LABS))}")
    return LABS[number]


def parse_labs(text: str) -> list[Lab]:
    """The registered labs of a comma-separated list, e.g. ``"1,3"`` or ``"lab1,lab3"``."""
    return [get_lab(part) for part in text.split(",") if part.strip()]
