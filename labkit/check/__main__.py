"""Grade yourself from a terminal: ``python -m labkit.check 2`` runs every public check of Lab 2.

The same checks, with the same PASS/FAIL/"not implemented yet" reports, as the notebook's
``check.<module>.<exercise>()`` cells, one exercise after the other, then one summary line. The exit
status is 0 when every exercise of the labs named passes. Labs are named by number or by exercise
module (``python -m labkit.check adversarial``); several may follow each other.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from labkit.labs import LABS, MODULES


def _module(name: str) -> str:
    if name.isdigit() and int(name) in LABS:
        return LABS[int(name)].module
    if name in MODULES:
        return name
    choices = ", ".join(f"{n} ({lab.module})" for n, lab in LABS.items())
    raise argparse.ArgumentTypeError(f"no lab {name!r}; the labs are {choices}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.check", description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="+", type=_module, help="lab numbers or exercise modules, e.g. 2 or adversarial")
    args = parser.parse_args(argv)
    passed = total = 0
    for module in args.labs:
        for exercise in importlib.import_module(f"labkit.check.{module}").EXERCISES:
            passed += exercise().passed
            total += 1
            print(flush=True)
    print(f"{passed}/{total} exercises pass" + (" - well done!" if passed == total else ""))
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
