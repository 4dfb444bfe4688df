"""Lab 5 budgets: the digits experiment's time and memory, and D_det / D_rand accuracy over 3 seeds.

    python -m benchmarks.run --labs 5 [--quick]

Budgets (issue 6):
* the whole digits experiment (train, build D_det, retrain, evaluate) runs in under 3 minutes on a
  2-core CPU with peak memory under 2 GB;
* at the defaults, D_det transfer accuracy >= 60% and D_rand >= 70% on the clean test set, over 3 seeds
  (mean and spread reported);
* the solved notebook at its defaults: < 5 min, < 2 GB peak kernel memory (full mode only).

``--quick`` runs tiny versions (200 training images, 2 epochs, 3 PGD steps, one seed) in seconds;
their accuracy verdicts only check that the pipeline runs, not the budgets.
The reference implementation is used (Lab 2's reference ``pgd`` included).
"""
from __future__ import annotations

import resource
import statistics
import time

import torch

from benchmarks.common import load_reference, notebook_budget, row
from labkit import experiments


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def budgets(quick: bool = False) -> list[dict]:
    rf = load_reference("robust_features")
    pgd = load_reference("adversarial").pgd
    rf.lab2_pgd = lambda: pgd
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: 1 thread is as fast, and robust to a shared CPU
    try:
        tiny = dict(train_limit=200, epochs=2, steps=3) if quick else {}
        seeds = [0] if quick else [0, 1, 2]
        results = {"det": [], "rand": []}
        timings = []
        for seed in seeds:
            for mode in ("det", "rand"):
                wall, cpu = time.perf_counter(), time.process_time()
                r = experiments.run_experiment("digits", mode, seed=seed, verbose=not quick, exercises=rf, **tiny)
                timings.append((mode, time.perf_counter() - wall, time.process_time() - cpu))
                results[mode].append(r["transfer_acc"])
        peak = _peak_rss_mb()
    finally:
        torch.set_num_threads(saved_threads)

    det_times = [t for t in timings if t[0] == "det"]
    wall = max(t[1] for t in det_times)
    cpu = max(t[2] for t in det_times)
    size = "tiny digits (200 images, 2 epochs, 3 steps)" if quick else "digits at the defaults"
    rows = [
        row(5, "whole digits D_det experiment (train, build D_det, retrain, evaluate) < 180 s on a 2-core CPU",
            f"{wall:.0f} s wall, {cpu:.0f} s CPU (1 thread; worst of {len(det_times)} runs; {size})", wall < 180),
        row(5, "peak memory of the digits experiment < 2 GB", f"{peak:.0f} MB peak RSS (whole process)", peak < 2048),
    ]
    for mode, floor in (("det", 0.60), ("rand", 0.70)):
        accs = results[mode]
        mean = statistics.mean(accs)
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(row(
            5, f"D_{mode} transfer accuracy on the clean digits test set >= {floor:.0%} (mean of 3 seeds)",
            f"{mean:.1%} mean, ± {spread:.1%} sd, min {min(accs):.1%} over seeds {seeds} "
            f"({', '.join(f'{a:.1%}' for a in accs)}; {size})",
            mean >= floor))
    if not quick:
        rows += notebook_budget(5, max_seconds=300)
    return rows
