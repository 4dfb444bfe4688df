"""Shared fixtures.

Exercise tests run against one implementation, chosen with ``--impl``:

* ``--impl=reference`` (default): ``solutions/labkit/<module>.py``; every
  exercise test must pass.
* ``--impl=student``: the installed ``labkit.<module>``, i.e. the student's
  file. Students run this to grade themselves; on the committed stubs every
  test marked ``exercise`` must fail (``tests/test_stubs.py`` proves it).
"""

import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from xdist.scheduler import LoadGroupScheduling

from labkit_course.repo import load_reference

# setuptools' distutils shim asserts it wins the import of distutils; nbgrader imports setuptools
# late, after a test may have loaded the standard library's distutils (still there before 3.12).
if sys.version_info < (3, 12):
    os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")

# One thread per test process: tests use small models, for which OpenMP's second thread costs
# more than it gains, and `make test` runs two processes (pytest-xdist) on two cores.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption(
        "--impl",
        choices=["reference", "student"],
        default="reference",
        help="which exercise implementation to test (default: reference)",
    )


# --dist loadgroup (pyproject's addopts) keeps each xdist_group on one worker: the tests of a group share
# an expensive module fixture (test_grading's graded toy course, test_gradescope's setup.sh venv,
# test_formgrader's server), built once per worker that runs one of them. pytest-xdist 3.8 tells its
# scheduler a test's group by appending "@group" to the node id through ``item._nodeid``, which
# pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386): the groups were silently split. Here
# the workers write each test's group to a file, and the scheduler appends it to the ids it is given,
# with xdist's public hooks only (pytest_configure_node, pytest_xdist_make_scheduler).
_GROUPS_FOLDER = pytest.StashKey[Path]()


def _xdist_group(item) -> str | None:
    """The group xdist would give ``item``: its xdist_group marks' names, sorted, joined by "_"."""
    marks = item.iter_markers("xdist_group")
    return "_".join(sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})) or None


class _LoadGroupFromWorkersFiles(LoadGroupScheduling):
    """xdist's loadgroup scheduler, told each test's group by the file its worker wrote."""

    def add_node_collection(self, node, collection):
        path = self.config.stash[_GROUPS_FOLDER] / f"{node.workerinput['workerid']}.json"
        groups = json.loads(path.read_text(encoding="utf-8"))
        ids = [i if i not in groups or i.endswith("@" + groups[i]) else f"{i}@{groups[i]}" for i in collection]
        super().add_node_collection(node, ids)


def _loadgroup(config) -> bool:
    return config.pluginmanager.hasplugin("xdist") and getattr(config.option, "dist", "no") == "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """On the controller, before each worker starts: the folder where it writes its tests' groups."""
    if _loadgroup(node.config):
        if _GROUPS_FOLDER not in node.config.stash:
            node.config.stash[_GROUPS_FOLDER] = Path(tempfile.mkdtemp(prefix="labkit-xdist-groups-"))
        node.workerinput["labkit_groups_folder"] = str(node.config.stash[_GROUPS_FOLDER])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    return _LoadGroupFromWorkersFiles(config, log) if _loadgroup(config) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """On a worker under --dist loadgroup: write {node id: group} for the scheduler (see above)."""
    folder = getattr(config, "workerinput", {}).get("labkit_groups_folder")
    if folder:
        groups = {item.nodeid: group for item in items if (group := _xdist_group(item))}
        path = Path(folder, f"{config.workerinput['workerid']}.json")
        path.write_text(json.dumps(groups), encoding="utf-8")


def pytest_unconfigure(config):
    if _GROUPS_FOLDER in config.stash:
        shutil.rmtree(config.stash[_GROUPS_FOLDER], ignore_errors=True)


def load_implementation(module: str, kind: str):
    """The exercise module ``module`` as the reference or as the student's file."""
    if kind == "student":
        return importlib.import_module(f"labkit.{module}")
    return load_reference(module)


@pytest.fixture(scope="session")
def torchattacks():
    """torchattacks, the reference attacks: a test-only dependency (its pins break user environments)."""
    return pytest.importorskip(
        "torchattacks", reason="torchattacks is not installed (test-only: make install adds it, --no-deps)"
    )


@pytest.fixture(scope="session")
def reference_pgd():
    """Lab 2's reference ``pgd``: Lab 5's pipeline is tested with it, whatever the student's Lab 2 holds."""
    return load_reference("adversarial").pgd


def pytest_generate_tests(metafunc):
    """A test that takes ``public_check`` runs once per public check of its module's lab
    (``EXERCISE_MODULE``): every check must pass on the reference and fail on the stub."""
    if "public_check" in metafunc.fixturenames:
        checks = importlib.import_module(f"labkit.check.{metafunc.module.EXERCISE_MODULE}")
        params = [
            pytest.param((ex.name, c), marks=pytest.mark.exercise, id=f"{ex.name}-{c.__name__}")
            for ex in checks.EXERCISES
            for c in ex.checks
        ]
        metafunc.parametrize("public_check", params)


@pytest.fixture(scope="module")
def impl(request):
    """The exercise module under test; the test module names it in ``EXERCISE_MODULE``."""
    return load_implementation(request.module.EXERCISE_MODULE, request.config.getoption("--impl"))


@pytest.fixture(scope="session")
def model():
    """The course's default model (EfficientNet-Lite0), loaded once."""
    from labkit.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def photos():
    """All offline sample photos at 224px and their labels."""
    from labkit.data import sample_batch

    return sample_batch()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
