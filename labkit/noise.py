# Your exercises for this lab. Fill in every body that raises
# NotImplementedError; the docstrings say exactly what to return.
# Save (Ctrl+S) and re-run the notebook's check cell, or check them all from a
# terminal: python -m labkit.check noise
# (for the course's linter: this file is generated, in the solutions' layout)
# ruff: noqa: F401, F841
# fmt: off
"""Lab 4: noise probing. What do pretrained networks "see" in random noise?

Feed random noise to ImageNet classifiers, tabulate how confident they are and
what they think it is, push noise until a network is certain, and measure with
one number (AUROC) whether max-softmax confidence can tell noise from photos.

Exercises (fill in the bodies):

* :func:`noise_images`: three kinds of random images, including the seed
  article's generator.
* :func:`probe`: one row per (model, image) with the top-1 class and confidence.
* :func:`summarize`: the seed's ``describe()`` table, one column per model.
* :func:`class_counts`: the most frequent predicted classes per model.
* :func:`maximize_confidence`: gradient ascent from noise to a confident
  prediction (Nguyen et al. 2015).
* :func:`confidence_auroc`: the AUROC of confidence between photos and noise.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit import validate

#: The noise kinds :func:`noise_images` knows.
NOISE_KINDS = ("gaussian", "uniform", "seed000")
#: Mean and standard deviation of the "gaussian" kind (before clipping to [0,1]).
GAUSSIAN_MEAN, GAUSSIAN_STD = 0.5, 0.25
#: The columns :func:`probe` returns, in order.
PROBE_COLUMNS = ("model", "image", "class_index", "class_name", "confidence")


def _class_name(index: int) -> str:
    from labkit.models import imagenet_classes

    names = imagenet_classes()
    return names[index] if 0 <= index < len(names) else f"class {index}"


def _check_probe_frame(df, name: str = "df") -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be the pandas.DataFrame returned by probe(); got {type(df).__name__}")
    missing = [c for c in ("model", "class_index", "class_name", "confidence") if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} must have the columns of probe() {list(PROBE_COLUMNS)}; missing {missing}, got {list(df.columns)}"
        )
    if len(df) == 0:
        raise ValueError(f"{name} is empty: probe at least one image")
    return df


def noise_images(n, size=224, kind="gaussian", seed=0) -> torch.Tensor:
    """``n`` random RGB images (n, 3, size, size) in [0, 1], reproducible from ``seed``.

    Kinds:

    * ``"gaussian"``: ``0.5 + 0.25 * N(0, 1)`` per pixel and channel, clipped to
      [0, 1]. Draw with ``torch.randn(n, 3, size, size, generator=g)`` where
      ``g = torch.Generator().manual_seed(seed)``.
    * ``"uniform"``: ``U[0, 1)`` per pixel and channel:
      ``torch.rand(n, 3, size, size, generator=g)``, same generator.
    * ``"seed000"``: the seed article's generator,
      ``(np.random.standard_normal([size, size, 3]) * 255).astype(np.uint8)``,
      for ``n`` images at once: draw ``np.random.default_rng(seed).standard_normal((n, size, size, 3))``,
      multiply by 255, cast to uint8 **as numpy does on x86**: truncate toward
      zero, then wrap modulo 256 (so -100.7 becomes 156 and 300.2 becomes 44).
      Then channels first and divide by 255.

    Returns:
        A float32 tensor (n, 3, size, size) with values in [0, 1].

    Raises:
        ValueError: ``n`` or ``size`` < 1, or an unknown ``kind``.
        TypeError: ``n``, ``size`` or ``seed`` is not an int.
    """
    n = validate.positive_int(n, "n")
    size = validate.positive_int(size, "size")
    if not isinstance(kind, str):
        raise TypeError(f"kind must be one of {list(NOISE_KINDS)}; got a {type(kind).__name__}")
    validate.choice(kind, "kind", NOISE_KINDS)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    # YOUR CODE HERE
    raise NotImplementedError(
        "noise_images() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )


def probe(models, images, batch_size=64) -> pd.DataFrame:
    """Classify ``images`` with every model: one row per (model, image).

    Args:
        models: a dict ``{name: model}``; each model maps (N,3,H,W) in [0,1] to logits.
        images: (N, 3, H, W) in [0, 1].
        batch_size: images per forward pass.

    Returns:
        A DataFrame with the columns ``model`` (the dict key), ``image`` (the
        image's index in ``images``), ``class_index`` (int, the top-1 class),
        ``class_name`` (its ImageNet name) and ``confidence`` (float, the top-1
        softmax probability). Rows are grouped by model, in the dict's order,
        then by image index. Runs under ``torch.inference_mode()`` in batches,
        with a tqdm progress bar.

    Raises:
        TypeError: ``models`` is not a dict of callables.
        ValueError: ``models`` is empty; ``images`` is not (N,3,H,W) in [0,1].
    """
    if not isinstance(models, dict):
        raise TypeError(
            f"models must be a dict {{name: model}}; got {type(models).__name__}"
            + (" (wrap a single model as {'name': model})" if isinstance(models, nn.Module) else "")
        )
    if not models:
        raise ValueError("models is an empty dict; give at least one {name: model}")
    for name, model in models.items():
        if not callable(model):
            raise TypeError(f"models[{name!r}] must be a model (callable); got {type(model).__name__}")
    images = validate.images(images)
    batch_size = validate.positive_int(batch_size, "batch_size")
    # YOUR CODE HERE
    raise NotImplementedError(
        "probe() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )


def summarize(df) -> pd.DataFrame:
    """The seed's table: ``describe()`` of the confidence, one column per model.

    Returns:
        A DataFrame with the rows ``count, mean, std, min, 25%, 50%, 75%, max``
        (exactly pandas' ``Series.describe()``) and one column per model, in the
        order the models first appear in ``df``.
    """
    df = _check_probe_frame(df)
    # YOUR CODE HERE
    raise NotImplementedError(
        "summarize() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )


def class_counts(df, top=10) -> pd.DataFrame:
    """The ``top`` most frequent predicted classes of each model, with their counts.

    Returns:
        A DataFrame with the columns ``model, class_index, class_name, count``,
        models in the order they first appear in ``df``; within a model, the
        classes by decreasing count (ties: smaller class index first), at most
        ``top`` of them. The index is 0, 1, 2, ...
    """
    df = _check_probe_frame(df)
    top = validate.positive_int(top, "top")
    # YOUR CODE HERE
    raise NotImplementedError(
        "class_counts() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )


def maximize_confidence(model, images, target=None, steps=50, lr=0.05):
    """Gradient ascent on the input until ``model`` is confident (Nguyen et al. 2015).

    The algorithm (follow it exactly, the checks compare step by step):

    1. ``target`` defaults to the model's current top-1 class of each image.
    2. ``x = images.detach().clone().requires_grad_(True)``,
       ``optimizer = torch.optim.Adam([x], lr=lr)``.
    3. ``steps`` times: zero the gradient; ``loss = -log_softmax(model(x))[i, target[i]]``
       summed over the batch; ``loss.backward()``; ``optimizer.step()``; then
       clamp ``x`` to [0, 1] in place (under ``torch.no_grad()``).
    4. Confidence: the softmax probability of ``target`` at the final ``x``.

    Returns:
        ``(images, confidences)``: the optimized images (N,3,H,W) in [0,1],
        detached, and their target-class softmax probabilities (N,).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    images = validate.images(images)
    steps = validate.positive_int(steps, "steps")
    lr = validate.positive(lr, "lr")
    if target is not None:
        target = validate.targets(target, len(images), validate.num_classes(model, images))
    # YOUR CODE HERE
    raise NotImplementedError(
        "maximize_confidence() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )


def _scores(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    elif isinstance(values, pd.Series):
        values = values.to_numpy()
    elif not isinstance(values, (np.ndarray, list, tuple)):
        raise TypeError(
            f"{name} must be a 1-D tensor, array, Series or list of confidences; got {type(values).__name__}"
        )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers (confidences)") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, one confidence per image; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: the AUROC needs at least one photo and one noise image")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def confidence_auroc(real_confidences, noise_confidences) -> float:
    """How well confidence separates photos (positives) from noise (negatives).

    The area under the ROC curve: the probability that a random photo gets a
    higher confidence than a random noise image, ties counting one half. It
    equals ``sklearn.metrics.roc_auc_score([1]*len(real) + [0]*len(noise),
    [*real, *noise])``. 1.0: a threshold separates them perfectly; 0.5: chance;
    below 0.5: noise is *more* confident than photos.
    """
    real = _scores(real_confidences, "real_confidences")
    noise = _scores(noise_confidences, "noise_confidences")
    # YOUR CODE HERE
    raise NotImplementedError(
        "confidence_auroc() is not implemented yet: "
        "fill in its body in labkit/noise.py"
    )
