"""Attacks on the judge itself (issue 20), judged for real in the sandbox: exact verdicts per exercise.

The samples (``tests/grading_samples/judge_attacks.py``) are Lab 2 submissions that reset the
worker's timer, take just under the timeout in every call of one exercise, return garbage, or
replace the worker's ``json.dump`` to forge their results. What
they cheat on fails; what they did honestly passes; the judge never raises and its cost stays
bounded. Also here: many submissions judged at once, in threads, as ``grade --workers N`` does.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from labkit_course import sandbox
from labkit_course.judge import judge
from labkit_course.repo import REPO
from tests.grading_samples import judge_attacks, toy_lab

needs_sandbox = pytest.mark.skipif(
    sandbox.bwrap() is None, reason="bubblewrap (bwrap) is missing or not working: the judge's sandbox can't run"
)
LIMITS = sandbox.Limits(wall_timeout=600, memory_mb=4096, threads=1)
TIMEOUT = 8.0  # per call, in the timer samples (the hidden tests' 60 s would take minutes)


def _judge(tmp_path, sample: str, **kwargs):
    path = tmp_path / "adversarial.py"
    path.write_text(judge_attacks.source(sample))
    return judge("adversarial", path, 7, labkit_dir=REPO / "labkit", limits=LIMITS, workdir=tmp_path, **kwargs)


def _assert_verdicts(judgement, sample: str) -> None:
    _, expected, passed_cases = judge_attacks.SAMPLES[sample]
    got = {name: (v.passed, v.failure) for name, v in judgement.verdicts.items()}
    assert got == expected, {n: v.message for n, v in judgement.verdicts.items()}
    for name, count in passed_cases.items():
        assert judgement.verdicts[name].cases_passed == count, judgement.verdicts[name].message
    flag = judge_attacks.FLAGS[sample]
    assert any(flag in f for f in judgement.flags) if flag else judgement.flags == [], judgement.flags


@pytest.mark.slow
@needs_sandbox
def test_a_submission_that_resets_its_timer_costs_at_most_one_and_a_half_timeouts_per_exercise(tmp_path):
    hidden = judge_attacks.short_timeouts(tmp_path / "hidden", TIMEOUT)
    start = time.perf_counter()
    j = _judge(tmp_path, "timer_reset", hidden_dir=hidden)
    seconds = time.perf_counter() - start
    _assert_verdicts(j, "timer_reset")
    assert seconds <= 1.5 * len(judge_attacks.EXERCISES) * TIMEOUT, seconds


@pytest.mark.slow
@needs_sandbox
def test_an_exercise_slow_in_every_call_costs_only_its_own_share_of_the_budget(tmp_path):
    hidden = judge_attacks.short_timeouts(tmp_path / "hidden", TIMEOUT)
    _assert_verdicts(_judge(tmp_path, "slow_exercise", hidden_dir=hidden), "slow_exercise")


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("sample", ["garbage", "json_dump"])
def test_garbage_and_forged_results_fail_exactly_what_they_cheat_on(tmp_path, sample):
    _assert_verdicts(_judge(tmp_path, sample), sample)


@pytest.mark.slow
@needs_sandbox
def test_many_submissions_judged_at_once_in_threads(tmp_path):
    """Hidden tests and references loaded by several threads at once: none sees them half-loaded (the
    hidden module below takes a while to execute, so a thread that did would fail its submission)."""
    hidden, ref = tmp_path / "hidden", tmp_path / "reference"
    hidden.mkdir()
    ref.mkdir()
    (hidden / "toy.py").write_text("import time\n\ntime.sleep(0.5)\n" + toy_lab.HIDDEN)
    (ref / "toy.py").write_text("import time\n\ntime.sleep(0.5)\n" + toy_lab.SOLUTION)
    student = tmp_path / "toy.py"
    student.write_text(toy_lab.SOLUTION)
    barrier = threading.Barrier(4)

    def one(seed: int):
        barrier.wait()
        return judge(
            "toy",
            student,
            seed,
            labkit_dir=REPO / "labkit",
            hidden_dir=hidden,
            reference_dir=ref,
            limits=LIMITS,
            budget=300,  # four sandboxes start at once on a busy machine: this test is about loading
        )

    with ThreadPoolExecutor(4) as pool:
        judgements = list(pool.map(one, range(4)))
    for j in judgements:
        assert all(v.passed for v in j.verdicts.values()), [v.message for v in j.verdicts.values()]
        assert j.notes == [], j.notes
