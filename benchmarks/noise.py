"""Lab 4 (noise probing) budgets, measured side by side.

* ``probe`` throughput within 10% of the bare model's batched inference
  (EfficientNet-Lite0, same images and batch size; the best of a few
  interleaved repetitions of each, because the CPU is shared).
* 1000 noise images x 3 offline models in under 4 minutes (quick mode:
  extrapolated from a small run, and labelled so).
* The solved notebook at its defaults in under 4 minutes with peak memory under
  2 GB (full mode only: it executes the notebook headless; quick mode leaves it out
  because a notebook run alone takes longer than the quick budget).

Run alone with ``python -m benchmarks.run --labs 4 [--quick]``.
"""

from __future__ import annotations

import time

import torch

from benchmarks.common import best_time, load_reference, notebook_budget, row


def _bare(model, images, batch_size):
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size]).softmax(-1).max(-1)


def budgets(quick: bool = False) -> list[dict]:
    """Measure Lab 4's budgets; each entry is {"lab", "budget", "value", "ok"}."""
    from labkit.models import OFFLINE_MODELS, load_model

    noise = load_reference("noise")
    rows = []

    # 1. probe vs the bare model, interleaved so both see the same CPU load.
    model = load_model("efficientnet_lite0")
    n, batch, repeats = (16, 8, 2) if quick else (128, 32, 3)
    images = noise.noise_images(n, 224, "seed000", seed=0)
    _bare(model, images[:batch], batch)  # warm-up
    bare_t, probe_t = [], []
    for _ in range(repeats):
        bare_t.append(best_time(lambda: _bare(model, images, batch), 1)[0])
        probe_t.append(best_time(lambda: noise.probe({"lite0": model}, images, batch_size=batch), 1)[0])
    bare, probed = min(bare_t), min(probe_t)
    ratio = probed / bare
    rows.append(
        row(
            4,
            "probe time / bare batched inference <= 1.10 (EfficientNet-Lite0, 224px)",
            f"{ratio:.3f} (probe {n / probed:.1f} img/s, bare {n / bare:.1f} img/s, {n} images, batch {batch})",
            ratio <= 1.10,
        )
    )

    # 2. 1000 images x 3 offline models.
    models = {name: load_model(name) for name in OFFLINE_MODELS}
    if quick:
        m = 8
        x = noise.noise_images(m, 224, "seed000", seed=1)
        start = time.perf_counter()
        noise.probe(models, x, batch_size=8)
        seconds = (time.perf_counter() - start) * 1000 / m
        how = f"extrapolated from {m} images x 3 models"
    else:
        x = noise.noise_images(1000, 224, "seed000", seed=1)
        start = time.perf_counter()
        noise.probe(models, x, batch_size=32)
        seconds = time.perf_counter() - start
        how = "measured"
    rows.append(row(4, "probe 1000 images x 3 offline models < 240 s", f"{seconds:.0f} s ({how})", seconds < 240))

    # 3. The solved notebook at its defaults (the test suite already runs it at quick parameters).
    if not quick:
        rows += notebook_budget(4, max_seconds=240)
    return rows
