"""Edits to an exercise file take effect in the next cell, without %autoreload (labkit.reload).

Each test runs Lab 1's set-up cells from the student notebook in a fresh IPython shell, in a
subprocess, on a copy of the student package; between two cells it saves the reference
``saliency.py`` over the stub, as a student saves their work, and checks that the next cell runs the
new code: through the public check, through names imported with ``from labkit.saliency import ...``
(also ``as`` aliases), and through an old reference kept in a list.

The Colab case: IPython 7.34 (Colab's, which can't be upgraded there) with ``imp`` unimportable
(Python >= 3.12), where ``%load_ext autoreload`` fails. IPython 7.34 is pip-installed once into
``build/test-cache/`` (it can't share the venv with ipykernel's IPython); without the package index
that test skips, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from labkit_course.repo import REPO, SOLUTIONS

IPYTHON_7 = REPO / "build" / "test-cache" / "ipython-7.34"

SCRIPT = textwrap.dedent(r'''
    import json, os, shutil, sys, time
    if os.environ.get("BLOCK_IMP"):
        sys.modules["imp"] = None          # Python >= 3.12: `imp` is gone
    import IPython
    from IPython.core.interactiveshell import InteractiveShell

    tree, reference, setup = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    shell = InteractiveShell.instance()
    facts = {"ipython": IPython.__version__}

    def run(code):
        result = shell.run_cell(code)
        return result.success, repr(result.error_before_exec or result.error_in_exec)

    facts["autoreload_loads"] = run("%load_ext autoreload")[0]
    facts["setup"] = [run(cell) for cell in setup]
    facts["before"] = run("""
    import labkit.saliency
    from labkit.check.toys import LinearClassifier
    from labkit.saliency import smoothgrad as sg
    kept = [input_gradients]
    x = torch.rand(2, 3, 8, 8)
    assert not check.saliency.input_gradients(verbose=False).implemented
    """)
    student_file = os.path.join(tree, "labkit", "saliency.py")
    shutil.copy(reference, student_file)   # the student saves their work: same second, same path
    facts["after"] = run("""
    assert check.saliency.input_gradients(verbose=False).passed
    assert input_gradients is labkit.saliency.input_gradients      # the name imported in the set-up cell
    assert input_gradients(LinearClassifier(), x, 0).shape == (2, 3, 8, 8)
    assert kept[0](LinearClassifier(), x, 1).shape == (2, 3, 8, 8)  # an old reference runs the new code
    assert sg is labkit.saliency.smoothgrad                        # an `as` alias
    """)
    with open(student_file, "a") as f:
        f.write("\ndef broken(:\n")                               # a half-typed edit
    facts["broken"] = run("assert input_gradients(LinearClassifier(), x, 0).shape == (2, 3, 8, 8)")
    with open(student_file, "a") as f:
        f.write("    pass\n")
    shutil.copy(reference, student_file)
    with open(student_file, "a") as f:
        f.write("\nNEW_NAME = 42\n")
    facts["fixed"] = run(
        "assert labkit.saliency.NEW_NAME == 42 and check.saliency.input_gradients(verbose=False).passed"
    )
    print("FACTS" + json.dumps(facts))
''')


def _setup_cells() -> list[str]:
    """Lab 1's set-up as students get it: every code cell before the parameters cell."""
    nb = nbformat.read(REPO / "notebooks" / "01_saliency.ipynb", as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.metadata.get("tags", []):
            break
        cells.append(cell.source)
    return cells


def _ipython_7() -> Path:
    if not (IPYTHON_7 / "IPython").exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(IPYTHON_7),
            "ipython==7.34.0",
            "backcall",
            "pickleshare",
            "decorator",
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:
            shutil.rmtree(IPYTHON_7, ignore_errors=True)
            pytest.skip(
                "IPython 7.34 (Colab's) is not installed in build/test-cache/ and pip could not fetch it "
                "(no package index?): " + (done.stderr.strip().splitlines()[-1] if done and done.stderr else "timeout")
            )
    return IPYTHON_7


def _run(tmp_path: Path, extra_path: Path | None, block_imp: bool) -> dict:
    tree = tmp_path / "student"
    shutil.copytree(REPO / "labkit", tree / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        LABKIT_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(str(p) for p in (extra_path, tree) if p),
    )
    if block_imp:
        env["BLOCK_IMP"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(tree),
            str(SOLUTIONS / "labkit" / "saliency.py"),
            json.dumps(_setup_cells()),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    facts = next((line[5:] for line in done.stdout.splitlines() if line.startswith("FACTS")), None)
    assert facts, f"the shell did not finish:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    facts = json.loads(facts)
    facts["stderr"] = done.stderr
    return facts


def _assert_edits_take_effect(facts: dict) -> None:
    assert all(ok for ok, _ in facts["setup"]), f"a set-up cell failed: {facts['setup']}"
    assert facts["before"][0], facts["before"]
    assert facts["after"][0], f"the saved edit was not used by the next cell: {facts['after']}"
    assert facts["broken"][0], f"a half-typed file broke the notebook: {facts['broken']}"
    assert "could not reload" in facts["stderr"] and "line " in facts["stderr"], facts["stderr"][-2000:]
    assert facts["fixed"][0], f"the fixed file was not picked up: {facts['fixed']}"


@pytest.mark.slow
def test_edits_take_effect_on_colab_ipython_7_without_imp(tmp_path):
    """Colab 2026: Python >= 3.12 (no `imp`), IPython 7.34, whose autoreload can't even load."""
    facts = _run(tmp_path, _ipython_7(), block_imp=True)
    assert facts["ipython"] == "7.34.0"
    assert not facts["autoreload_loads"], "this environment should reproduce Colab's broken %autoreload"
    _assert_edits_take_effect(facts)


@pytest.mark.slow
def test_edits_take_effect_on_the_installed_ipython(tmp_path):
    facts = _run(tmp_path, None, block_imp=False)
    _assert_edits_take_effect(facts)


def test_no_notebook_depends_on_autoreload():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((SOLUTIONS / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert not any("autoreload" in source for source in code), f"{path.name} uses %autoreload"
        assert any("watch_exercises()" in source for source in code[:3]), f"{path.name}: set-up doesn't watch edits"


def test_watch_exercises_is_harmless_outside_ipython():
    from labkit.reload import reload_changed, watch_exercises

    assert watch_exercises() is False
    assert reload_changed({}) == []
