"""Shared fixtures.

Exercise tests run against one implementation, chosen with ``--impl``:

* ``--impl=reference`` (default): ``solutions/labkit/<module>.py``; every
  exercise test must pass.
* ``--impl=student``: the installed ``labkit.<module>``, i.e. the student's
  file. Students run this to grade themselves; on the committed stubs every
  test marked ``exercise`` must fail (``tests/test_stubs.py`` proves it).
"""

import importlib
import os
import sys

import pytest
import torch

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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup``, every test marked ``xdist_group(name)`` carries the ``@name``
    suffix in its node id, which is what sends the whole group to one pytest-xdist worker.

    pytest-xdist 3.8 adds the suffix by setting ``item._nodeid``, which pytest 9.2 no longer reads
    (it keeps the id in ``item._id``; pytest-dev/pytest-xdist#1386): the groups were silently split
    over the workers, and each worker built and graded tests/test_grading.py's toy course, the
    suite's slowest fixture. This sets the suffix where xdist's did not take; once xdist sets it
    itself, this does nothing.
    """
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers only
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        suffix = "@" + "_".join(names)  # xdist's own naming: its scheduler reads the group back from it
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            item._id = type(item._id).parse(item.nodeid + suffix)  # pytest's NodeId, not public API


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
