"""The same judge as a Gradescope autograder.

    labkit-course gradescope build 2 --out autograder.zip     # upload this to Gradescope
    labkit-course gradescope run --root /autograder           # what run_autograder runs there

:func:`build_zip` writes a complete ``autograder.zip``:

* ``setup.sh``: installs bubblewrap (apt) and this project (pip, into ``/autograder/venv``);
* ``run_autograder``: runs :func:`run_autograder` with that Python;
* ``project/``: the ``labkit`` and ``labkit_course`` packages and ``pyproject.toml``;
* ``lab/``: ``lab.json`` (the lab, points per exercise), the student-side ``labkit`` package of the
  release, the reference module and the hidden tests, and ``secret`` (a per-course secret for the seeds).

:func:`run_autograder` finds the student's ``<module>.py`` in ``submission/``, judges it in the
sandbox (required: no bubblewrap, no grade), and writes ``results/results.json``, one test per
exercise, from this trusted process only. Paths hang off ``root`` so a fake ``/autograder`` tree in
a temporary folder runs the same code (the tests do).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from labkit.labs import LABS, Lab

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, on its Ubuntu image, when the autograder is built.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap python3-venv python3-pip
python3 -m venv /autograder/venv
# PyTorch's CPU wheels: the default Linux wheels carry CUDA (gigabytes that Gradescope has no use for)
/autograder/venv/bin/pip install -q torch torchvision --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install -q /autograder/source/project
"""
RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission. The student's code runs in bubblewrap; only this
# trusted process writes results/results.json.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{LABKIT_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
exec "$PYTHON" -m labkit_course gradescope run --root "$ROOT" --sandbox {sandbox}
"""


def exercise_points(lab: Lab, repo: Path) -> dict[str, float]:
    """Points per exercise: each autograded test cell's points, shared by the exercises it checks."""
    import nbformat

    from labkit_course.build import test_cell_exercises
    from labkit_course.judge import hidden_tests

    solved = nbformat.read(repo / "solutions" / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    exercises = list(hidden_tests(lab.module, repo / "labkit_course" / "hidden").EXERCISES)
    cell_points = {
        c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader.get("points", 0))
        for c in solved.cells
        if "nbgrader" in c.metadata
    }
    points: dict[str, float] = {}
    for gid, called in test_cell_exercises(solved, exercises).items():
        for name in called:
            points[name] = points.get(name, 0.0) + cell_points[gid] / len(called)
    return points


def build_zip(
    lab: Lab | int, out: Path, *, repo: Path | None = None, secret: str | None = None, sandbox_mode: str = "require"
) -> Path:
    """Write Gradescope's ``autograder.zip`` for ``lab`` to ``out``; see the module doc.

    ``sandbox_mode="fallback"`` makes a zip that grades even where bubblewrap cannot run (a
    container that forbids namespaces), with resource limits only, and says so in every result."""
    from labkit_course.repo import REPO
    from labkit_course.sync import stub_source

    repo = Path(REPO if repo is None else repo)
    lab = LABS[lab] if isinstance(lab, int) else lab
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "autograder"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        project = tree / "project"
        shutil.copytree(repo / "labkit", project / "labkit", ignore=skip)
        shutil.copytree(REPO / "labkit_course", project / "labkit_course", ignore=skip)  # the tools: always ours
        for module in (p.stem for p in (repo / "solutions" / "labkit").glob("*.py")):  # no solutions in labkit
            text = (repo / "solutions" / "labkit" / f"{module}.py").read_text(encoding="utf-8")
            (project / "labkit" / f"{module}.py").write_text(stub_source(text, module), encoding="utf-8")
        shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
        (project / "README.md").write_text("labkit: the course's packages, for the Gradescope autograder.\n")
        lab_dir = tree / "lab"
        shutil.copytree(project / "labkit", lab_dir / "labkit")
        (lab_dir / "reference").mkdir()
        shutil.copy(repo / "solutions" / "labkit" / f"{lab.module}.py", lab_dir / "reference")
        (lab_dir / "hidden").mkdir()
        shutil.copy(repo / "labkit_course" / "hidden" / f"{lab.module}.py", lab_dir / "hidden")
        (lab_dir / "secret").write_text(secret or secrets.token_hex(16))
        (lab_dir / "lab.json").write_text(
            json.dumps({"lab": lab.__dict__, "points": exercise_points(lab, repo)}, indent=1)
        )
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER.format(sandbox=sandbox_mode))):
            (tree / name).write_text(text)
            os.chmod(tree / name, 0o755)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(tree.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(tree))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, path.read_bytes())
    return out


def _student_id(root: Path) -> str:
    try:
        meta = json.loads((root / "submission_metadata.json").read_text())
        users = meta.get("users") or [{}]
        return str(users[0].get("email") or users[0].get("id") or meta.get("id") or "gradescope")
    except (OSError, ValueError, AttributeError):
        return "gradescope"


def _find_module(submission: Path, module: str) -> Path | None:
    """The student's ``labkit/<module>.py`` (or ``<module>.py``) anywhere in the submission; no links."""
    found = [p for p in submission.rglob(f"{module}.py") if p.is_file() and not p.is_symlink()]
    found.sort(key=lambda p: (p.parent.name != "labkit", len(p.parts)))
    return found[0] if found else None


def run_autograder(root: Path = Path("/autograder"), *, sandbox_mode: str = "require") -> dict:
    """Judge ``root/submission`` and write ``root/results/results.json``; return the results."""
    from labkit_course.grading import student_seed
    from labkit_course.judge import judge
    from labkit_course.sandbox import Limits, SandboxUnavailable

    root = Path(root)
    lab_dir = root / "source" / "lab"
    info = json.loads((lab_dir / "lab.json").read_text())
    lab, points = Lab(**info["lab"]), info["points"]
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    student_file = _find_module(root / "submission", lab.module)
    tests, output = [], ""
    if student_file is None:
        output = (
            f"No {lab.module}.py was found in your submission: upload labkit/{lab.module}.py, the file you filled in."
        )
        student_file = lab_dir / "labkit" / f"{lab.module}.py"
    try:
        judgement = judge(
            lab.module,
            student_file,
            student_seed((lab_dir / "secret").read_text().strip(), f"lab{lab.number}", _student_id(root)),
            labkit_dir=lab_dir / "labkit",
            hidden_dir=lab_dir / "hidden",
            reference_dir=lab_dir / "reference",
            limits=Limits(wall_timeout=600, memory_mb=3072),
            sandbox_mode=sandbox_mode,
        )
        for name, verdict in judgement.verdicts.items():
            weight = float(points.get(name, 1.0))
            tests.append(
                {
                    "name": name,
                    "number": name,
                    "score": weight if verdict.passed else 0.0,
                    "max_score": weight,
                    "status": "passed" if verdict.passed else "failed",
                    "output": verdict.message,
                    "visibility": "visible",
                }
            )
        if judgement.flags:
            output += "\nYour module was flagged for review by an instructor: " + "; ".join(judgement.flags[:5])
            for t in tests:
                t["score"] = 0.0
        if not judgement.sandboxed:
            output += "\n" + "; ".join(judgement.notes)
    except SandboxUnavailable as exc:
        output = f"The autograder is misconfigured ({exc}); nothing was graded. Please tell your instructor."
    results = {
        "score": round(sum(t["score"] for t in tests), 4),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "output": output.strip(),
        "tests": tests,
    }
    tmp = results_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, results_path)
    os.chmod(results_path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    return results
