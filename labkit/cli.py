"""The ``labkit`` command.

    labkit sync [--check]        regenerate student files from solutions/ (--check: fail if stale)
    labkit run [--labs 1,3] [--quick] [--out build/run]
                                 execute the solved notebooks headless, offline; report time and memory
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def _labs(text: str | None):
    from labkit.course import LABS, available_labs

    if not text:
        return available_labs()
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--labs takes comma-separated lab numbers, e.g. 1,3; got {text!r}") from None
    unknown = [n for n in numbers if n not in LABS]
    if unknown:
        raise SystemExit(f"no lab {unknown}; labs are {sorted(LABS)}")
    return [LABS[n] for n in numbers]


def cmd_sync(args) -> int:
    from labkit.course import REPO, sync

    stale = sync(check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    if args.check and stale:
        print("student files are out of date with solutions/: run `labkit sync`", file=sys.stderr)
        return 1
    if not stale:
        print("student files are in sync with solutions/")
    return 0


def cmd_run(args) -> int:
    import nbformat

    from labkit.course import execute_notebook, solved_tree

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        tree = solved_tree(Path(tmp))
        for lab in _labs(args.labs):
            path = tree / "notebooks" / f"{lab.notebook}.ipynb"
            params = None
            if args.quick:
                params = nbformat.read(path, as_version=4).metadata.get("labkit", {}).get("quick_parameters")
            print(f"lab {lab.number} ({lab.title}): running...", flush=True)
            result = execute_notebook(path, cwd=tree / "notebooks", pythonpath=tree, parameters=params)
            nbformat.write(result.notebook, out / f"{lab.notebook}.ipynb")
            status = "FAILED" if result.error else "ok"
            failed += bool(result.error)
            print(f"lab {lab.number}: {status} in {result.seconds:.0f} s, peak kernel memory "
                  f"{result.peak_rss_mb:.0f} MB -> {out / (lab.notebook + '.ipynb')}")
            if result.error:
                print(str(result.error)[-2000:], file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labkit", description="Course tools for the labkit labs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sync", help="regenerate student files from solutions/")
    p.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("run", help="execute the solved notebooks headless and offline")
    p.add_argument("--labs", help="comma-separated lab numbers (default: all)")
    p.add_argument("--quick", action="store_true", help="use each notebook's quick parameters")
    p.add_argument("--out", default="build/run", help="where to write executed notebooks")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
