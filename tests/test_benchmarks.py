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
