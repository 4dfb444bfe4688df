"""The course's labs, declared once: number, notebook, exercise module, title.

The public checks, the instructor's tools, the tests and the benchmarks all read this list.
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
