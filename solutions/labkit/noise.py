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
    ### BEGIN SOLUTION
    if kind == "seed000":
        z = np.random.default_rng(seed).standard_normal((n, size, size, 3))
        # float -> uint8 the way numpy does it on x86: truncate, then wrap modulo 256.
        # In place: 300 images at 224px are 360 MB per float64 copy.
        z *= 255
        np.trunc(z, out=z)
        np.mod(z, 256, out=z)  # exact on integral floats, and non-negative like the integer modulo
        wrapped = z.astype(np.uint8)
        del z
        return torch.from_numpy(wrapped).permute(0, 3, 1, 2).float().div(255).contiguous()
    g = torch.Generator().manual_seed(int(seed))
    if kind == "uniform":
        return torch.rand(n, 3, size, size, generator=g)
    return (GAUSSIAN_MEAN + GAUSSIAN_STD * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    n = len(images)
    frames = []
    batches = [(name, start) for name in models for start in range(0, n, batch_size)]
    with torch.inference_mode(), tqdm(total=len(models) * n, desc="probe", unit="img") as bar:
        confidences, indices = {name: [] for name in models}, {name: [] for name in models}
        for name, start in batches:
            bar.set_postfix_str(str(name), refresh=False)
            probs = models[name](images[start : start + batch_size]).float().softmax(-1)
            conf, idx = probs.max(-1)
            confidences[name].append(conf)
            indices[name].append(idx)
            bar.update(len(conf))
    for name in models:
        idx = torch.cat(indices[name]).tolist()
        frames.append(
            pd.DataFrame(
                {
                    "model": [name] * n,
                    "image": np.arange(n),
                    "class_index": np.asarray(idx, dtype=np.int64),
                    "class_name": [_class_name(i) for i in idx],
                    "confidence": torch.cat(confidences[name]).numpy().astype(np.float64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
    ### END SOLUTION


def summarize(df) -> pd.DataFrame:
    """The seed's table: ``describe()`` of the confidence, one column per model.

    Returns:
        A DataFrame with the rows ``count, mean, std, min, 25%, 50%, 75%, max``
        (exactly pandas' ``Series.describe()``) and one column per model, in the
        order the models first appear in ``df``.
    """
    df = _check_probe_frame(df)
    ### BEGIN SOLUTION
    return pd.DataFrame({name: group["confidence"].describe() for name, group in df.groupby("model", sort=False)})
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    counts = df.groupby(["model", "class_index", "class_name"], sort=False).size().rename("count").reset_index()
    order = {name: i for i, name in enumerate(df["model"].drop_duplicates())}
    counts["_order"] = counts["model"].map(order)
    counts = counts.sort_values(["_order", "count", "class_index"], ascending=[True, False, True], kind="stable")
    counts = counts.groupby("model", sort=False).head(top)
    return counts.drop(columns="_order").reset_index(drop=True)
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    if target is None:
        with torch.no_grad():
            target = model(images).argmax(-1)
    x = images.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in tqdm(range(steps), desc="maximize confidence", leave=False, disable=steps < 10):
        optimizer.zero_grad()
        loss = -F.log_softmax(model(x), dim=-1).gather(1, target[:, None]).sum()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    with torch.no_grad():
        confidences = model(x).softmax(-1).gather(1, target[:, None])[:, 0]
    return x.detach(), confidences
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([real, noise]))  # average ranks handle ties
    u = ranks[: len(real)].sum() - len(real) * (len(real) + 1) / 2
    return float(u / (len(real) * len(noise)))
    ### END SOLUTION
