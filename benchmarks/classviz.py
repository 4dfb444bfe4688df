"""Lab 3 budgets: class visualization speed, confidence and transfer to held-out models.

Run alone with ``python benchmarks/classviz.py [--quick]``; ``benchmarks/run.py``
imports :func:`budgets`.

Measured side by side in one run, on EfficientNet-Lite0 (the default model):

* ``visualize_class``, 200 steps at 224px: wall time of one image (< 20 s), and the
  target probability reached for 10 fixed classes (>= 0.9 for >= 9 of 10);
* ``visualize_class_robust``, 256 steps: wall time of one image (< 40 s);
* held-out top-5 hit rate on EfficientNet-Lite1/2 (never used to make the images)
  for the same 10 classes, naive vs robust: robust clearly above naive.
* the choice of ``lr`` (``DEFAULT_LR``): the final target probability for a few learning rates.

Quick mode runs the same code at 48px with 2-3 steps and 2 classes (the
numbers then say nothing about the budgets; ``ok`` is computed on them anyway).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from labkit.course import load_reference
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Ten classes, most of them from the source report's figures (seed 002, figures 4-9).
CLASSES = (1, 24, 76, 89, 107, 113, 145, 604, 663, 724)




@torch.no_grad()
def held_out_top5(models, images: torch.Tensor, targets) -> float:
    """Fraction of (image, model) pairs whose top-5 contains the image's target."""
    targets = torch.as_tensor(targets)
    hits = []
    for m in models:
        x = F.interpolate(images, size=m.input_size, mode="bilinear", antialias=True, align_corners=False)
        top5 = m(x.clamp(0, 1)).topk(5, dim=-1).indices
        hits.append((top5 == targets[:, None]).any(1).float())
    return float(torch.cat(hits).mean())


@torch.no_grad()
def target_prob(model, images, targets) -> torch.Tensor:
    return model(images).softmax(-1).gather(1, torch.as_tensor(targets)[:, None])[:, 0]


class _Sized(torch.nn.Module):
    """A view of a model that reports a smaller input_size (quick mode)."""

    def __init__(self, model, size):
        super().__init__()
        self.model, self.input_size, self.num_classes = model, size, model.num_classes

    def forward(self, x):
        return self.model(x)


def budgets(quick: bool = False, log=print) -> list[dict]:
    from labkit.models import load_model

    cv = load_reference("classviz")
    torch.set_grad_enabled(True)
    lite0 = load_model()
    held_out = [load_model("efficientnet_lite1"), load_model("efficientnet_lite2")]
    classes = list(CLASSES[:2] if quick else CLASSES)
    naive_steps, robust_steps = (3, 3) if quick else (200, 256)
    model = _Sized(lite0, 48) if quick else lite0
    rows = []

    # -- naive: one timed image, then the other classes as one batch ----------
    t0 = time.perf_counter()
    first = cv.visualize_class(model, classes[0], steps=naive_steps)
    naive_seconds = time.perf_counter() - t0
    log(f"visualize_class: {naive_seconds:.1f} s for one image ({naive_steps} steps)")
    rest = cv.visualize_class(model, classes[1:], steps=naive_steps)
    naive = torch.cat([first, rest])
    probs = target_prob(lite0, naive, classes)
    log(f"visualize_class target probabilities: {[round(p, 3) for p in probs.tolist()]}")
    n_ok = int((probs >= 0.9).sum())
    rows.append({"lab": "3", "budget": f"visualize_class, {naive_steps} steps, one image on Lite0: < 20 s",
                 "value": f"{naive_seconds:.1f} s", "ok": naive_seconds < 20})
    rows.append({"lab": "3", "budget": f"visualize_class target prob >= 0.9 for >= 9 of 10 classes",
                 "value": f"{n_ok}/{len(classes)} (min {probs.min():.2f}, median {probs.median():.2f})",
                 "ok": n_ok >= len(classes) - 1})

    # -- robust ------------------------------------------------------------
    t0 = time.perf_counter()
    first = cv.visualize_class_robust(model, classes[0], steps=robust_steps)
    robust_seconds = time.perf_counter() - t0
    log(f"visualize_class_robust: {robust_seconds:.1f} s for one image ({robust_steps} steps)")
    rest = cv.visualize_class_robust(model, classes[1:], steps=robust_steps)
    robust = torch.cat([first, rest])
    rprobs = target_prob(lite0, robust, classes)
    log(f"visualize_class_robust target probabilities on Lite0: {[round(p, 3) for p in rprobs.tolist()]}")
    rows.append({"lab": "3", "budget": f"visualize_class_robust, {robust_steps} steps, one image: < 40 s",
                 "value": f"{robust_seconds:.1f} s", "ok": robust_seconds < 40})

    hit_naive = held_out_top5(held_out, naive, classes)
    hit_robust = held_out_top5(held_out, robust, classes)
    log(f"held-out top-5 hit rate: naive {hit_naive:.2f}, robust {hit_robust:.2f}")
    rows.append({"lab": "3", "budget": "held-out (Lite1+Lite2) top-5 hit rate: robust clearly above naive",
                 "value": f"robust {hit_robust:.0%} vs naive {hit_naive:.0%} over {len(classes)} classes x 2 models",
                 "ok": hit_robust >= hit_naive + 0.2})

    # -- lr choice -----------------------------------------------------------
    lr_classes = classes[:3]
    lr_steps = 2 if quick else 100
    results = []
    for lr in ((4.0, 8.0) if quick else (2.0, 4.0, 8.0, 16.0)):
        imgs = cv.visualize_class(model, lr_classes, steps=lr_steps, lr=lr)
        p = target_prob(lite0, imgs, lr_classes)
        results.append(f"lr={lr:g}: {p.mean():.2f}")
        log(f"lr sweep {results[-1]}")
    rows.append({"lab": "3", "budget": f"lr choice (default {cv.DEFAULT_LR:g}): mean target prob after "
                                       f"{lr_steps} steps, {len(lr_classes)} classes",
                 "value": "; ".join(results), "ok": True})
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for row in budgets(quick=quick):
        print(row, flush=True)
