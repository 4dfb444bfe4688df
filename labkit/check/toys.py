"""Shared test material of the public checks: tiny models with known answers, and the helpers to test with.

Every check module (and the hidden tests, which name these factories as
``Toy("labkit.check.toys:<name>", ...)``) builds its models here. Each model's
docstring gives its closed form (logits, gradient or attribution) and shapes, as
Captum's ``tests/attr/helpers/basic_models.py`` does, and ``tests/test_toys.py``
checks every closed form against autograd. Images are (N,3,H,W) floats in [0,1].

Models:

* :class:`LinearClassifier`: frozen, logits ``W . x + b``; every gradient is known.
* :class:`QuadraticClassifier`: frozen, logits ``W . x^2 / 2``; integrated gradients are exact.
* :func:`tiny_cnn`: a small frozen ReLU (or ReLU6) CNN with a Grad-CAM layer, for Captum comparisons.
* :class:`OneConvReluNet`: a smaller frozen ReLU net with large random weights, for attacks.
* :class:`SmoothConvNet`: a frozen tanh net (smooth everywhere), for gradient ascent.
* :class:`PooledLinear`: frozen, linear in the 2x2-pooled colors, for confidence probes.
* :class:`BrightnessModel`: no parameters, predicts ``floor(C * mean(x))``; negates its logits in train mode.
* :func:`tiny_linear`: a linear classifier with *trainable* weights, for training loops.
* :func:`toy_pgd`: a stand-in for Lab 2's ``pgd`` with a closed form.

Helpers: :func:`images`, :func:`brightness_images`, :func:`assert_close`,
:func:`assert_raises`, :func:`count_hooks` and :func:`record_forwards`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from labkit.models import freeze


# --------------------------------------------------------------------------
# Models with known answers
# --------------------------------------------------------------------------
class LinearClassifier(nn.Module):
    """A frozen linear classifier: ``logits[n, c] = <W[c], x[n]> + b[c]``.

    Shapes: images (N,3,S,S) -> logits (N,C); ``weight`` W is (C,3,S,S), image-shaped, and
    ``bias`` b is (C,). Both are drawn from a generator seeded with ``seed``, weight first:
    ``W = scale * N(0,1)``, ``b = bias_scale * N(0,1)``.

    Closed forms: ``d logit_c / d x = W[c]`` everywhere, so ``model.weight[t]`` (N,3,S,S) is the
    input gradient of the target logits; the input gradient of ``cross_entropy(logits, y,
    reduction="sum")`` is ``(softmax(logits) - onehot(y)) @ W.flatten(1)``. With ``scale=0`` the
    logits are constant and every input gradient is 0. Attributes: ``input_size`` (S),
    ``num_classes`` (C).
    """

    def __init__(self, size: int = 8, num_classes: int = 5, seed: int = 0, scale: float = 1.0, bias_scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(scale * torch.randn(num_classes, 3, size, size, generator=g))
        self.bias = nn.Parameter(bias_scale * torch.randn(num_classes, generator=g))
        self.input_size, self.num_classes = size, num_classes
        freeze(self)

    def forward(self, x):
        return x.flatten(1) @ self.weight.flatten(1).T + self.bias


class QuadraticClassifier(nn.Module):
    """A frozen quadratic classifier: ``logits[n, c] = 1/2 <W[c], x[n]^2>``.

    Shapes: images (N,3,S,S) -> logits (N,C); ``weight`` W is (C,3,S,S), ``N(0,1)`` from a
    generator seeded with ``seed``.

    Closed forms: ``d logit_c / d x = W[c] * x``. Along the straight path from a baseline b the
    gradient is linear in alpha, so integrated gradients are exactly
    ``IG_c(x) = W[c] * (x^2 - b^2) / 2`` (N,3,S,S), and any quadrature that integrates linear
    functions exactly gives them.
    """

    def __init__(self, size: int = 8, num_classes: int = 4, seed: int = 1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(num_classes, 3, size, size, generator=g))
        self.num_classes = num_classes
        freeze(self)

    def forward(self, x):
        return 0.5 * torch.einsum("nchw,kchw->nk", x**2, self.weight)


ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def tiny_cnn(activation=nn.ReLU, inplace=False, seed=0, num_classes=6, scale=1.0) -> nn.Module:
    """A small frozen CNN: conv1-act1-conv2-features-pool-flat-fc, deterministic for a seed.

    Shapes: images (N,3,H,W) -> ``conv1``, ``act1`` (N,8,H,W) -> ``conv2`` (stride 2),
    ``features`` (N,8,ceil(H/2),ceil(W/2)) -> ``pool`` (N,8,2,2) -> logits (N,num_classes).
    No closed form: Captum's implementations give the answers on it. ``features`` (the second
    activation) is a good Grad-CAM layer.

    ``activation`` is a module class or its name in :data:`ACTIVATIONS` (``"relu6"``);
    ``inplace`` is handed to it. PyTorch's default initialization is drawn after
    ``torch.manual_seed(seed)`` (the global generator), then every parameter is multiplied by
    ``scale``. Small weights (``scale=0.5``) keep the activations of [0,1] images below 6, where
    the ReLU6 net computes exactly what the ReLU net of the same seed does.
    """
    if isinstance(activation, str):
        activation = ACTIVATIONS[activation]
    torch.manual_seed(seed)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("act1", activation(inplace=inplace))
    net.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1, stride=2))
    net.add_module("features", activation(inplace=inplace))
    net.add_module("pool", nn.AdaptiveAvgPool2d(2))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(32, num_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    net.num_classes = num_classes
    return freeze(net)


def _randn_parameters(module: nn.Module, seed: int, std: float) -> None:
    """Overwrite every parameter, in order, with ``std * N(0,1)`` from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=g))


