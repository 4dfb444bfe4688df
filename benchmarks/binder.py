"""Binder's memory: every lab's completed notebook peaks under 1 GB of kernel RSS with CPU torch.

mybinder.org guarantees 1 GB (and allows 2 GB). Its image gets CPU PyTorch from conda-forge
(binder/environment.yml); pip's CPU wheel stands in for it here, so run this suite from a venv that has
it (the budget fails, saying so, under a CUDA build, whose import alone costs about 490 MB more)::

    python -m venv /tmp/cpuvenv
    /tmp/cpuvenv/bin/pip install "torch==2.13.0+cpu" -e ".[lab]"
    /tmp/cpuvenv/bin/python -m benchmarks.run --labs binder

(PyPI's torchvision does not load next to that torch: the labs import torchvision only for their online
extras, which this offline run never reaches.) Each lab's solved notebook runs at its defaults, headless,
as a student who completed it runs it; the sampled peak covers the kernel and its children.
"""

from __future__ import annotations

from benchmarks.common import notebook_budget
from labkit.labs import LABS

BINDER_MB = 1024


def budgets(quick: bool = False) -> list[dict]:
    import torch

    cpu = torch.version.cuda is None
    rows = []
    for number in list(LABS)[:1] if quick else LABS:  # quick: one lab proves the script works
        memory = notebook_budget(number, max_seconds=float("inf"), max_mb=BINDER_MB, quick=quick)[-1]
        if not cpu:
            memory.update(value=f"{memory['value']} (torch {torch.__version__} is a CUDA build)", ok=False)
        rows.append(memory)
    return rows
