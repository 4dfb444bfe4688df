"""Binder's memory: every lab's completed notebook peaks under 1 GB of kernel RSS with CPU torch.

mybinder.org guarantees 1 GB (and allows 2 GB). Its image gets CPU PyTorch from conda-forge
(binder/environment.yml); pip's CPU wheel stands in for it here, so run this suite from a venv that has
it (the budget fails, saying so, under a CUDA build, whose import alone costs about 490 MB more)::

    python -m venv /tmp/cpuvenv
    /tmp/cpuvenv/bin/pip install "torch==2.13.0+cpu" -e ".[lab]"   # as binder/postBuild (editable)
    /tmp/cpuvenv/bin/python -m benchmarks.run --labs binder        # every lab, into RESULTS.md
    /tmp/cpuvenv/bin/python -m benchmarks.binder --labs 1,3        # some labs, printed
    /tmp/cpuvenv/bin/python -m benchmarks.binder --without-start   # kernels without binder/start's variables

(PyPI's torchvision does not load next to that torch: the labs import torchvision only for their online
extras, which this offline run never reaches.) Each lab's solved notebook runs at its defaults, headless,
as a student who completed it runs it, its kernel in the environment binder/start gives Binder's kernels
(its MALLOC_MMAP_THRESHOLD_ above all); the sampled peak covers the kernel and its children.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path
from unittest import mock

from benchmarks.common import notebook_budget, row
from labkit.labs import LABS

BINDER_MB = 1024
START = Path(__file__).resolve().parents[1] / "binder" / "start"


def start_environment() -> dict[str, str]:
    """The variables binder/start sets or changes for the server and its kernels (it is run, not parsed)."""
    out = subprocess.run(["bash", str(START), "env", "-0"], capture_output=True, text=True, check=True).stdout
    env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in env.items() if os.environ.get(k) != v and k not in ("_", "SHLVL")}


def budgets(quick: bool = False, labs=None, start: bool = True, log=print) -> list[dict]:
    """One row per lab (default: all): its solved notebook's peak kernel RSS against Binder's 1 GB, kernels
    started with binder/start's variables unless ``start`` is False. Quick mode runs no notebook (the
    test suite executes every notebook at its quick parameters): it only reads binder/start."""
    import torch

    env = start_environment() if start else {}
    if quick:
        said = " ".join(f"{k}={v}" for k, v in env.items())
        return [row("binder", "binder/start's kernel environment read", said, True)]
    cpu = torch.version.cuda is None
    rows = []
    for number in labs or LABS:
        with mock.patch.dict(os.environ, env):
            seconds, memory = notebook_budget(number, max_seconds=float("inf"), max_mb=BINDER_MB)
        memory["value"] += f" ({seconds['value']})"
        if not cpu:
            memory.update(value=f"{memory['value']} (torch {torch.__version__} is a CUDA build)", ok=False)
        rows.append(memory)
        log(f"  lab {number}: {memory['value']}", flush=True)  # a full run takes most of an hour
    return rows


def main(argv=None) -> int:
    from benchmarks.run import machine, table

    parser = argparse.ArgumentParser(description="Binder's 1 GB: peak kernel RSS of some labs' solved notebooks")
    parser.add_argument("--labs", default=",".join(map(str, LABS)), help="comma-separated lab numbers")
    parser.add_argument("--without-start", action="store_true", help="kernels without binder/start's variables")
    args = parser.parse_args(argv)
    labs = [int(n) for n in args.labs.split(",")]
    unknown = [n for n in labs if n not in LABS]
    if unknown:
        parser.error(f"unknown labs {unknown}; choose from {','.join(map(str, LABS))}")
    rows = budgets(labs=labs, start=not args.without_start)
    print(f"{machine()}; binder/start's variables: {'no' if args.without_start else start_environment()}")
    print(table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
