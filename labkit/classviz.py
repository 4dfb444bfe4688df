# Your exercises for this lab. Fill in every body that raises
# NotImplementedError; the docstrings say exactly what to return.
# Save (Ctrl+S) and re-run the notebook's check cell, or check them all from a
# terminal: python -m labkit.check classviz
# (for the course's linter: this file is generated, in the solutions' layout)
# ruff: noqa: F401, F841
# fmt: off
"""Lab 3: class visualization.

What does a classifier think a "tarantula" looks like? Start from noise (or a
photo) and change the *image*, never the weights, so that the tarantula logit
goes up. Done naively (gradient ascent on the pixels, Simonyan et al. 2014;
the CS231n assignment) the result is a colourful texture that the model is
sure about and other models ignore: an adversarial example in disguise. Done
with a better image parameterization and random transformations (Olah et al.
2017, "Feature Visualization", Distill) the picture gets more natural and other
networks recognize it too.

Exercises (fill in the bodies between the markers):

* :func:`jitter`: a circular shift of the image.
* :func:`blur`: a separable Gaussian blur, computed on the tensor.
* :func:`class_visualization_step`: one L2-normalized gradient-ascent step.
* :func:`visualize_class`: the CS231n loop (jitter, step, unjitter, clamp, blur).
* :func:`visualize_class_robust`: Adam on a Fourier-space, colour-decorrelated
  image, through random pad/jitter/scale/rotation.

Scaffolding given to you (not exercises): :func:`pad_symmetric`,
:func:`fourier_init`, :func:`fourier_to_image` and :func:`random_transform`.

Conventions: images are float tensors (N,3,H,W) in [0,1]; models take them,
normalize inside and return logits (see ``labkit.models``).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from labkit import validate

__all__ = [
    "jitter",
    "blur",
    "class_visualization_step",
    "visualize_class",
    "visualize_class_robust",
    "pad_symmetric",
    "fourier_init",
    "fourier_to_image",
    "random_transform",
    "COLOR_CORRELATION",
    "DEFAULT_LR",
]

#: The default step size of :func:`visualize_class`: the L2 norm of one step
#: in [0,1] pixel space. A 224x224 RGB image has 150,528 entries, so a step of
#: norm 8 changes each entry by ~0.02 on average (measured in the notebook and
#: in benchmarks/classviz.py: large enough to reach high confidence in 200 steps,
#: small enough that the image stays smooth).
DEFAULT_LR = 8.0


# --------------------------------------------------------------------------
# Small helpers for argument checking (not exercises)
# --------------------------------------------------------------------------
def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    return int(value)


def _nonneg_int(value, name: str) -> int:
    value = _int(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def _image_size(model) -> int:
    size = getattr(model, "input_size", 224)
    return size if isinstance(size, int) else 224


def _targets(model, target, n: int, size: int) -> torch.Tensor:
    sample = torch.full((1, 3, size, size), 0.5)
    return validate.targets(target, n, validate.num_classes(model, sample), name="target")


def _batch_size(target) -> int:
    """How many images a target asks for: 1 for an int, len() for a sequence or tensor."""
    if isinstance(target, torch.Tensor):
        return max(1, target.numel())
    if isinstance(target, (list, tuple)):
        return max(1, len(target))
    return 1


# --------------------------------------------------------------------------
# Exercise 1: jitter
# --------------------------------------------------------------------------
def jitter(img: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """Shift ``img`` circularly by ``ox`` pixels to the right and ``oy`` pixels down.

    What leaves on one side comes back on the other (``jitter(jitter(x, ox, oy),
    -ox, -oy)`` is ``x`` exactly), so nothing is lost. Negative offsets shift
    left / up.

    Args:
        img: (N,C,H,W) tensor.
        ox, oy: integer offsets along the width (dim 3) and the height (dim 2).

    Returns:
        A new tensor of the same shape: ``out[..., i, j] == img[..., (i - oy) % H, (j - ox) % W]``.
    """
    validate.images(img, name="img", channels=None, check_range=False)
    ox, oy = _int(ox, "ox"), _int(oy, "oy")
    # YOUR CODE HERE
    raise NotImplementedError(
        "jitter() is not implemented yet: "
        "fill in its body in labkit/classviz.py"
    )


# --------------------------------------------------------------------------
# Exercise 2: blur
# --------------------------------------------------------------------------
def pad_symmetric(img: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Pad ``img`` by ``radius`` on both sides of ``dim`` by mirroring, edge included.

    ``a b c d`` padded by 2 gives ``b a | a b c d | d c``: scipy.ndimage's
    ``mode="reflect"``. Works for any ``radius``, even one larger than the image.
    (Given to you: use it in :func:`blur`.)
    """
    n = img.shape[dim]
    idx = torch.arange(-radius, n + radius, device=img.device) % (2 * n)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return img.index_select(dim, idx)


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur of standard deviation ``sigma`` pixels, done separably on the tensor.

    Exactly scipy's ``gaussian_filter1d(x, sigma, axis, mode="reflect", truncate=4.0)``
    along the height, then along the width, for every image and channel:

    * the 1-D kernel is ``w[k] = exp(-k**2 / (2 sigma**2))`` for ``k = -r..r`` with
      ``r = int(4 * sigma + 0.5)``, divided by its sum;
    * the border is handled by mirroring the image: :func:`pad_symmetric`;
    * each pass is a ``conv2d`` with a (1, 2r+1) or (2r+1, 1) kernel and ``groups=C``
      (one kernel per channel), so it costs O(r) per pixel, not O(r**2).

    Args:
        img: (N,C,H,W) float tensor.
        sigma: > 0.

    Returns:
        A new (N,C,H,W) tensor.
    """
    validate.images(img, name="img", channels=None, check_range=False)
    sigma = validate.positive(sigma, "sigma")
    # YOUR CODE HERE
    raise NotImplementedError(
        "blur() is not implemented yet: "
        "fill in its body in labkit/classviz.py"
    )


# --------------------------------------------------------------------------
# Exercise 3: one step of gradient ascent
# --------------------------------------------------------------------------
def class_visualization_step(
    img: torch.Tensor, model: torch.nn.Module, target, l2_reg: float, lr: float
) -> torch.Tensor:
    """One gradient-ascent step on ``logit_target(img) - l2_reg * ||img - 0.5||^2``.

    The L2 penalty pulls the image towards plain gray (0.5). The gradient ``g``
    of that objective with respect to the image is normalized to unit L2 norm
    (per image) and scaled by ``lr``, so every step has the same size whatever
    the model's scale:

        new = clamp(img + lr * g / ||g||, 0, 1)

    Args:
        img: (N,3,H,W) in [0,1] (not modified).
        model: a classifier returning logits (N, num_classes); its parameters are frozen,
            so take the gradient with respect to the *input*.
        target: the class to maximize, an int or a LongTensor (N,).
        l2_reg: the weight of the L2 penalty, >= 0.
        lr: the L2 norm of the step, > 0.

    Returns:
        A new (N,3,H,W) tensor in [0,1], detached from any graph.
    """
    validate.images(img, name="img")
    target = _targets(model, target, img.shape[0], img.shape[-1])
    l2_reg = validate.positive(l2_reg, "l2_reg", allow_zero=True)
    lr = validate.positive(lr, "lr")
    # YOUR CODE HERE
    raise NotImplementedError(
        "class_visualization_step() is not implemented yet: "
        "fill in its body in labkit/classviz.py"
    )


# --------------------------------------------------------------------------
# Exercise 4: the CS231n loop
# --------------------------------------------------------------------------
def visualize_class(
    model: torch.nn.Module,
    target,
    steps: int = 200,
    init: torch.Tensor | None = None,
    l2_reg: float = 1e-3,
    lr: float = DEFAULT_LR,
    blur_every: int = 10,
    blur_sigma: float = 0.5,
    max_jitter: int = 16,
    seed: int = 0,
    callback=None,
) -> torch.Tensor:
    """Synthesize an image the model classifies as ``target`` (Simonyan et al. 2014; CS231n).

    The loop, for ``t = 0 .. steps-1``, with every random number drawn from
    ``torch.Generator().manual_seed(seed)``:

    1. draw ``ox``, ``oy`` uniformly in ``[-max_jitter, max_jitter]``
       (``torch.randint(-max_jitter, max_jitter + 1, (2,), generator=gen)``) and
       :func:`jitter` the image by them;
    2. take one :func:`class_visualization_step`;
    3. jitter back by ``(-ox, -oy)``;
    4. if ``blur_every`` and ``t % blur_every == 0``: :func:`blur` by ``blur_sigma``,
       then clamp to [0,1];
    5. if ``callback`` is given, call ``callback(t + 1, img)``.

    Args:
        model: a classifier (its ``input_size`` attribute gives the size, default 224).
        target: a class index (int), or several (a list / LongTensor), one image each.
        steps: number of steps, >= 1.
        init: None to start from noise, ``0.5 + 0.2 * randn`` clamped to [0,1] (drawn from
            the generator *before* the loop); or a starting image (1,3,H,W) or
            (N,3,H,W) in [0,1] (e.g. a photo; it is not modified).
        l2_reg, lr: see :func:`class_visualization_step`.
        blur_every: blur every that many steps (0 turns blurring off).
        blur_sigma: the blur's standard deviation in pixels.
        max_jitter: the largest shift in pixels (0 turns jitter off).
        seed: the same seed gives the same image, bit for bit.
        callback: ``callback(step, img)``, called after every step (e.g. to show progress).

    Returns:
        (N,3,H,W) in [0,1]; N = 1 for an int target.
    """
    n = _batch_size(target)
    steps = validate.positive_int(steps, "steps")
    if init is not None:
        validate.images(init, name="init")
        if init.shape[0] not in (1, n):
            raise ValueError(f"init must hold 1 or {n} images (one per target); got shape {tuple(init.shape)}")
    size = init.shape[-1] if init is not None else _image_size(model)
    target = _targets(model, target, n, size)
    l2_reg = validate.positive(l2_reg, "l2_reg", allow_zero=True)
    lr = validate.positive(lr, "lr")
    blur_every = _nonneg_int(blur_every, "blur_every")
    blur_sigma = validate.positive(blur_sigma, "blur_sigma")
    max_jitter = _nonneg_int(max_jitter, "max_jitter")
    gen = torch.Generator().manual_seed(_int(seed, "seed"))
    if init is None:
        img = (0.5 + 0.2 * torch.randn(n, 3, size, size, generator=gen)).clamp(0, 1)
    else:
        img = init.detach().clone().expand(n, -1, -1, -1).contiguous()
    # YOUR CODE HERE
    raise NotImplementedError(
        "visualize_class() is not implemented yet: "
        "fill in its body in labkit/classviz.py"
    )


# --------------------------------------------------------------------------
# Scaffolding for the robust version: a decorrelated Fourier parameterization
# and random transformations (given; Olah et al. 2017, Lucid's param/transform)
# --------------------------------------------------------------------------
#: Square root of the RGB covariance of ImageNet photos (from Lucid): a colour
#: "whitening" basis. Optimizing in it spreads a step over natural colours.
COLOR_CORRELATION = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])


def _freqs(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return (fx**2 + fy**2).sqrt()


def fourier_init(n: int, size: int, sd: float = 0.01, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random parameters for :func:`fourier_to_image`: a real tensor (n, 3, size, size//2+1, 2).

    The last dimension holds the real and imaginary parts of each frequency.
    """
    return sd * torch.randn(n, 3, size, size // 2 + 1, 2, generator=generator)


def fourier_to_image(params: torch.Tensor, size: int, decay: float = 1.0) -> torch.Tensor:
    """Turn Fourier parameters into an image (n,3,size,size) in (0,1), differentiably.

    1. scale each frequency ``f`` by ``1 / max(f, 1/size) ** decay`` (natural images
       have a 1/f spectrum: with this, every frequency starts with equal energy, so a
       gradient step is not dominated by pixel-level noise);
    2. inverse real FFT to a (n,3,size,size) "decorrelated" image, divided by 4;
    3. mix the colours with :data:`COLOR_CORRELATION` (normalized to unit column norm);
    4. a sigmoid squashes into (0,1).
    """
    scale = 1.0 / _freqs(size, size).clamp_min(1.0 / size) ** decay * size
    spectrum = torch.view_as_complex(params.contiguous()) * scale
    x = torch.fft.irfft2(spectrum, s=(size, size)) / 4.0
    m = COLOR_CORRELATION / COLOR_CORRELATION.norm(dim=0).max()
    x = torch.einsum("ij,njhw->nihw", m, x)
    return torch.sigmoid(x)


def random_transform(
    img: torch.Tensor,
    generator: torch.Generator,
    pad: int = 16,
    max_jitter: int = 8,
    scale_range: tuple[float, float] = (0.9, 1.1),
    max_rotation: float = 10.0,
) -> torch.Tensor:
    """Pad with gray, then jitter, scale and rotate at random (one draw for the batch).

    Differentiable: gradients flow back to ``img``. The output has ``img``'s size;
    its borders come from the gray padding when the image is shifted, shrunk or
    turned. One bilinear ``grid_sample`` does jitter, scale and rotation at once.
    """
    n, _, h, w = img.shape
    x = F.pad(img, (pad, pad, pad, pad), value=0.5)
    H, W = h + 2 * pad, w + 2 * pad
    u = torch.rand(4, generator=generator).tolist()
    s = scale_range[0] + (scale_range[1] - scale_range[0]) * u[0]
    angle = math.radians((2 * u[1] - 1) * max_rotation)
    dx, dy = [(2 * v - 1) * max_jitter for v in u[2:]]
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel grid covers the central h x w of the padded image, then is
    # scaled by 1/s (s > 1 zooms in), rotated and shifted.
    sx, sy = w / W, h / H
    theta = torch.tensor(
        [[cos * sx / s, -sin * sy / s * (H / W), 2 * dx / W], [sin * sx / s * (W / H), cos * sy / s, 2 * dy / H]],
        dtype=img.dtype,
    )
    grid = F.affine_grid(theta.expand(n, 2, 3), (n, 3, h, w), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --------------------------------------------------------------------------
# Exercise 5: the robust version
# --------------------------------------------------------------------------
def visualize_class_robust(
    model: torch.nn.Module,
    target,
    steps: int = 256,
    seed: int = 0,
    lr: float = 0.05,
    decay: float = 1.0,
    pad: int = 16,
    max_jitter: int = 8,
    scale_range: tuple[float, float] = (0.9, 1.1),
    max_rotation: float = 10.0,
    callback=None,
) -> torch.Tensor:
    """Class visualization that other models recognize too (Olah et al. 2017, Distill).

    Three changes to :func:`visualize_class`:

    * **parameterization**: optimize Fourier coefficients ``params``
      (:func:`fourier_init`, drawn from the generator) and render the image with
      :func:`fourier_to_image` (1/f scaling, decorrelated colours, sigmoid), not
      raw pixels;
    * **transformation robustness**: each step scores a :func:`random_transform`
      of the image (pad, jitter, scale, rotation), so details that only work at
      one exact pixel position don't pay off;
    * **Adam** (``torch.optim.Adam([params], lr=lr)``) maximizing the target logit
      (minimize ``-logit``, summed over the batch).

    Draw every random number from ``gen = torch.Generator().manual_seed(seed)``:
    first ``params = fourier_init(n, size, generator=gen).requires_grad_(True)``,
    then one ``random_transform(img, gen, ...)`` per step. After the loop return
    ``fourier_to_image(params, size, decay)``, detached. ``callback(step, img)``
    is called after every step with the current (detached) image.

    Args:
        model: a classifier (its ``input_size`` gives the size, default 224).
        target: an int, or several (a list / LongTensor): one image each.
        steps: number of Adam steps, >= 1.
        seed: the same seed gives the same image, bit for bit.
        lr: Adam's learning rate.
        decay: the spectrum's power-law exponent (1 = 1/f).
        pad, max_jitter, scale_range, max_rotation: see :func:`random_transform`.

    Returns:
        (N,3,H,W) in [0,1]; N = 1 for an int target.
    """
    n = _batch_size(target)
    steps = validate.positive_int(steps, "steps")
    size = _image_size(model)
    target = _targets(model, target, n, size)
    lr = validate.positive(lr, "lr")
    decay = validate.positive(decay, "decay", allow_zero=True)
    pad, max_jitter = _nonneg_int(pad, "pad"), _nonneg_int(max_jitter, "max_jitter")
    max_rotation = validate.positive(max_rotation, "max_rotation", allow_zero=True)
    if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
        raise ValueError(f"scale_range must be (low, high) with 0 < low <= high; got {scale_range}")
    gen = torch.Generator().manual_seed(_int(seed, "seed"))
    # YOUR CODE HERE
    raise NotImplementedError(
        "visualize_class_robust() is not implemented yet: "
        "fill in its body in labkit/classviz.py"
    )
