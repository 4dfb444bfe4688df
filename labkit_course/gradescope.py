"""The same judge as a Gradescope autograder.

    labkit-course gradescope build 2 --out autograder.zip     # upload this to Gradescope
    labkit-course gradescope run --root /autograder           # what run_autograder runs there

:func:`build_zip` writes a complete ``autograder.zip``:

* ``setup.sh``: installs bubblewrap and python3-seccomp (apt), and this project non-editably with
  PyTorch's CPU build (pip, into ``/autograder/venv``);
* ``run_autograder``: runs :func:`run_autograder` with that Python;
* ``project/``: the ``labkit`` package (exercise modules as stubs) and ``labkit_course`` without the
  hidden tests, and ``pyproject.toml``: what gets installed, so nothing the sandbox can read holds
  a hidden test or a reference;
* ``lab/``: ``lab.json`` (the lab, points per exercise), the student-side ``labkit`` package of the
  release, the reference module and the hidden tests, and ``secret`` (a per-course secret for the seeds),
  readable by root only.

:func:`run_autograder` finds the student's ``<module>.py`` in ``submission/``, judges it in the
sandbox (bubblewrap, or where Gradescope's container forbids namespaces, the uid-drop sandbox; with
neither, no grade), and writes ``results/results.json``, one test per exercise, from this trusted
process only, plus an instructors-only entry that says which sandbox ran. A failure of the harness
(the sandbox, the worker, this code) is never a student's 0: results.json then has no score, the
student reads that the autograder failed, the instructor reads why. Paths hang off ``root`` so a
fake ``/autograder`` tree in a temporary folder runs the same code (the tests do).
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

from labkit.labs import Lab, get_lab

# Pinned: the CPU build Gradescope installs, and the torchvision made for it.
TORCH, TORCHVISION = "torch==2.13.0+cpu", "torchvision==0.28.0"
SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, on its Ubuntu image, when the autograder is built. It installs
# the project non-editably, as the grading will use it. LABKIT_VENV (default /autograder/venv),
# LABKIT_SETUP_PYTHON (default python3) and LABKIT_TORCH_INDEX (default PyTorch's CPU wheels; empty:
# pip's own configuration) let a test build the same environment elsewhere.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${{LABKIT_VENV:-/autograder/venv}}"
TORCH_INDEX="${{LABKIT_TORCH_INDEX-https://download.pytorch.org/whl/cpu}}"
# bubblewrap: the sandbox where namespaces are allowed; python3-seccomp: the uid-drop sandbox's filter,
# where they are not (Gradescope's Docker); python3-venv: the environment below.
if ! command -v bwrap >/dev/null || ! /usr/bin/python3 -c "import seccomp, venv, ensurepip" 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap python3-seccomp python3-venv python3-pip
fi
"${{LABKIT_SETUP_PYTHON:-python3}}" -m venv "$VENV"
# The CPU build: the default Linux wheels carry CUDA (gigabytes that Gradescope has no use for)
"$VENV/bin/pip" install -q ${{TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"}} "{torch}" "{torchvision}"
"$VENV/bin/pip" install -q "$HERE/project"
# What the student's code must never read (the uid-drop sandbox sees the host's files): owner only
chmod 700 "$HERE/lab"
"""
RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission. The student's code runs sandboxed; only this trusted
# process writes results/results.json, and it always writes one (a harness failure says so, scoreless).
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{LABKIT_AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
"$PYTHON" -m labkit_course gradescope run --root "$ROOT" --sandbox {sandbox}
code=$?
if [ ! -s "$ROOT/results/results.json" ]; then
    why="The autograder itself failed (exit code $code) before it could grade: nothing was graded."
    mkdir -p "$ROOT/results"
    echo "{{\"output\": \"$why Please tell your instructor.\", \"visibility\": \"visible\", \"tests\": []}}" \
        > "$ROOT/results/results.json"
fi
exit "$code"
"""


def exercise_points(lab: Lab, repo: Path) -> dict[str, float]:
    """Points per exercise (:func:`labkit_course.scoring.exercise_points`) of the solved notebook's test cells."""
    import nbformat

    from labkit_course import scoring
    from labkit_course.sync import cell_exercises

    solved = nbformat.read(repo / "solutions" / "notebooks" / f"{lab.notebook}.ipynb", as_version=4)
    cell_points = {
        c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader.get("points", 0))
        for c in solved.cells
        if "nbgrader" in c.metadata
    }
    return scoring.exercise_points(cell_exercises(solved), cell_points)


