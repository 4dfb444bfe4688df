"""Measuring attribution maps instead of admiring them.

* :func:`cascading_randomization`: the model-parameter randomization sanity
  check of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps"). Re-initialize
  the layers from the top down; a method whose maps barely change is not
  explaining what the model learned.
* :func:`deletion_curve`: the deletion metric of Petsiuk et al. 2018 (RISE).
  Remove the pixels a map calls most important first; the faster the target
  probability falls, the more faithful the map. Lower area under the curve is better.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from labkit import validate

Method = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _as_pixel_maps(maps: torch.Tensor) -> torch.Tensor:
    """(N,H,W) or (N,3,H,W) -> (N,H,W) of absolute importance."""
    maps = maps.detach().float()
    if maps.ndim == 4:
        return maps.abs().sum(1)
    if maps.ndim == 3:
        return maps.abs()
    raise ValueError(f"maps must have shape (N,H,W) or (N,3,H,W); got {tuple(maps.shape)}")


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation between two batches of maps, one value per image (N,).

    Maps are compared by absolute importance per pixel (channels summed), as
    in Adebayo et al.'s "absolute value" variant. A constant map (e.g. an
    all-zero Grad-CAM) ranks nothing and scores 0.
    """
    a, b = _as_pixel_maps(a), _as_pixel_maps(b)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    rho = []
    for x, y in zip(a, b):
        x, y = x.flatten().numpy(), y.flatten().numpy()
        # A constant map ranks nothing: count it as uncorrelated rather than NaN.
        rho.append(0.0 if x.std() == 0 or y.std() == 0 else spearmanr(x, y)[0])
    return np.array(rho)


def _reinitialize(module: torch.nn.Module, seed: int) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    for p in module.parameters():
        p.requires_grad_(False)


def cascading_randomization(
    model, methods: dict[str, Method], images: torch.Tensor, targets, groups: list[str] | None = None, seed: int = 0
) -> pd.DataFrame:
    """Adebayo et al.'s cascading model-parameter randomization test.

    Starting from the logits, re-initialize one layer group after another
    (each stays randomized: the damage cascades down), and after each step
    compare every method's maps with its maps on the trained model.

    Args:
        model: a labkit model (left untouched: the test works on a copy).
        methods: ``{"name": f(model, images, targets) -> maps}``; maps (N,H,W) or (N,3,H,W).
        images, targets: what to explain, (N,3,H,W) in [0,1] and an int or LongTensor (N,).
        groups: names from :func:`labkit.models.randomization_groups` to go through, in
            order (default: all, top-down).
        seed: seeds the re-initialization.

    Returns:
        A DataFrame with one row per (randomized-down-to layer, method): columns
        ``step`` (0 = trained model), ``layer``, ``method``, ``spearman`` (mean
        over images of the rank correlation with the trained model's map;
        1.0 at step 0) and ``spearman_std``.
    """
    from labkit.models import randomization_groups

    images = validate.images(images)
    targets = validate.targets(targets, len(images), validate.num_classes(model, images))
    if not methods:
        raise ValueError("methods is empty: give at least one {'name': function}")
    randomized = copy.deepcopy(model)
    available = randomization_groups(randomized)
    names = [n for n, _ in available]
    groups = names if groups is None else list(groups)
    unknown = [g for g in groups if g not in names]
    if unknown:
        raise ValueError(f"unknown layer groups {unknown}; this model has {names}")
    modules = dict(available)

    original = {name: f(model, images, targets) for name, f in methods.items()}
    rows = [{"step": 0, "layer": "(trained)", "method": name, "spearman": 1.0, "spearman_std": 0.0} for name in methods]
    for step, group in enumerate(tqdm(groups, desc="randomizing layers", leave=False, delay=2), 1):
        _reinitialize(modules[group], seed + step)
        for name, f in methods.items():
            rho = rank_correlation(original[name], f(randomized, images, targets))
            rows.append(
                {
                    "step": step,
                    "layer": group,
                    "method": name,
                    "spearman": float(np.mean(rho)),
                    "spearman_std": float(np.std(rho)),
                }
            )
    return pd.DataFrame(rows)


@torch.no_grad()
def deletion_curve(
    model,
    images: torch.Tensor,
    targets,
    maps: torch.Tensor,
    steps: int = 20,
    baseline: float = 0.0,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """The deletion curve (Petsiuk et al. 2018).

    Pixels are ranked by the map (most important first; (N,3,H,W) maps are
    reduced by summing absolute values over channels). At step k of ``steps``,
    the top ``k/steps`` of the pixels are set to ``baseline`` (all channels)
    and the softmax probability of the target is recorded.

    Returns:
        fractions (steps+1,) from 0 to 1, and probabilities (N, steps+1).
    """
    images = validate.images(images)
    targets = validate.targets(targets, len(images), validate.num_classes(model, images))
    steps = validate.positive_int(steps, "steps")
    pixel_maps = _as_pixel_maps(maps)
    if pixel_maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(
            f"maps must match the images: expected (N,H,W) = {(images.shape[0], *images.shape[-2:])}, "
            f"got {tuple(maps.shape)}"
        )
    n, _, h, w = images.shape
    fractions = np.linspace(0, 1, steps + 1)
    # rank[p] = position of pixel p in the importance order (0 = most important)
    order = pixel_maps.view(n, -1).argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(n, -1).contiguous())
    probs = np.zeros((n, steps + 1))
    for i in range(n):
        counts = torch.tensor(np.round(fractions * h * w).astype(int))
        keep = (rank[i].view(1, h, w) >= counts.view(-1, 1, 1)).unsqueeze(1)  # (steps+1,1,H,W)
        deleted = torch.where(keep, images[i], torch.full_like(images[i], baseline))
        out = torch.cat(
            [model(deleted[s : s + batch_size]).softmax(-1)[:, targets[i]] for s in range(0, steps + 1, batch_size)]
        )
        probs[i] = out.numpy()
    return fractions, probs


def deletion_auc(fractions: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Area under each deletion curve (trapezoid rule), one value per image; lower is better."""
    probs = np.atleast_2d(probs)
    return ((probs[:, 1:] + probs[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)
