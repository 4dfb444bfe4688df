"""Hostile Lab 2 submissions for the judge, each with the exact verdict it must get per exercise.

Each sample is the reference ``adversarial.py`` (markers stripped) with some exercises replaced by an
attack on the judge itself (issue 20): the exercises it cheats on must fail, the ones it left
honest must pass. ``tests/test_judge_attacks.py`` judges them; ``python -m
tests.grading_samples.judge_attacks`` measures each in a fresh process (grade, wall time, peak RSS
of the trusted process) and prints the table.

* ``honest``: the reference, as a student who solved the lab would hand it in (the baseline).
* ``timer_reset``: three exercises turn the worker's per-call timer off and loop; only the trusted
  side's clock (which kills the worker) stops them.
* ``slow_exercise``: every call of ``fgsm`` returns the right answer just before its timeout; only
  the exercise's share of the judge's budget stops it, and the exercises after it keep theirs.
* ``garbage``: ``10**400``, NaN images, the unchanged input where a random start is due (a hidden
  case without a reference), an all-True image.
* ``json_dump``: the module replaces the worker's ``json.dump`` to write what the worker never
  would: a result naming a public toy factory with kwargs the student chose (steering the judge to
  build a huge model), a 3 MB JSON of empty lists (a decode bomb), and a 1.5 MB JSON that names one
  1 MB array 50,000 times (50 GB once decoded).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from labkit_course.repo import SOLUTIONS

MODULE = "adversarial"
EXERCISES = ("linear_adversarial", "fgsm", "pgd", "fooling_image")
PASS = (True, "")


def honest_source() -> str:
    """The reference Lab 2 module, as a student who solved it would hand it in."""
    lines = (SOLUTIONS / "labkit" / f"{MODULE}.py").read_text().splitlines(keepends=True)
    return "".join(line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


TIMER_RESET = '''

import signal as _signal


def _forever(*args, **kwargs):
    """Switch the worker's per-call timer off, then spin."""
    _signal.signal(_signal.SIGALRM, _signal.SIG_IGN)
    _signal.setitimer(_signal.ITIMER_REAL, 0)
    while True:
        _signal.setitimer(_signal.ITIMER_REAL, 0)


fgsm = pgd = fooling_image = _forever
'''

SLOW_EXERCISE = """

import signal as _signal
import time as _time

_honest_fgsm = fgsm


def fgsm(model, images, labels, eps, targeted=False):
    _time.sleep(max(0.0, _signal.getitimer(_signal.ITIMER_REAL)[0] - 0.5))  # just inside the call's timeout
    return _honest_fgsm(model, images, labels, eps, targeted=targeted)
"""

GARBAGE = """

_honest_pgd = pgd


def linear_adversarial(weights, x, label, target, eps):
    return 10**400


def fgsm(model, images, labels, eps, targeted=False):
    return torch.full_like(images, float("nan"))


def pgd(model, images, labels, eps, step_size, steps, norm="linf", targeted=False, random_start=False, seed=None):
    if random_start:  # a case without a reference: the unchanged input must not pass it
        return images.clone()
    return _honest_pgd(model, images, labels, eps, step_size, steps, norm=norm, targeted=targeted)


def fooling_image(model, image, target, lr=1.0, max_steps=100):
    return torch.ones_like(image, dtype=torch.bool), 0
"""

JSON_DUMP = '''

import json as _json

_dump = _json.dump


def _forge(obj, f, **kwargs):
    """The worker's json.dump, replaced: what reaches the judge is whatever this writes."""
    value = obj.get("value") if isinstance(obj, dict) else None
    if value == "toy":  # ask the judge to build a public model of the student's choosing
        kwargs_ = {"$": "dict", "items": [["num_classes", 10**8]]}
        obj = {"value": {"$": "toy", "factory": "labkit.check.toys:OneConvReluNet", "kwargs": kwargs_}}
    elif value == "huge":  # 3 MB of empty lists (the attack wrote 1 GB: gigabytes of Python objects once parsed)
        f.write("[" + "[]," * 1_000_000 + "[]]")
        return None
    elif isinstance(value, dict) and value.get("$") == "tuple" and value["items"][1] == "refs":
        key = value["items"][0]["key"]  # one 1 MB array, named 50,000 times: 50 GB once decoded
        obj = {"value": {"$": "list", "items": [{"$": "tensor", "key": key}] * 50_000}}
    return _dump(obj, f, **kwargs)


_json.dump = _forge


def linear_adversarial(weights, x, label, target, eps):
    return "toy"


def fgsm(model, images, labels, eps, targeted=False):
    return "huge"


