"""Instant feedback on your exercises.

    from labkit import check
    check.saliency.gradient_saliency()     # runs the public checks, prints PASS/FAIL

Each lab has a submodule (``check.saliency``, ``check.adversarial``, ...) with
one callable per exercise. An unfinished exercise reports "not implemented
yet" instead of a traceback. The tiny models they test with, and their
assertions, are in ``labkit.check.toys``.
"""

import importlib

from labkit.labs import MODULES as _LABS


def __getattr__(name):
    if name in _LABS:
        return importlib.import_module(f"labkit.check.{name}")
    raise AttributeError(f"labkit.check has no lab {name!r}; the labs are {', '.join(_LABS)}")


def __dir__():
    return sorted(_LABS)
