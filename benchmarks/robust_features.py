"""Lab 5 budgets: D_det / D_rand as distributions over 5 seeds at 1 and 2 threads, under the fair judge.

    python -m benchmarks.run --labs 5 [--quick]

Budgets (issues 14 and 24):
* the whole digits experiment (train, build D_det, judge it, retrain, evaluate; one mode, one seed) runs in
  under 60 s on the 2-core CPU (median of the runs that trained their own source model) with peak memory
  under 2 GB;
* at the defaults, for 5 seeds and at 1 and at 2 threads (:func:`labkit.experiments.run_seeds`):
  - D_det transfer accuracy on the clean test set lies above chance over the seeds: mean - 2 SE > 10%
    (the table also gives the t-based 95% interval; its lower end is the number to improve);
  - every seed's D_det passes both perceptibility judges (logistic regression and 1-NN on pixels, fit on
    the clean test set: keep >= 95% of their clean accuracy; Wilson 95% upper bound of the target rate
    minus the clean baseline <= 2 points);
  - the leakage control (a pixel logistic regression trained on D_det, scored on the clean test set)
    stays at or below 15% for every seed (D_rand's is reported beside it);
  - D_rand's mean is above D_det's;
* the CNN controls (the same labels on unperturbed images, seed 0) sit at chance (+ 5 points) or below;
* the solved notebook at its defaults (>= 5 seeds): < 4 min, <= 1.2 GB peak kernel memory (full mode only).

Each seed trains one source (``DEFAULTS["digits"]["sources"]`` models; an Ensemble if more than one) per
thread count and attacks it twice (D_det, D_rand). ``--quick`` runs tiny versions (200 training images,
2 epochs, 3 PGD steps, two seeds) in seconds; their verdicts only check that the pipeline runs. The
reference implementation is used (Lab 2's reference ``pgd`` included).

On a machine loaded by other jobs, run with ``OMP_WAIT_POLICY=PASSIVE``: two OpenMP threads that spin-wait
trained 7x slower than with passive waiting (3 epochs: 24.7 s against 3.4 s, 1 thread 2.6 s; load average 8).
"""

from __future__ import annotations

import os
import resource
import statistics

import torch

from benchmarks.common import load_reference, notebook_budget, row
from labkit import experiments

SEEDS = [0, 1, 2, 3, 4]
TINY = dict(train_limit=200, epochs=2, steps=3)
MAX_LEAKAGE = 0.15
NOTEBOOK_MB = 1.2 * 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _pcts(values) -> str:
    return ", ".join(f"{v:.1%}" for v in values)


def _reference():
    rf = load_reference("robust_features")
    pgd = load_reference("adversarial").pgd
    rf.lab2_pgd = lambda: pgd
    return rf


