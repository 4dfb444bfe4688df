"""The doors the README opens besides `make lab`: conda, Binder, Colab.

* every pip line of ``environment.yml`` and ``binder/environment.yml`` is valid in a requirements
  file (conda hands pip that list as one), by pip's own parser;
* test-only dependencies with broken pins (torchattacks) stay out of the user environments;
* ``binder/postBuild`` runs in a fresh environment without the network, and leaves labkit importable;
* the Colab install (the command of every notebook's Colab cell) upgrades none of Colab's torch,
  torchvision and numpy: ``pip install --dry-run --report`` into an environment that already has them;
  and on Colab's Python 3.13, everything resolves next to its torch, numpy, IPython 7.34 and ipykernel.
  Those two need the package index, and skip saying so without it;
* the self-grading command README and every notebook give, ``python -m labkit.check N``, works in a
  student install (a fresh clone and venv with ``pip install -e ".[lab]"``, no pytest).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit_course.colab import KEEP
from labkit_course.repo import REPO

ENVIRONMENTS = [REPO / "environment.yml", REPO / "binder" / "environment.yml"]
#: Colab 2026's preinstalled versions (Python 3.13, torch 2.11, torchvision 0.26, numpy 2.1)
COLAB = {"torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.2"}
#: Colab's Jupyter kernel, which an upgrade would break (its IPython 7.34 is pinned by google-colab)
COLAB_KERNEL = {"ipython": "7.34.0", "ipykernel": "6.17.1"}
#: dependencies of the test suite only, whose pins would break a user's environment
TEST_ONLY = ("torchattacks", "pytest", "playwright")

pytestmark = [
    pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Setuptools is replacing distutils:UserWarning"),
]


def _pip_lines(path: Path) -> list[str]:
    """The entries of the ``pip:`` list of a conda environment file (no YAML library needed)."""
    lines, inside, indent = [], False, None
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("- pip:", "-  pip:"):
            inside, indent = True, len(raw) - len(raw.lstrip())
            continue
        if inside:
            if len(raw) - len(raw.lstrip()) <= indent:
                break
            assert stripped.startswith("- "), f"{path.name}: unexpected line under pip: {raw!r}"
            lines.append(stripped[2:].split(" #")[0].strip())
    return lines


@pytest.mark.parametrize("path", ENVIRONMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_conda_pip_lines_are_a_valid_requirements_file(path, tmp_path):
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    lines = _pip_lines(path)
    # conda writes the list next to the environment file; `-e .` is relative to it
    requirements = path.parent / f".test-requirements-{os.getpid()}.txt"
    requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        parsed = list(parse_requirements(str(requirements), session=PipSession()))
    finally:
        requirements.unlink()
    assert len(parsed) == len(lines)
    assert not any(name in line for line in lines for name in TEST_ONLY), f"{path.name} installs a test dependency"


def test_the_pip_line_parser_rejects_what_conda_would():
    """The old environment.yml line: pip refuses an option it doesn't accept in requirements files."""
    from pip._internal.exceptions import RequirementsFileParseError
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import parse_requirements

    bad = REPO / "build" / f".bad-requirements-{os.getpid()}.txt"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("--no-deps torchattacks>=3.4\n")
    try:
        with pytest.raises((RequirementsFileParseError, SystemExit)):
            list(parse_requirements(str(bad), session=PipSession()))
    finally:
        bad.unlink()


def test_user_environments_leave_out_test_dependencies():
    texts = {p.name: p.read_text() for p in [*ENVIRONMENTS, REPO / "binder" / "postBuild"]}
    for name, text in texts.items():
        assert "torchattacks" not in text and "pytest" not in text, f"{name} installs a test dependency"
    assert "[dev]" not in (REPO / "environment.yml").read_text()


