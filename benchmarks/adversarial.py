"""Lab 2 budgets: PGD speed against torchattacks, PGD success rate, the solved notebook's time and memory.

Run alone with ``python -m benchmarks.run --labs 2 [--quick]``.

Measured side by side in one run, on EfficientNet-Lite0 (the default model) and
the 7 sample photos at 224px:

* ``pgd`` vs ``torchattacks.PGD``: same batch, same settings (L-inf, eps=2/255,
  step 0.5/255, 10 steps, no random start), timed alternately, best of
  ``repeats``; budget: ours is at least as fast (ratio torchattacks/ours >= 1).
* untargeted L-inf PGD at eps=2/255 with 10 steps fools >= 95% of the photos
  (the top-1 class changes from the model's clean prediction).
* the solved notebook, executed headless at its default parameters: < 3 min and
  < 2 GB peak kernel memory (full mode only: it takes minutes, so quick mode leaves these rows out).

Quick mode runs the same code on 2 photos at 64px with 2 steps (the numbers then
say nothing about the budgets; ``ok`` is computed on them anyway).

Both attacks run on 1 torch thread: on a busy shared CPU extra OpenMP threads
spin-wait and make everything slower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.common import best_time, load_reference, notebook_budget, row


def pgd_budgets(quick: bool = False, repeats: int = 3) -> list[dict]:
    import torchattacks

    from labkit.data import sample_batch
    from labkit.models import load_model

    adversarial = load_reference("adversarial")
    model = load_model()
    images, labels = sample_batch()
    steps = 10
    if quick:
        images, labels = images[:2], labels[:2]
        images = F.interpolate(images, size=64, mode="bilinear", antialias=True).clamp(0, 1)
        steps, repeats = 2, 1
    eps, step = 2 / 255, 0.5 / 255
    with torch.no_grad():
        clean = model(images).argmax(1)

    attack = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=False)
    # warm-up (first calls allocate buffers), then time alternately
    adversarial.pgd(model, images[:1], clean[:1], eps, step, 1)
    torchattacks.PGD(model, eps=eps, alpha=step, steps=1, random_start=False)(images[:1], clean[:1])
    ours_t, theirs_t = [], []
    for _ in range(repeats):  # alternate, so both see the same background load
        t, adv = best_time(lambda: adversarial.pgd(model, images, clean, eps, step, steps), 1)
        ours_t.append(t)
        t, theirs = best_time(lambda: attack(images, clean), 1)
        theirs_t.append(t)
    ours, theirs_best = min(ours_t), min(theirs_t)
    ratio = theirs_best / ours

    with torch.no_grad():
        pred = model(adv).argmax(1)
        pred_theirs = model(theirs).argmax(1)
    success = (pred != clean).float().mean().item()
    success_theirs = (pred_theirs != clean).float().mean().item()
    off_label = (pred != labels).float().mean().item()
    where = f"{len(images)} photos at {images.shape[-1]}px, {steps} steps, {torch.get_num_threads()} thread(s)"
    return [
        row(
            2,
            "pgd at least as fast as torchattacks.PGD (same batch and settings)",
            f"ours {ours:.2f} s, torchattacks {theirs_best:.2f} s, ratio {ratio:.2f}x (best of {repeats}; {where})",
            ratio >= 1.0,
        ),
        row(
            2,
            "untargeted L-inf PGD, eps=2/255, 10 steps fools >= 95% of the sample photos",
            f"{success:.0%} fooled (torchattacks {success_theirs:.0%}; {off_label:.0%} off the "
            f"expected ImageNet label; {where})",
            success >= 0.95,
        ),
    ]


def budgets(quick: bool = False) -> list[dict]:
    """Every Lab 2 budget, measured in one run (quick: tiny sizes, no notebook execution)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = pgd_budgets(quick)
    finally:
        torch.set_num_threads(saved)
    if not quick:
        rows += notebook_budget(2, max_seconds=180)
    return rows
