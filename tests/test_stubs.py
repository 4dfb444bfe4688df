"""Every exercise check must fail on the student stubs: a check that passes a stub is a bug."""

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from labkit_course.repo import REPO, available_labs


@pytest.mark.slow
@pytest.mark.parametrize("lab", available_labs(), ids=lambda lab: lab.module)
def test_every_exercise_check_fails_on_the_stub(lab, tmp_path):
    report = tmp_path / "report.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"tests/test_{lab.module}.py",
            "--impl=student",
            "-m",
            "exercise",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    cases = ET.parse(report).getroot().iter("testcase")
    results = {c.get("name"): [child.tag for child in c] for c in cases}
    assert results, f"no exercise tests collected for {lab.module}"
    passed_on_stub = sorted(name for name, outcome in results.items() if not outcome)
    assert not passed_on_stub, f"these checks pass on the stub of labkit/{lab.module}.py: {passed_on_stub}"
