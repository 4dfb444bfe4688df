"""The budget scripts can't rot: their quick mode runs in the suite (numbers are not checked)."""

import pytest

from benchmarks import run
from labkit.labs import MODULES


@pytest.mark.slow
def test_quick_benchmark_runs_every_suite(tmp_path, capsys):
    out = tmp_path / "RESULTS.md"
    run.main(["--quick", "--out", str(out)])
    report = out.read_text()
    assert "quick smoke run" in report
    for suite in run.SUITES.values():
        assert f"{suite} benchmark ran" not in report, f"the {suite} benchmark crashed:\n{report}"


def test_a_partial_run_replaces_only_its_suites_tables():
    row = {"lab": "1", "budget": "b", "value": "v", "ok": True}
    monday = {suite: run.section(suite, f"measured Monday ({suite})", [row]) for suite in ("grading", "saliency")}
    old = run.merge_report("an older free-text header, dropped\n", monday)
    new = run.merge_report(old, {"saliency": run.section("saliency", "measured Tuesday", [{**row, "ok": False}])})
    assert "older free-text" not in old
    assert "Monday (saliency)" not in new and "**saliency**: measured Tuesday" in new and "| FAIL |" in new
    assert "**grading**: measured Monday (grading)" in new
    assert new.index("saliency") < new.index("grading")  # SUITES' order, whatever order the runs came in
    assert run.merge_report(new, {}) == new


def test_suites_are_found_not_listed(tmp_path):
    """A lab's suite is its ``benchmarks/<module>.py``; any other module with ``budgets`` is a suite too."""
    for name, text in {
        "classviz": "def budgets(quick=False):\n    return []\n",
        "zeta": "import os\n\n\ndef budgets(quick=False):\n    return []\n",
        "common": "def row():\n    pass\n",
    }.items():
        (tmp_path / f"{name}.py").write_text(text)
    assert run.suites(tmp_path) == {"3": "classviz", "zeta": "zeta"}
    assert set(MODULES) <= set(run.SUITES.values()) and {"grading", "binder", "gradescope"} <= set(run.SUITES)
