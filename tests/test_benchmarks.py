"""The budget scripts can't rot: their quick mode runs in the suite (numbers are not checked)."""

import pytest

from benchmarks import run


@pytest.mark.slow
def test_quick_benchmark_runs_every_suite(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    run.main(["--quick", "--out", str(out)])
    report = out.read_text()
    assert "quick smoke run" in report
    for suite in run.SUITES.values():
        assert f"{suite} benchmark ran" not in report, f"the {suite} benchmark crashed:\n{report}"
