"""Lab 1 budgets, measured side by side in one run on EfficientNet-Lite0 and the sample photos.

* ``occlusion`` vs ``captum.attr.Occlusion`` and ``integrated_gradients`` vs
  ``captum.attr.IntegratedGradients`` on the same inputs and settings (ratio = Captum's time / ours;
  budget: >= 1, i.e. at least as fast). One run each, back to back (the machine must be otherwise idle).
* Integrated Gradients completeness at 200 steps on every sample photo: within 5%.
  Also the mean error at 50 steps, ours against Captum's default Gauss-Legendre rule.
* The solved notebook at its defaults: < 3 min, < 2 GB peak memory (full mode only).
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, Occlusion

from benchmarks.common import best_time, load_reference, notebook_budget, row
from labkit.data import sample_batch
from labkit.models import load_model


def _completeness(model, images, targets, attributions) -> torch.Tensor:
    with torch.no_grad():
        gap = (
            model(images).gather(1, targets[:, None])[:, 0]
            - model(torch.zeros_like(images)).gather(1, targets[:, None])[:, 0]
        )
    return (attributions.sum((1, 2, 3)) - gap).abs() / gap.abs()


def budgets(quick: bool = False) -> list[dict]:
    ref = load_reference("saliency")
    model = load_model()
    size = 64 if quick else 224
    images, _ = sample_batch(None if not quick else ["cat", "coffee"], size=size)
    with torch.no_grad():
        targets = model(images).argmax(1)
    x, t = images[:1], targets[:1]
    window, stride = (16, 16) if quick else (16, 8)
    rows = []

    ours_s, _ = best_time(lambda: ref.occlusion(model, x, t, window=window, stride=stride, batch_size=64), 1)
    theirs_s, _ = best_time(
        lambda: Occlusion(model).attribute(
            x,
            target=t,
            sliding_window_shapes=(3, window, window),
            strides=(3, stride, stride),
            baselines=0.0,
            perturbations_per_eval=64,
        ),
        1,
    )
    rows.append(
        row(
            1,
            f"occlusion at least as fast as Captum (1 photo, {size}px, window {window}, stride {stride})",
            f"ours {ours_s:.1f} s, Captum {theirs_s:.1f} s, ratio {theirs_s / ours_s:.2f}",
            theirs_s >= ours_s * 0.98,
        )
    )

    steps = 8 if quick else 50
    ours_s, _ = best_time(lambda: ref.integrated_gradients(model, x, t, steps=steps, batch_size=16), 2)
    theirs_s, _ = best_time(
        lambda: IntegratedGradients(model).attribute(x, target=t, n_steps=steps, internal_batch_size=16), 2
    )
    rows.append(
        row(
            1,
            f"integrated_gradients at least as fast as Captum (1 photo, {steps} steps, batch 16)",
            f"ours {ours_s:.1f} s, Captum {theirs_s:.1f} s, ratio {theirs_s / ours_s:.2f}",
            theirs_s >= ours_s * 0.98,
        )
    )

    steps = 8 if quick else 200
    errors = _completeness(
        model, images, targets, ref.integrated_gradients(model, images, targets, steps=steps, batch_size=50)
    )
    rows.append(
        row(
            1,
            f"IG completeness within 5% on all {len(images)} photos at {steps} steps",
            f"max {errors.max():.2%}, mean {errors.mean():.2%}",
            bool(errors.max() <= 0.05),
        )
    )
    steps = 4 if quick else 50
    ours = _completeness(
        model, images, targets, ref.integrated_gradients(model, images, targets, steps=steps, batch_size=50)
    )
    gl = _completeness(
        model,
        images,
        targets,
        IntegratedGradients(model).attribute(images, target=targets, n_steps=steps, internal_batch_size=50),
    )
    rows.append(
        row(
            1,
            f"IG completeness at {steps} steps: ours (graded midpoint) vs Captum (Gauss-Legendre), mean over photos",
            f"ours {ours.mean():.2%}, Captum {gl.mean():.2%}",
            bool(ours.mean() <= gl.mean()),
        )
    )

    if not quick:  # the test suite already executes every notebook at its quick parameters
        rows += notebook_budget(1, max_seconds=180)
    return rows