class OneConvReluNet(nn.Module):
    """A small frozen nonlinear net: ``logits = fc(avgpool_4x4(relu(conv(x))))``.

    Shapes: images (N,3,H,W) -> ``conv`` (3->8 channels, 3x3, padding 1) -> ReLU ->
    adaptive average pooling to (N,8,4,4) -> ``fc`` -> logits (N,num_classes). Every parameter is
    ``0.5 * N(0,1)`` from a generator seeded with ``seed``. No closed form beyond the formula:
    the input gradient is piecewise constant in x (it changes where a ReLU flips), which makes
    signed-gradient attacks move it a lot.
    """

    def __init__(self, num_classes: int = 6, seed: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)
        _randn_parameters(self, seed, 0.5)
        self.num_classes = num_classes
        freeze(self)

    def forward(self, x):
        h = F.adaptive_avg_pool2d(F.relu(self.conv(x)), 4)
        return self.fc(h.flatten(1))


class SmoothConvNet(nn.Module):
    """A small frozen net that is smooth everywhere:
    ``logits = fc(mean_hw(tanh(conv2(tanh(conv1(x - 0.5))))))``.

    Shapes: images (N,3,H,W) (any H, W; ``input_size`` S is the default the class-visualization
    loops start from) -> ``conv1``, ``conv2`` (8 channels, 3x3, padding 1) -> global average
    pool (N,8) -> ``fc`` -> logits (N,num_classes). Every parameter is ``0.5 * N(0,1)`` from a
    generator seeded with ``seed``. No closed form beyond the formula; tanh keeps the input
    gradient continuous, so gradient ascent raises a logit steadily.
    """

    def __init__(self, size: int = 16, num_classes: int = 10, seed: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)
        _randn_parameters(self, seed, 0.5)
        self.input_size, self.num_classes = size, num_classes
        freeze(self)

    def forward(self, x):
        x = torch.tanh(self.conv1(x - 0.5))
        x = torch.tanh(self.conv2(x))
        return self.fc(x.mean((2, 3)))