def _fresh_env(path: Path, packages: dict[str, str], with_test_packages: bool) -> Path:
    """A venv without labkit; ``packages`` are registered as installed (a dist-info, no code).

    ``with_test_packages``: the test environment's packages are visible (a ``.pth`` line), standing for
    a conda environment that holds labkit's dependencies.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    if with_test_packages:
        import sysconfig

        (site / "test-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        requires = {"torchvision": f"Requires-Dist: torch=={packages['torch']}\nRequires-Dist: numpy\n"}.get(name, "")
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _offline_env() -> dict[str, str]:
    """Environment variables under which pip and urllib can't reach anything."""
    dead = "http://127.0.0.1:9"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("PIP_")}
    env.update(
        HTTP_PROXY=dead,
        HTTPS_PROXY=dead,
        http_proxy=dead,
        https_proxy=dead,
        ALL_PROXY=dead,
        NO_PROXY="",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


@pytest.mark.slow
def test_binder_postbuild_runs_offline_in_a_fresh_environment(tmp_path):
    """A fresh environment holding labkit's dependencies (as binder/environment.yml makes it), no network:
    postBuild installs labkit and downloads nothing into the image (the labs run offline)."""
    python = _fresh_env(tmp_path / "env", {}, with_test_packages=True)
    repo = tmp_path / "repo"
    shutil.copytree(
        REPO,
        repo,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "notebooks", "tests", "docs"
        ),
    )
    env = _offline_env()
    env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path / "home")  # torch.hub and the CIFAR cache go here, not to ~
    env.pop("PYTHONPATH", None)
    env.pop("LABKIT_OFFLINE", None)  # the real code path: downloads fail, postBuild goes on
    done = subprocess.run(
        ["bash", str(repo / "binder" / "postBuild")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )
    assert done.returncode == 0, f"postBuild failed offline:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert not (tmp_path / "home" / ".cache" / "torch").exists(), "postBuild pre-fetched something"
    where = subprocess.run(
        [python, "-c", "import labkit.reload, labkit.models; print(labkit.models.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(repo), where.stderr[-2000:]


def _planned_install(tmp_path, keep: dict, python=None, install_options=()) -> dict:
    """What ``pip install -e REPO -c keep.txt`` (the Colab cell's command) would install, as a dry run
    into ``python``'s environment (default: an empty one, with ``install_options`` saying for which
    interpreter): ``{name: version}``. Skips if the package index is not reachable."""
    constraints = tmp_path / "keep.txt"
    # what the Colab cell writes: the installed versions, as constraints
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in keep.items()))
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", *(["--python", str(python)] if python else []), "install", *install_options]
    cmd += ["--dry-run", "--quiet", "--report", str(report), "-e", str(REPO), "-c", str(constraints)]
    env = {k: v for k, v in os.environ.items() if k != "PIP_NO_INDEX"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0 and any(
        s in done.stderr
        for s in ("NewConnectionError", "Could not find a version", "No matching distribution", "ProxyError")
    ):
        pytest.skip("the package index is not reachable: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


@pytest.mark.slow
@pytest.mark.network
def test_colab_install_keeps_the_preinstalled_torch_torchvision_numpy(tmp_path):
    """The Colab cell's command, as a dry run into an environment that already has Colab's torch,
    torchvision and numpy: pip must plan to install none of them."""
    python = _fresh_env(tmp_path / "colab", COLAB, with_test_packages=False)
    planned = _planned_install(tmp_path, {name: COLAB[name] for name in KEEP}, python=python)
    assert "labkit" in planned and "captum" in planned
    replaced = {name: planned[name] for name in KEEP if name in planned}
    assert not replaced, f"installing labkit on Colab would replace {replaced} (a runtime restart)"


@pytest.mark.slow
@pytest.mark.network
def test_colab_install_resolves_on_python_3_13_with_colabs_versions(tmp_path):
    """Colab runs Python 3.13 with IPython 7.34 and ipykernel 6.17, which must not move either: every
    dependency resolves to a Python 3.13 wheel next to Colab's pinned versions (pip's dry run for
    another interpreter: ``--python-version 3.13 --only-binary :all: --target``)."""
    keep = {**{name: COLAB[name] for name in KEEP}, **COLAB_KERNEL}
    for_colab = ("--python-version", "3.13", "--only-binary", ":all:", "--target", str(tmp_path / "site"))
    planned = _planned_install(tmp_path, keep, install_options=for_colab)
    assert "labkit" in planned and "captum" in planned
    moved = {name: planned[name] for name in keep if planned.get(name, keep[name]) != keep[name]}
    assert not moved, f"on Python 3.13, installing labkit would move {moved}"


def test_colab_cell_pins_what_the_install_test_pins():
    from labkit.labs import LABS
    from labkit_course.colab import colab_cell

    cell = colab_cell("https://github.com/someone/fork", LABS[1])
    assert "-c" in cell and all(repr(name) in cell for name in KEEP)
    assert "https://github.com/someone/fork" in cell and "labkit > labkit > saliency.py" in cell
    compile(cell, "colab cell", "exec")
    textwrap.dedent(cell)


#: the CPU build of torch (what Binder's conda-forge gives; pip has it as a local wheel here): a student
#: install with PyPI's default CUDA build would copy gigabytes
CPU_TORCH = "torch==2.13.0+cpu"


@pytest.fixture(scope="module")
def student_install(tmp_path_factory):
    """README's student install: a fresh clone, a fresh venv, and ``pip install -e ".[lab]"`` in it (with
    CPU torch), nothing else. This venv's pip installs into it (``--python``: the student's venv needs no
    pip of its own for the test), without compiling bytecode (about a minute less; Python compiles on
    import what runs). Returns (clone, its python)."""
    root = tmp_path_factory.mktemp("student")
    clone, venv = root / "labkit", root / "venv"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile", CPU_TORCH]
    done = subprocess.run([*cmd, "-e", f"{clone}[lab]"], capture_output=True, text=True, timeout=1200)
    if done.returncode and ("No matching distribution" in done.stderr or "Could not find a version" in done.stderr):
        pytest.skip("pip can't install the student's packages here: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    return clone, python


@pytest.mark.slow
def test_self_grading_runs_in_a_student_install(student_install):
    """README's and every notebook's self-grading command, ``python -m labkit.check 2``, in the student
    install (no pytest there): the stub's reports and exit status 1, then, with the exercises written, 4/4."""
    clone, python = student_install
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LABKIT_OFFLINE"] = "1"

    def run(*args):
        return subprocess.run([python, *args], cwd=clone, capture_output=True, text=True, env=env, timeout=600)

    assert run("-c", "import pytest").returncode != 0, "the student install has pytest: test the path without it"
    where = run("-c", "import labkit.adversarial as m; print(m.__file__)")
    assert Path(where.stdout.strip()) == clone / "labkit" / "adversarial.py", where.stderr[-2000:]
    stub = run("-m", "labkit.check", "2")
    assert stub.returncode == 1, stub.stderr[-3000:]
    assert "adversarial.linear_adversarial: not implemented yet" in stub.stdout
    assert stub.stdout.rstrip().endswith("0/4 exercises pass") and "Traceback" not in stub.stdout + stub.stderr
    shutil.copy(REPO / "solutions" / "labkit" / "adversarial.py", clone / "labkit" / "adversarial.py")
    solved = run("-m", "labkit.check", "2")
    assert solved.returncode == 0, solved.stdout[-3000:] + solved.stderr[-3000:]
    assert solved.stdout.rstrip().endswith("4/4 exercises pass - well done!") and "FAIL" not in solved.stdout
