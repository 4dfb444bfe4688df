"""Measure every budget of the course on this machine: `python -m benchmarks.run [--quick] [--labs 1,2]`.

Each lab's module ``benchmarks/<module>.py``, and each course-wide one (grading, Binder, Gradescope),
exposes ``budgets(quick) -> list[row]``; this script finds them (:func:`suites`), runs them in order,
each in a fresh process (peak memory is per suite), prints PASS/FAIL next to each number, and writes
``benchmarks/RESULTS.md`` and (full runs only) the README's results section: one table per suite, each
with the date, machine and load it was measured at. ``--labs`` re-measures only those suites and keeps
the other suites' tables from the previous file, so two partial runs (say, the labs beside another job
and the grading on a quiet machine) make one report.
Quick mode runs everything on tiny inputs: its numbers say nothing about the budgets,
it only proves the scripts still work (the test suite runs it).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import sys
import time
from pathlib import Path

from labkit.labs import LABS

ROOT = Path(__file__).resolve().parents[1]


def suites(folder: Path = ROOT / "benchmarks") -> dict[str, str]:
    """Suite name -> module of ``folder``: every module that defines ``budgets``, a lab's under its number
    (lab order), then the others under their own name (alphabetical)."""
    found = {p.stem for p in folder.glob("*.py") if re.search(r"^def budgets\(", p.read_text(encoding="utf-8"), re.M)}
    labs = {str(n): lab.module for n, lab in LABS.items() if lab.module in found}
    return {**labs, **{name: name for name in sorted(found - set(labs.values()))}}


SUITES = suites()


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = f"load average {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}, {load}"


def _suite(name: str, quick: bool) -> list[dict]:
    module = importlib.import_module(f"benchmarks.{name}")
    return module.budgets(quick=quick)


def run_suite(name: str, quick: bool) -> list[dict]:
    """One suite in a fresh process, so peak-memory numbers and thread settings are its own."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_suite, (name, quick))


def table(rows: list[dict]) -> str:
    lines = ["| lab | budget | measured | |", "|---|---|---|---|"]
    lines += [f"| {r['lab']} | {r['budget']} | {r['value']} | {'PASS' if r['ok'] else 'FAIL'} |" for r in rows]
    return "\n".join(lines)


_SECTION = re.compile(r"<!-- suite (\w+) -->\n.*?<!-- /suite -->\n", re.S)


def section(suite: str, header: str, rows: list[dict]) -> str:
    """One suite's part of the report, between markers :func:`merge_report` can find again."""
    return f"<!-- suite {suite} -->\n**{suite}**: {header}\n\n{table(rows)}\n<!-- /suite -->\n"


def merge_report(previous: str, sections: dict[str, str]) -> str:
    """The report: ``sections`` (suite -> :func:`section`) plus the sections of ``previous`` for the
    suites not re-measured, in :data:`SUITES` order. Text outside the markers (an older format) is dropped."""
    kept = {m.group(1): m.group(0) for m in _SECTION.finditer(previous)}
    merged = {**kept, **sections}
    return "\n".join(merged[s] for s in SUITES.values() if s in merged)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test of the scripts")
    parser.add_argument("--labs", default=",".join(SUITES), help=f"comma-separated, from {','.join(SUITES)}")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args(argv)
    rows, sections = [], {}
    for key in args.labs.split(","):
        if key not in SUITES:
            parser.error(f"unknown suite {key!r}; choose from {','.join(SUITES)}")
        print(f"== {SUITES[key]} ==", flush=True)
        start = time.perf_counter()
        try:
            got = run_suite(SUITES[key], args.quick)
        except Exception as exc:  # one broken suite must not hide the others' numbers
            got = [
                {
                    "lab": key,
                    "budget": f"{SUITES[key]} benchmark ran",
                    "value": f"{type(exc).__name__}: {exc}"[:120],
                    "ok": False,
                }
            ]
        for r in got:
            print(f"  {'PASS' if r['ok'] else 'FAIL'}  {r['budget']}: {r['value']}", flush=True)
        rows += got
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        mode = "quick smoke run (numbers meaningless)" if args.quick else "full run"
        header = f"measured {when} on {machine()}; {mode}, {time.perf_counter() - start:.0f} s."
        sections[SUITES[key]] = section(SUITES[key], header, got)
    out = Path(args.out)
    report = merge_report(out.read_text() if out.exists() else "", sections)
    out.write_text(report)
    if not args.quick and args.out == parser.get_default("out"):
        readme = ROOT / "README.md"
        text = readme.read_text()
        text = re.sub(
            r"<!-- BENCHMARKS -->.*<!-- /BENCHMARKS -->",
            f"<!-- BENCHMARKS -->\n{report}<!-- /BENCHMARKS -->",
            text,
            flags=re.S,
        )
        readme.write_text(text)
    print(f"\n{report}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