def measure(threads: int, quick: bool = False) -> dict:
    """:func:`labkit.experiments.run_seeds` (D_det and D_rand, every seed) at ``threads`` torch threads."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seeds, settings = (SEEDS[:2], TINY) if quick else (SEEDS, {})
        return experiments.run_seeds("digits", seeds, exercises=_reference(), verbose=not quick, **settings)
    finally:
        torch.set_num_threads(saved)


def controls(quick: bool = False) -> dict:
    """The CNN controls (the same labels on unperturbed images), seed 0, 1 thread."""
    rf = _reference()
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            mode: experiments.run_experiment(
                "digits", mode, seed=0, perturb=False, verbose=not quick, exercises=rf, **(TINY if quick else {})
            )
            for mode in ("det", "rand")
        }
    finally:
        torch.set_num_threads(saved)


def budgets(quick: bool = False) -> list[dict]:
    table = rows({threads: measure(threads, quick) for threads in (1, 2)}, controls(quick), _peak_rss_mb(), quick)
    return table if quick else table + notebook_budget(5, max_seconds=240, max_mb=NOTEBOOK_MB)


def _setting(quick: bool) -> str:
    if quick:
        return "tiny digits (200 images, 2 epochs, 3 steps)"
    cfg = experiments.DEFAULTS["digits"]
    return (
        f"digits at the defaults: {cfg['size']}x{cfg['size']} px, {cfg['model']} width {cfg['width']}, "
        f"eps {cfg['eps']}, {cfg['steps']} steps; {cfg['sources']} source model(s) (an Ensemble if more), "
        f"each {cfg['epochs']} epochs at lr {cfg['lr']}, batch {cfg['batch_size']}; fresh model "
        f"{cfg['transfer_epochs']} epochs at lr {cfg['transfer_lr']}, batch {cfg['transfer_batch_size']}"
    )


def _judged(runs: list[dict]) -> str:
    """Per judge: keep/clean, target (clean baseline) and the Wilson excess, one value per seed."""
    parts = []
    for kind in experiments.JUDGE_KINDS:
        reports = [r["judge"][kind] for r in runs]
        parts.append(
            f"{kind}: keep/clean {_pcts(j['keep_ratio'] for j in reports)}; "
            f"target {_pcts(j['target'] for j in reports)} (clean {_pcts(j['clean_target'] for j in reports)}); "
            f"excess of the Wilson bound {_pcts(j['target_excess'] for j in reports)}"
        )
    return "; ".join(parts)


def rows(measured: dict, controls: dict, peak: float, quick: bool = False) -> list[dict]:
    """The budget rows from ``{threads: run_seeds(...)}`` and :func:`controls`."""
    full = [r["seconds"] for out in measured.values() for r in out["runs"] if r["mode"] == "det"]
    wall = statistics.median(full)
    table = [
        row(
            5,
            "whole digits experiment (one mode, one seed: train, build D_det, judge, retrain, evaluate) < 60 s",
            f"median {wall:.0f} s, min {min(full):.0f} s, max {max(full):.0f} s over {len(full)} runs at 1 and 2 "
            f"threads (load average {os.getloadavg()[0]:.1f} on a shared 2-core CPU; {_setting(quick)})",
            wall < 60,
        ),
        row(5, "peak memory of the digits experiments < 2 GB", f"{peak:.0f} MB peak RSS (whole process)", peak < 2048),
    ]
    for threads, out in measured.items():
        det = [r for r in out["runs"] if r["mode"] == "det"]
        rand = [r for r in out["runs"] if r["mode"] == "rand"]
        d, q = out["summary"]["det"], out["summary"]["rand"]
        seeds = [r["seed"] for r in det]
        table.append(
            row(
                5,
                f"D_det transfer accuracy, {len(det)} seeds, {threads} thread(s): mean - 2 SE > 10% (chance), every "
                f"seed passing both judges, leakage control <= {MAX_LEAKAGE:.0%}",
                f"per seed {seeds}: {_pcts(r['transfer_acc'] for r in det)}; mean {d['mean']:.1%}, SE {d['se']:.1%}, "
                f"mean - 2 SE {d['mean'] - 2 * d['se']:.1%}, 95% t interval [{d['low']:.1%}, {d['high']:.1%}]; "
                f"judges pass {d['imperceptible']}/{len(det)}; leakage control (pixel logistic regression trained "
                f"on D_det) {_pcts(r['linear_acc'] for r in det)}; attack success "
                f"{_pcts(r['attack_success'] for r in det)}; source clean accuracy "
                f"{_pcts(r['clean_acc'] for r in det)}",
                d["mean"] - 2 * d["se"] > 0.10
                and d["imperceptible"] == len(det)
                and max(r["linear_acc"] for r in det) <= MAX_LEAKAGE,
            )
        )
        table.append(
            row(
                5,
                f"D_rand transfer accuracy, {len(rand)} seeds, {threads} thread(s): mean above D_det's",
                f"per seed: {_pcts(r['transfer_acc'] for r in rand)}; mean {q['mean']:.1%}, SE {q['se']:.1%}, "
                f"95% t interval [{q['low']:.1%}, {q['high']:.1%}]; leakage control "
                f"{_pcts(r['linear_acc'] for r in rand)}; judges pass {q['imperceptible']}/{len(rand)}",
                q["mean"] > d["mean"],
            )
        )
        table.append(
            row(
                5,
                f"the judges on D_det, same runs, {threads} thread(s), per seed (D_rand: see the next line)",
                f"{_judged(det)}; |delta|/|x| median {_pcts(r['judge']['logistic']['rel_norm'] for r in det)}",
                d["imperceptible"] == len(det),
            )
        )
        table.append(
            row(
                5,
                f"the judges on D_rand, same runs, {threads} thread(s) (reported; the budget covers D_det)",
                _judged(rand),
                True,
            )
        )
    chance = controls["rand"]["chance"]
    table.append(
        row(
            5,
            "CNN controls (same labels, unperturbed images, seed 0): D_rand control <= chance + 5 points, "
            "D_det control <= chance",
            f"D_rand control {controls['rand']['transfer_acc']:.1%}, "
            f"D_det control {controls['det']['transfer_acc']:.1%} (chance {chance:.0%})",
            controls["rand"]["transfer_acc"] <= chance + 0.05 and controls["det"]["transfer_acc"] <= chance,
        )
    )
    return table
