"""Shared plots: image grids titled with predictions, heatmaps, overlays, method panels.

Every function takes tensors in the course convention ((N,3,H,W) images in
[0,1], (N,H,W) or (N,3,H,W) maps) and returns the matplotlib Figure.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from labkit.data import to_numpy_image

#: One colormap for every attribution map in the course (sequential, perceptually uniform).
MAP_CMAP = "inferno"
#: Diverging colormap for signed quantities (perturbations, signed attributions).
SIGNED_CMAP = "RdBu_r"


def normalize_map(maps: torch.Tensor, percentile: float = 99.0) -> np.ndarray:
    """Attribution maps as (N,H,W) numpy arrays in [0,1] for display.

    (N,3,H,W) maps are reduced with the sum of absolute values over channels.
    Each map is divided by its ``percentile``-th percentile and clipped, so a
    few extreme pixels don't wash out the rest (as in Captum's visualizer).
    """
    m = maps.detach().float().cpu()
    if m.ndim == 4:
        m = m.abs().sum(1)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"maps must have shape (N,H,W) or (N,3,H,W); got {tuple(maps.shape)}")
    m = m.abs().numpy()
    scale = np.percentile(m.reshape(len(m), -1), percentile, axis=1).reshape(-1, 1, 1)
    return np.clip(m / np.maximum(scale, 1e-12), 0, 1)


def overlay(image: torch.Tensor, heat: np.ndarray, alpha: float = 0.55, cmap: str = MAP_CMAP) -> np.ndarray:
    """Blend a [0,1] heatmap (H,W) onto a dimmed grayscale copy of ``image`` (3,H,W); returns HWC RGB."""
    gray = to_numpy_image(image).mean(-1, keepdims=True).repeat(3, -1)
    colored = plt.get_cmap(cmap)(heat)[..., :3]
    weight = alpha * heat[..., None] ** 0.5  # weak attributions stay transparent
    return np.clip((1 - weight) * 0.75 * gray + weight * colored, 0, 1)


def _grid(n: int, ncols: int | None, size: float):
    ncols = ncols or min(n, 6)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def show_images(
    images: torch.Tensor,
    titles=None,
    model=None,
    ncols: int | None = None,
    size: float = 2.6,
    suptitle: str | None = None,
):
    """A grid of images. With ``model``, each title gives the predicted class and its confidence.

    Args:
        images: (N,3,H,W) in [0,1].
        titles: N strings, shown above the prediction if both are given.
        model: a classifier from :func:`labkit.models.load_model`.
    """
    from labkit.models import describe

    images = images.detach().cpu()
    n = len(images)
    preds = describe(model, images) if model is not None else [None] * n
    titles = list(titles) if titles is not None else [None] * n
    fig, axes = _grid(n, ncols, size)
    for ax, img, title, pred in zip(axes.flat, images, titles, preds):
        ax.imshow(to_numpy_image(img))
        ax.set_title("\n".join(filter(None, [title, pred])), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_maps(
    images: torch.Tensor,
    maps: dict,
    row_titles=None,
    mode: str = "overlay",
    size: float = 2.3,
    suptitle: str | None = None,
):
    """Side-by-side method panel: one row per image, the photo then one column per method.

    Args:
        images: (N,3,H,W) in [0,1].
        maps: ``{"method name": maps}`` with maps (N,H,W) or (N,3,H,W).
        row_titles: N strings for the photo column (e.g. predicted classes).
        mode: ``"overlay"`` (heat on a dimmed photo) or ``"heatmap"`` (heat alone).
    """
    if mode not in ("overlay", "heatmap"):
        raise ValueError(f"mode must be 'overlay' or 'heatmap'; got {mode!r}")
    images = images.detach().cpu()
    n, cols = len(images), len(maps) + 1
    normalized = {name: normalize_map(m) for name, m in maps.items()}
    for name, m in normalized.items():
        if len(m) != n:
            raise ValueError(f"maps[{name!r}] has {len(m)} maps for {n} images")
    fig, axes = plt.subplots(n, cols, figsize=(size * cols, size * n + 0.4), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(to_numpy_image(images[i]))
        if row_titles is not None:
            axes[i, 0].set_title(row_titles[i], fontsize=9)
        for j, (name, m) in enumerate(normalized.items(), 1):
            shown = overlay(images[i], m[i]) if mode == "overlay" else m[i]
            axes[i, j].imshow(shown, cmap=MAP_CMAP, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(name, fontsize=10, fontweight="bold")
    for ax in axes.flat:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def amplify(perturbation: torch.Tensor) -> torch.Tensor:
    """Map a signed perturbation (N,3,H,W) to [0,1] around gray, scaled so its largest entry is visible."""
    scale = perturbation.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return (0.5 + 0.5 * perturbation.detach() / scale).clamp(0, 1)


def plot_curves(
    x,
    curves: dict,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    ax=None,
    logx: bool = False,
    logy: bool = False,
    **kwargs,
):
    """Line plot of several named curves sharing ``x`` (markers, grid, legend).

    With ``logx`` the ticks are the x values themselves, written plainly (4, 8, 16, ...).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
    else:
        fig = ax.figure
    for name, y in curves.items():
        ax.plot(x, np.asarray(y), marker="o", markersize=3.5, label=name, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.set_xticks(list(x), [f"{v:g}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