def build_zip(
    lab: Lab | int, out: Path, *, repo: Path | None = None, secret: str | None = None, sandbox_mode: str = "require"
) -> Path:
    """Write Gradescope's ``autograder.zip`` for ``lab`` to ``out``; see the module doc.

    ``sandbox_mode="fallback"`` makes a zip that grades even where no sandbox works (neither
    bubblewrap nor, as root, the uid-drop sandbox), with resource limits only, and says so in every result."""
    from labkit_course.repo import REPO
    from labkit_course.sync import student_package

    repo = Path(REPO if repo is None else repo)
    lab = lab if isinstance(lab, Lab) else get_lab(lab)
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "autograder"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        project = tree / "project"
        student_package(repo, project / "labkit")
        # the tools (always ours), without the hidden tests: the sandbox can read what is installed
        shutil.copytree(REPO / "labkit_course", project / "labkit_course", ignore=skip)
        shutil.rmtree(project / "labkit_course" / "hidden")
        pyproject = (REPO / "pyproject.toml").read_text()
        if ', "labkit_course.hidden"]' not in pyproject:
            raise RuntimeError("pyproject.toml's package list changed: update build_zip's hidden-test exclusion")
        (project / "pyproject.toml").write_text(pyproject.replace(', "labkit_course.hidden"]', "]"))
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
        scripts = {
            "setup.sh": SETUP_SH.format(torch=TORCH, torchvision=TORCHVISION),
            "run_autograder": RUN_AUTOGRADER.format(sandbox=sandbox_mode),
        }
        for name, text in scripts.items():
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
    """Judge ``root/submission`` and write ``root/results/results.json``; return the results.

    Never raises: a failure of the harness writes a scoreless results.json that names the cause (for
    the instructor, in an instructors-only test and in stdout, which Gradescope shows them only)."""
    root = Path(root)
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        results = _grade(root, sandbox_mode)
    except Exception as exc:  # noqa: BLE001 -- the harness failed: say so, never as a student's 0
        from labkit_course.sandbox import SandboxUnavailable

        why = str(exc) if isinstance(exc, SandboxUnavailable) else f"grader error: {type(exc).__name__}: {exc}"
        results = {
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "output": (
                "The autograder failed to run, through no fault of your submission; nothing was graded and "
                "no score was given. Your instructor has been shown why; please tell them too."
            ),
            "tests": [_for_instructors(f"NOT GRADED: the autograder failed: {why}")],
            "extra_data": {"harness_error": why},
        }
        print(f"labkit autograder: NOT GRADED: {why}", flush=True)
    tmp = results_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, results_path)
    os.chmod(results_path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    return results


def _for_instructors(text: str, graded: bool = False) -> dict:
    """A test only instructors see (Gradescope's "hidden" visibility), worth nothing: 0 of 0 points
    when the submission was graded, no score at all when it wasn't."""
    return {
        "name": "Autograder (instructors only)",
        "status": "passed" if graded else "failed",
        "output": text,
        "visibility": "hidden",
        **({"score": 0.0, "max_score": 0.0} if graded else {}),
    }


def exercise_tests(verdicts: dict, points: dict[str, float], flagged: bool) -> list[dict]:
    """results.json's test entries, one per judged exercise, scored by the one scoring rule
    (:func:`labkit_course.scoring.exercise_scores`): its points (``points``, from lab.json; 1 for an
    exercise it doesn't name) if the judge passed it and the submission isn't ``flagged``, else 0."""
    from labkit_course.scoring import exercise_scores

    weights = {name: float(points.get(name, 1.0)) for name in verdicts}
    scores = exercise_scores(weights, verdicts, flagged)
    return [
        {
            "name": name,
            "number": name,
            "score": scores[name],
            "max_score": weights[name],
            "status": "passed" if verdict.passed else "failed",
            "output": verdict.message,
            "visibility": "visible",
        }
        for name, verdict in verdicts.items()
    ]


def _grade(root: Path, sandbox_mode: str) -> dict:
    from labkit_course import sandbox
    from labkit_course.build import assignment_id
    from labkit_course.grading import student_seed
    from labkit_course.judge import judge

    lab_dir = root / "source" / "lab"
    sandbox.protect(lab_dir)  # the secret, the reference and the hidden tests: root's only
    sandbox.protect(root / "submission")  # read here, by root; the sandbox gets its own copy
    info = json.loads((lab_dir / "lab.json").read_text())
    lab, points = Lab(**info["lab"]), info["points"]
    student_file = _find_module(root / "submission", lab.module)
    output = ""
    if student_file is None:
        output = (
            f"No {lab.module}.py was found in your submission: upload labkit/{lab.module}.py, the file you filled in."
        )
        student_file = lab_dir / "labkit" / f"{lab.module}.py"
    judgement = judge(
        lab.module,
        student_file,
        student_seed((lab_dir / "secret").read_text().strip(), assignment_id(lab), _student_id(root)),
        labkit_dir=lab_dir / "labkit",
        hidden_dir=lab_dir / "hidden",
        reference_dir=lab_dir / "reference",
        limits=sandbox.Limits(wall_timeout=600, memory_mb=3072),
        sandbox_mode=sandbox_mode,
    )
    flagged = bool(judgement.flags)
    tests = exercise_tests(judgement.verdicts, points, flagged)
    if flagged:
        output += "\nYour module was flagged for review by an instructor: " + "; ".join(judgement.flags[:5])
    used = judgement.sandboxed or "none (--sandbox=fallback)"
    about = "; ".join([f"sandbox: {used}", *judgement.notes])
    print(f"labkit autograder: {about}", flush=True)
    return {
        "score": round(sum(t["score"] for t in tests), 4),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "output": output.strip(),
        "tests": [*tests, _for_instructors(about, graded=True)],
        "extra_data": {"sandbox": judgement.sandboxed or "none"},
    }
