# Your exercises for this lab. Fill in every body that raises
# NotImplementedError; the docstrings say exactly what to return.
# Save (Ctrl+S) and re-run the notebook's check cell, or check them all from a
# terminal: python -m labkit.check saliency
# (for the course's linter: this file is generated, in the solutions' layout)
# ruff: noqa: F401, F841
# fmt: off
"""Lab 1 exercises: saliency maps.

Every function takes a classifier ``model`` ([0,1] images in, logits out, as
``labkit.models.load_model`` returns), a batch ``images`` (N,3,H,W) in [0,1]
and ``targets``, the class to explain: an int for the whole batch or a
LongTensor (N,). Models may have frozen parameters: ask for gradients on the
input, never on the weights. All functions are batched: no Python loop over
pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit import validate


def _prepare(model, images, targets, check_range=True):
    images = validate.images(images, check_range=check_range)
    targets = validate.targets(targets, len(images), validate.num_classes(model, images))
    return images, targets


def input_gradients(model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
    """Warm-up: the gradient of each image's target logit with respect to that image.

    Args:
        model: a classifier returning logits (N, C).
        images: (N,3,H,W) floats. Values may leave [0,1] (SmoothGrad adds noise).
        targets: int or LongTensor (N,), classes in [0, C).

    Returns:
        (N,3,H,W): ``d logits[n, targets[n]] / d images[n]`` for every n, from one
        forward and one backward pass. ``images`` is not modified, and the result
        does not require grad.
    """
    images, targets = _prepare(model, images, targets, check_range=False)
    # YOUR CODE HERE
    raise NotImplementedError(
        "input_gradients() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


def gradient_saliency(model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2013).

    Returns:
        (N,H,W), non-negative: ``max over channels c of |d logit_target / d x[c,h,w]|``.
    """
    images, targets = _prepare(model, images, targets)
    # YOUR CODE HERE
    raise NotImplementedError(
        "gradient_saliency() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


def smoothgrad(
    model: nn.Module, images: torch.Tensor, targets, n_samples: int = 25, noise_level: float = 0.15, seed: int = 0
) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): gradient saliency averaged over noisy copies.

    For each image, draw ``n_samples`` Gaussian noise tensors with standard
    deviation ``sigma = noise_level * (max(x) - min(x))`` (the image's own value
    range), *not* clipped to [0,1], and average the absolute input gradients:

        S = max over channels of  (1/n) * sum_s |d logit_target / d (x + noise_s)|

    which is Captum's ``NoiseTunnel(Saliency(model))`` with ``nt_type="smoothgrad"``,
    reduced over channels with a max.

    Args:
        n_samples: number of noisy copies (>= 1); one batched forward/backward pass each.
        noise_level: noise standard deviation as a fraction of the value range (>= 0).
            With 0 the result equals :func:`gradient_saliency`.
        seed: the noise comes from ``torch.Generator().manual_seed(seed)``, drawn
            as ``torch.randn(images.shape, generator=g)`` once per sample, so the
            result is deterministic.

    Returns:
        (N,H,W), non-negative.
    """
    images, targets = _prepare(model, images, targets)
    n_samples = validate.positive_int(n_samples, "n_samples")
    noise_level = validate.positive(noise_level, "noise_level", allow_zero=True)
    # YOUR CODE HERE
    raise NotImplementedError(
        "smoothgrad() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


def ig_quadrature(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for integrating over alpha in [0, 1] with ``steps`` points.

    The midpoint rule on a graded mesh: cut [0, 1] at ``(j / steps) ** 2`` for
    j = 0..steps, evaluate at the middle of each cell and weight by its width.
    Like any midpoint rule it integrates linear functions exactly, and the
    cells are narrowest near the black baseline, where a network's logit
    changes fastest. On the course photos at 50 steps it cuts the completeness
    error of uniform rules by 2-7x (cat: 3.7% vs 7.3%; coffee: 0.7% vs 4.5%).

    Returns:
        alphas (steps,) in (0, 1) and weights (steps,) that sum to 1.
    """
    edges = (torch.arange(steps + 1, dtype=torch.float64) / steps) ** 2
    return ((edges[:-1] + edges[1:]) / 2).float(), edges.diff().float()


