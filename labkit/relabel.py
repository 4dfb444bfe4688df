"""What Lab 5's relabelled datasets are made of: their modes and the attack that builds them.

Shared by the exercise module :mod:`labkit.robust_features` (``make_adversarial_dataset`` builds
the sets) and the experiment :mod:`labkit.experiments` (which runs it), so neither imports the
other at import time. It imports no exercise module at import time either: Lab 2's ``pgd`` is looked
up when it is called.
"""

from __future__ import annotations

import importlib

#: Ilyas et al.'s relabelled datasets: D_det (target ``(y + 1) mod C``) and D_rand (a random other class)
MODES = ("det", "rand")


def lab2_pgd():
    """Lab 2's ``pgd`` (``labkit.adversarial.pgd``, the student's own), looked up at call time.

    ``make_adversarial_dataset`` calls it; if Lab 2's ``pgd`` is not done yet, the call
    stops with a clear message instead of a NotImplementedError from Lab 5.
    """
    pgd = importlib.import_module("labkit.adversarial").pgd

    def call(*args, **kwargs):
        try:
            return pgd(*args, **kwargs)
        except NotImplementedError as exc:
            raise RuntimeError(
                "make_adversarial_dataset() uses pgd() from Lab 2, which is not implemented "
                "yet: finish pgd() in labkit/adversarial.py first"
            ) from exc

    return call