class PooledLinear(nn.Module):
    """A frozen classifier, linear in the 2x2-pooled colors: ``logits = W . avgpool_2x2(x - 0.5) + b``.

    Shapes: images (N,3,H,W) -> ``F.adaptive_avg_pool2d(x - 0.5, 2)`` (N,3,2,2), flattened to
    (N,12) -> ``linear`` -> logits (N,C); ``linear.weight`` W is (C,12) = ``scale * N(0,1)`` and
    ``linear.bias`` b is (C,) = ``N(0,1)``, drawn from a generator seeded with ``seed``.

    Closed form (H and W even): every pixel of quadrant (i, j) of channel k counts 1/(HW/4), so
    ``d logit_c / d x[k, h, w] = W[c, 4k + 2 (h >= H/2) + (w >= W/2)] * 4 / (H W)``. A large
    ``scale`` gives confident predictions; gray images (0.5) get the logits ``b``.
    """

    def __init__(self, num_classes: int = 10, seed: int = 0, scale: float = 4.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(12, num_classes)
        with torch.no_grad():
            self.linear.weight.copy_(scale * torch.randn(num_classes, 12, generator=g))
            self.linear.bias.copy_(torch.randn(num_classes, generator=g))
        self.num_classes = num_classes
        freeze(self)

    def forward(self, x):
        return self.linear(F.adaptive_avg_pool2d(x - 0.5, 2).flatten(1))


class BrightnessModel(nn.Module):
    """No parameters: ``logits[n, k] = -scale * (C * mean(x[n]) - k - 0.5)^2`` for k = 0..C-1.

    Shapes: images (N,3,H,W) -> logits (N,C). It predicts ``floor(C * mean(x))`` (the class whose
    brightness band ``[k/C, (k+1)/C)`` holds the image's mean intensity). Closed form:
    ``d logit_k / d x = -2 scale C (C * mean(x) - k - 0.5) / (3 H W)``, the same for every pixel,
    so PGD can move it. In train mode it returns the *negated* logits, so code that forgets
    ``model.eval()`` gets visibly wrong answers.
    """

    def __init__(self, num_classes: int = 10, scale: float = 4.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True) * self.num_classes
        centers = torch.arange(self.num_classes, dtype=x.dtype, device=x.device) + 0.5
        logits = -self.scale * (m - centers) ** 2
        return -logits if self.training else logits


def tiny_linear(num_classes: int = 3, size: int = 4, seed: int = 0) -> nn.Module:
    """A linear classifier with *trainable* weights: ``nn.Sequential(nn.Flatten(), nn.Linear(3 S S, C))``.

    Shapes: images (N,3,S,S) -> logits (N,C) = ``x.flatten(1) @ W.T + b``, with ``model[1].weight``
    W (C,3SS) = ``0.1 * N(0,1)`` from a generator seeded with ``seed``, and ``model[1].bias`` b = 0
    at the start. Its parameters require grad and it starts in train mode, unlike the other
    models here; ``model.num_classes`` is C.
    """
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, num_classes))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(model[1].weight.shape, generator=gen) * 0.1)
        model[1].bias.zero_()
    model.num_classes = num_classes
    return model


