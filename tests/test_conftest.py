"""The suite's own machinery in conftest.py: under ``--dist loadgroup`` an ``xdist_group`` runs on one worker."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE = """
import pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(3))
def test_grouped(i):
    pass

@pytest.mark.parametrize("i", range(3))
def test_free(i):
    pass
"""


@pytest.mark.slow
def test_an_xdist_group_spanning_two_files_runs_on_one_worker(tmp_path):
    """Two workers, six grouped tests in two files: xdist 3.8 alone splits them under pytest 9.2."""
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(MODULE, encoding="utf-8")
    args = ["-p", "tests.conftest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path)],
        cwd=REPO,  # tests.conftest is importable from here
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    ran = re.findall(r"\[(gw\d)\].*PASSED \S*(test_[ab]\.py::test_\w+\[\d\])", done.stdout)
    assert len(ran) == 12, done.stdout[-3000:]
    workers = {worker for worker, test in ran if "test_grouped" in test}
    assert len(workers) == 1, ran