def pgd(model, images, labels, eps, step_size, steps, norm="linf", targeted=False, random_start=False, seed=None):
    return torch.zeros(512, 512), "refs"
'''

#: name -> (what is appended to the honest module, {exercise: (passed, failure kind)}, cases passed per exercise)
SAMPLES = {
    "honest": ("", dict.fromkeys(EXERCISES, PASS), {}),
    "timer_reset": (
        TIMER_RESET,
        {
            "linear_adversarial": PASS,
            "fgsm": (False, "timeout"),
            "pgd": (False, "timeout"),
            "fooling_image": (False, "timeout"),
        },
        {"fgsm": 0, "pgd": 0, "fooling_image": 0},
    ),
    "slow_exercise": (
        SLOW_EXERCISE,
        {"linear_adversarial": PASS, "fgsm": (False, "timeout"), "pgd": PASS, "fooling_image": PASS},
        {"fgsm": 1},  # 1 x the timeout fits in fgsm's share (1.4 x), 2 don't
    ),
    "garbage": (
        GARBAGE,
        {
            "linear_adversarial": (False, "type"),
            "fgsm": (False, "value"),
            "pgd": (False, "value"),
            "fooling_image": (False, "type"),
        },
        {"linear_adversarial": 0, "fgsm": 0, "pgd": 12, "fooling_image": 0},  # pgd: 3 random starts of 15
    ),
    "json_dump": (
        JSON_DUMP,
        {
            "linear_adversarial": (False, "type"),
            "fgsm": (False, "crash"),
            "pgd": (False, "crash"),
            "fooling_image": PASS,
        },
        {"linear_adversarial": 0, "fgsm": 0, "pgd": 0},
    ),
}
#: flags the static audit must raise (evidence; the judge's verdicts above don't depend on them)
FLAGS = {
    "honest": None,
    "timer_reset": "signal",
    "slow_exercise": "signal",
    "garbage": None,
    "json_dump": "replaces json.dump",
}


def source(sample: str) -> str:
    return honest_source() + SAMPLES[sample][0]


def short_timeouts(folder: Path, seconds: float) -> Path:
    """A hidden-test folder whose Lab 2 cases are the real ones with every call's timeout set to
    ``seconds`` (the real 60 s makes a timer test take minutes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODULE}.py").write_text(
        textwrap.dedent(f"""\
        from labkit_course.hidden import {MODULE} as _real

        EXERCISES = _real.EXERCISES


        def _short(draw):
            def cases(rng):
                drawn = draw(rng)
                for case in drawn:
                    for call in case.calls:
                        call.timeout = {float(seconds)!r}
                return drawn

            return cases


        for _name in EXERCISES:
            globals()[_name] = _short(getattr(_real, _name))
        """)
    )
    return folder


def _measure(sample: str, timeout: float | None) -> dict:
    """Judge ``sample`` in this process: its verdicts, wall time and this process's peak RSS."""
    import resource
    import tempfile
    import time

    from labkit_course import sandbox
    from labkit_course.judge import judge
    from labkit_course.repo import REPO

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{MODULE}.py"
        path.write_text(source(sample))
        hidden = short_timeouts(Path(tmp) / "hidden", timeout) if timeout else None
        start = time.perf_counter()
        limits = sandbox.Limits(wall_timeout=900)
        j = judge(MODULE, path, 7, labkit_dir=REPO / "labkit", hidden_dir=hidden, limits=limits)
        seconds = time.perf_counter() - start
    return {
        "verdicts": {n: [v.passed, v.failure, v.cases_passed, v.cases] for n, v in j.verdicts.items()},
        "flags": j.flags,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the table: sample -> per-exercise verdict, judge wall time, peak RSS of the trusted process."""
    import argparse
    import json
    import subprocess
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None, help="per-call timeout (default: the hidden tests')")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_measure(args.one, args.timeout)))
        return
    print("| sample | " + " | ".join(EXERCISES) + " | flagged | judge time | peak RSS |")
    print("|---" * (len(EXERCISES) + 4) + "|")
    for sample in SAMPLES:
        cmd = [sys.executable, "-m", "tests.grading_samples.judge_attacks", "--one", sample]
        cmd += ["--timeout", str(args.timeout)] if args.timeout else []
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        cells = ["pass" if passed else f"{kind} ({ok}/{total})" for passed, kind, ok, total in out["verdicts"].values()]
        print(
            f"| {sample} | " + " | ".join(cells) + f" | {'yes' if out['flags'] else 'no'} | {out['seconds']} s"
            f" | {out['peak_rss_mb']} MB |"
        )


if __name__ == "__main__":
    main()