def toy_pgd(
    model: nn.Module,
    images: torch.Tensor,
    labels,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    targeted: bool = False,
    random_start: bool = False,
    seed=None,
) -> torch.Tensor:
    """A stand-in for Lab 2's ``pgd`` with a closed form, to test code that calls ``pgd``.

    Each image (N,3,H,W) in [0,1] moves by ``r = min(eps, steps * step_size)`` along a fixed pattern
    ``p_y = cos((y + 1) * (h + 2w + 3c))`` of its label ``y`` (scaled to L2 norm ``r``, or ``r *
    sign(p_y)`` for ``norm="linf"``), towards the pattern if ``targeted`` else away, times the sign
    of the model's label logit minus its mean logit (so it depends on the model's mode), then is
    clipped to [0,1]. ``random_start`` and ``seed`` are accepted and ignored.
    """
    labels = torch.as_tensor(labels).view(-1, 1, 1, 1).to(images.dtype)
    c, h, w = (torch.arange(n, dtype=images.dtype) for n in images.shape[1:])
    pattern = torch.cos((labels + 1) * (h.view(1, 1, -1, 1) + 2 * w.view(1, 1, 1, -1) + 3 * c.view(1, -1, 1, 1)))
    radius = min(float(eps), steps * float(step_size))
    if norm == "linf":
        delta = radius * pattern.sign()
    else:
        delta = radius * pattern / pattern.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    with torch.no_grad():
        logits = model(images)
    index = labels.view(-1).long()
    side = torch.sign(logits[torch.arange(len(images)), index] - logits.mean(1)).view(-1, 1, 1, 1)
    side = torch.where(side == 0, torch.ones_like(side), side)
    return (images + (1 if targeted else -1) * side * delta).clamp(0, 1).detach()


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------
def images(n: int = 3, size: int = 8, seed: int = 0, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Random images (n,3,size,size), uniform in [lo,hi] (default [0,1]), from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(n, 3, size, size, generator=g)


def brightness_images(levels, size: int = 4) -> torch.Tensor:
    """Flat gray images (N,3,size,size) with the given intensities."""
    levels = torch.as_tensor(levels, dtype=torch.float32)
    return levels.view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------
def assert_close(actual, expected: torch.Tensor, what: str, *, rtol: float, atol: float) -> None:
    """Assert that ``actual`` is a tensor of ``expected``'s shape with
    ``max|actual - expected| <= atol + rtol * max|expected|`` (computed in float64).

    ``rtol`` is relative to the largest expected value (one scale for the whole tensor, so values
    near 0 don't get a tolerance of their own); ``rtol=0`` makes it a plain absolute tolerance.
    """
    assert isinstance(actual, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
    if expected.numel() == 0:  # same shape, nothing to compare
        return
    expected = expected.detach().double()
    diff = (actual.detach().double() - expected).abs().max().item()
    scale = expected.abs().max().item()
    allowed = atol + rtol * scale if rtol else atol
    relative = f", {rtol:g} of the largest expected value {scale:.3g} plus {atol:g}" if rtol else ""
    assert diff <= allowed, f"{what}: largest difference {diff:.3g} (allowed {allowed:.3g}{relative})"


def assert_raises(fn: Callable[[], object], exc: type[BaseException], match: str = "", what: str = "") -> str:
    """Call ``fn()`` and assert that it raises ``exc`` with a message that ``re.search``-matches ``match``.

    Returns the message. ``NotImplementedError`` (an unfinished exercise) always propagates, even
    when ``exc`` is ``RuntimeError``, its base class; any other exception, or none, fails the
    assertion. ``what`` names the call in the failure message.
    """
    what = f"{what}: " if what else ""
    try:
        fn()
    except NotImplementedError:
        raise
    except exc as error:
        message = str(error)
        assert re.search(match, message), f"{what}the {exc.__name__} should say {match!r}; it says {message!r}"
        return message
    except Exception as error:  # noqa: BLE001 - report the wrong exception type
        raise AssertionError(f"{what}expected {exc.__name__}, got {type(error).__name__}: {error}") from None
    raise AssertionError(f"{what}expected {exc.__name__}, but nothing was raised")


# --------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------
_HOOK_KINDS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")


def count_hooks(model: nn.Module) -> int:
    """How many forward and backward hooks (pre and post) ``model`` and its submodules hold."""
    return sum(len(getattr(m, kind)) for m in model.modules() for kind in _HOOK_KINDS)


class Forward(NamedTuple):
    """One forward pass seen by :func:`record_forwards`."""

    input: torch.Tensor  #: a detached copy of the first positional argument
    inference_mode: bool  #: whether ``torch.inference_mode()`` was on


def record_forwards(model: nn.Module) -> list[Forward]:
    """Make ``model`` record its forward passes; returns the list that each call appends a :class:`Forward` to.

    The recording is a forward pre-hook on ``model`` (it counts in :func:`count_hooks`).
    """
    seen: list[Forward] = []

    def record(module, args):
        seen.append(Forward(args[0].detach().clone(), torch.is_inference_mode_enabled()))

    model.register_forward_pre_hook(record)
    return seen