def integrated_gradients(
    model: nn.Module, images: torch.Tensor, targets, baseline=None, steps: int = 50, batch_size: int = 16
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017).

        IG(x) = (x - b) * integral_0^1 grad logit_target(b + alpha (x - b)) d alpha

    The integral is computed with :func:`ig_quadrature` (``steps`` nodes and
    weights). Completeness holds up to quadrature error:
    ``IG(x).sum() ~= logit(x) - logit(b)``.

    Args:
        baseline: None (black image, zeros), a float (uniform gray level), or a
            tensor broadcastable to ``images`` ((1,3,H,W) or (N,3,H,W)) in [0,1].
        steps: number of points on the path (>= 1).
        batch_size: how many path points go through the model at once; the
            N * steps points of all images are batched together.

    Returns:
        (N,3,H,W) signed attributions.
    """
    images, targets = _prepare(model, images, targets)
    steps = validate.positive_int(steps, "steps")
    batch_size = validate.positive_int(batch_size, "batch_size")
    if baseline is None:
        baseline = torch.zeros_like(images)
    elif isinstance(baseline, (int, float)):
        baseline = torch.full_like(images, float(baseline))
    baseline = validate.images(torch.as_tensor(baseline).expand_as(images), name="baseline").to(images)
    # YOUR CODE HERE
    raise NotImplementedError(
        "integrated_gradients() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


def occlusion(
    model: nn.Module,
    images: torch.Tensor,
    targets,
    window: int = 16,
    stride: int = 8,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Occlusion, a.k.a. leave-one-out (Zeiler & Fergus 2014).

    Slide a ``window`` x ``window`` patch (all channels) over the image with
    step ``stride``; the patch positions start at ``0, stride, 2*stride, ...``,
    ``ceil((H - window) / stride) + 1`` of them per axis, the last one clipped at
    the border. Each pixel's importance is the mean, over the patches that cover
    it, of ``logit(x) - logit(x with the patch set to baseline)``. This is
    Captum's ``Occlusion`` on the target logit with sliding window
    ``(3, window, window)`` and strides ``(3, stride, stride)``, averaged over
    channels.

    Args:
        window, stride: patch size and step in pixels; ``1 <= stride <= window <= min(H, W)``.
        baseline: the value occluded pixels take.
        batch_size: occluded images per forward pass.

    Returns:
        (N,H,W) signed: positive where hiding the patch lowers the target logit.
    """
    images, targets = _prepare(model, images, targets)
    window = validate.positive_int(window, "window")
    stride = validate.positive_int(stride, "stride")
    batch_size = validate.positive_int(batch_size, "batch_size")
    h, w = images.shape[-2:]
    if window > min(h, w):
        raise ValueError(f"window ({window}) must fit in the image ({h}x{w})")
    if stride > window:
        raise ValueError(f"stride ({stride}) must be <= window ({window}), or some pixels are never occluded")
    # YOUR CODE HERE
    raise NotImplementedError(
        "occlusion() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


def grad_cam(model: nn.Module, layer, images: torch.Tensor, targets) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer``, upsampled to the input size.

    With ``A`` the layer's output (N,K,h,w) and ``g = d logit_target / d A``:
    weights ``w_k = mean over (h,w) of g_k``, map ``ReLU(sum_k w_k A_k)`` (N,h,w),
    then bilinear upsampling (``align_corners=False``) to (H,W). Before
    upsampling this equals Captum's ``LayerGradCam(model, layer).attribute(...,
    relu_attributions=True)``. Not normalized.

    Args:
        layer: a module of ``model`` whose output is a (N,K,h,w) tensor, or its
            dotted name (e.g. ``"net.bn2"``; labkit models have ``model.cam_layer``).

    Works on frozen models: the gradient reaches ``A`` through the input.
    Leaves no hook behind.

    Returns:
        (N,H,W), non-negative.
    """
    images, targets = _prepare(model, images, targets)
    layer = validate.layer(model, layer)
    # YOUR CODE HERE
    raise NotImplementedError(
        "grad_cam() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )


class _PositiveGradient(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


def guided_backprop(model: nn.Module, images: torch.Tensor, targets) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2014).

    The input gradient, except that at every ``nn.ReLU`` and ``nn.ReLU6``
    module the backward pass keeps only positive gradients: through a ReLU
    with input z, ``grad_in = max(grad_out, 0) * 1[z > 0]`` (for ReLU6,
    ``1[0 < z < 6]``). Equals Captum's ``GuidedBackprop`` on models built from
    ``nn.ReLU``. Works with in-place activations. Activations called as
    functions (``F.relu``) are not modified.

    Leaves the model exactly as it was: no hooks left behind, ``inplace`` flags
    unchanged, even if the forward pass raises.

    Use :class:`_PositiveGradient` (provided above): returning
    ``_PositiveGradient.apply(output)`` from a forward hook on each ReLU
    module makes its backward pass see only positive gradients.

    Returns:
        (N,3,H,W) signed.
    """
    images, targets = _prepare(model, images, targets)

    # YOUR CODE HERE
    raise NotImplementedError(
        "guided_backprop() is not implemented yet: "
        "fill in its body in labkit/saliency.py"
    )
