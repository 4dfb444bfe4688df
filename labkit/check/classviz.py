"""Public checks for Lab 3 (class visualization): ``check.classviz.<exercise>()``.

Every check runs in well under a second on tiny deterministic models defined
here, and compares with an independent computation: ``torch.roll``, scipy's
``gaussian_filter1d``, the closed-form step of a linear model, and the loops
written out as the docstrings describe them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labkit.check.runner import Exercise, check


# --------------------------------------------------------------------------
# Tiny models with known gradients (also used by tests and hidden tests)
# --------------------------------------------------------------------------
class LinearModel(nn.Module):
    """logits = W @ flatten(x) + b, so d logit_t / dx = W[t] exactly."""

    def __init__(self, size: int = 8, num_classes: int = 5, seed: int = 0, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(scale * torch.randn(num_classes, 3 * size * size, generator=g), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(num_classes, generator=g), requires_grad=False)
        self.input_size, self.num_classes = size, num_classes

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


class TinyNet(nn.Module):
    """A small smooth conv net (conv, tanh, conv, tanh, global average pool, linear)."""

    def __init__(self, size: int = 16, num_classes: int = 10, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, num_classes)
        for p in self.parameters():
            p.data = 0.5 * torch.randn(p.shape, generator=g)
            p.requires_grad_(False)
        self.input_size, self.num_classes = size, num_classes
        self.eval()

    def forward(self, x):
        x = torch.tanh(self.conv1(x - 0.5))
        x = torch.tanh(self.conv2(x))
        return self.fc(x.mean((2, 3)))


# --------------------------------------------------------------------------
# Independent computations
# --------------------------------------------------------------------------
def reference_jitter(x: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """out[..., i, j] = x[..., (i - oy) % H, (j - ox) % W], by explicit indexing."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h) - oy) % h
    cols = (torch.arange(w) - ox) % w
    return x[..., rows[:, None], cols[None, :]]


def reference_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d along H then W (mode reflect, truncate 4)."""
    from scipy.ndimage import gaussian_filter1d

    a = x.detach().double().numpy()
    a = gaussian_filter1d(a, sigma, axis=2, mode="reflect", truncate=4.0)
    a = gaussian_filter1d(a, sigma, axis=3, mode="reflect", truncate=4.0)
    return torch.from_numpy(np.ascontiguousarray(a)).to(x.dtype)


def reference_step(x, model, target, l2_reg, lr):
    """One step, with the gradient from autograd on a separate graph."""
    x0 = x.detach().clone().requires_grad_(True)
    t = torch.as_tensor(target).reshape(-1).expand(x.shape[0])
    obj = model(x0)[torch.arange(x.shape[0]), t].sum() - l2_reg * (x0 - 0.5).pow(2).sum()
    obj.backward()
    g = x0.grad
    g = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x.detach() + lr * g).clamp(0, 1)


def reference_visualize_class(model, target, steps, init, l2_reg, lr, blur_every, blur_sigma, max_jitter, seed):
    """The documented loop of visualize_class, written independently."""
    n = len(target) if isinstance(target, (list, tuple)) else 1
    size = init.shape[-1] if init is not None else model.input_size
    gen = torch.Generator().manual_seed(seed)
    if init is None:
        img = (0.5 + 0.2 * torch.randn(n, 3, size, size, generator=gen)).clamp(0, 1)
    else:
        img = init.clone().expand(n, -1, -1, -1).contiguous()
    t = torch.tensor(target if n > 1 or isinstance(target, (list, tuple)) else [target])
    for step in range(steps):
        ox, oy = torch.randint(-max_jitter, max_jitter + 1, (2,), generator=gen).tolist()
        img = reference_jitter(img, ox, oy)
        img = reference_step(img, model, t, l2_reg, lr)
        img = reference_jitter(img, -ox, -oy)
        if blur_every and step % blur_every == 0:
            img = reference_blur(img, blur_sigma).clamp(0, 1)
    return img


def reference_visualize_class_robust(model, target, steps, seed, lr=0.05, decay=1.0, pad=16, max_jitter=8,
                                     scale_range=(0.9, 1.1), max_rotation=10.0, module=None):
    """The documented loop of visualize_class_robust, using the module's scaffolding."""
    if module is None:
        import labkit.classviz as module
    t = torch.as_tensor(target).reshape(-1)
    n, size = len(t), model.input_size
    gen = torch.Generator().manual_seed(seed)
    params = module.fourier_init(n, size, generator=gen).requires_grad_(True)
    opt = torch.optim.Adam([params], lr=lr)
    for _ in range(steps):
        img = module.fourier_to_image(params, size, decay)
        x = module.random_transform(img, gen, pad, max_jitter, scale_range, max_rotation)
        loss = -model(x)[torch.arange(n), t].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return module.fourier_to_image(params, size, decay).detach()


def _module_of(fn):
    import importlib
    import sys

    return sys.modules.get(fn.__module__) or importlib.import_module(fn.__module__)


def _close(a, b, what, atol=1e-5):
    assert isinstance(a, torch.Tensor), f"{what}: expected a tensor, got {type(a).__name__}"
    assert a.shape == b.shape, f"{what}: expected shape {tuple(b.shape)}, got {tuple(a.shape)}"
    err = float((a.detach().double() - b.double()).abs().max())
    assert err <= atol, f"{what}: largest difference {err:.3g} (allowed {atol:g})"


# --------------------------------------------------------------------------
# jitter
# --------------------------------------------------------------------------
@check("shifts right by ox and down by oy, circularly (exact)", hint="torch.roll(img, shifts=(oy, ox), dims=(2, 3))")
def jitter_exact(fn):
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    for ox, oy in [(1, 0), (0, 2), (3, -2), (-9, 11)]:
        out = fn(x, ox, oy)
        assert torch.equal(out, reference_jitter(x, ox, oy)), f"jitter(x, {ox}, {oy}) is not the expected circular shift"


@check("jittering back by (-ox, -oy) gives the image back, bit for bit; the input is untouched")
def jitter_inverse(fn):
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    keep = x.clone()
    back = fn(fn(x, 4, -3), -4, 3)
    assert torch.equal(x, keep), "jitter modified its input in place"
    assert torch.equal(back, x), "jitter(jitter(x, 4, -3), -4, 3) != x"


jitter = Exercise("classviz", "jitter", [jitter_exact, jitter_inverse])


# --------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------
@check("equals scipy's gaussian_filter1d along H then W (mode='reflect', truncate=4)",
       hint="radius r = int(4*sigma + 0.5); pad with pad_symmetric; conv2d with groups=C, once per axis")
def blur_matches_scipy(fn):
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for sigma in (0.5, 1.0, 2.5):
        _close(fn(x, sigma), reference_blur(x, sigma), f"blur(x, {sigma})", atol=1e-9)


@check("keeps a constant image constant and the shape, and doesn't modify its input")
def blur_constant(fn):
    x = torch.full((1, 3, 7, 10), 0.3)
    out = fn(x, 1.5)
    _close(out, torch.full_like(x, 0.3), "blur of a constant image", atol=1e-6)
    assert torch.equal(x, torch.full_like(x, 0.3)), "blur modified its input"


blur = Exercise("classviz", "blur", [blur_matches_scipy, blur_constant])


# --------------------------------------------------------------------------
# class_visualization_step
# --------------------------------------------------------------------------
@check("one step raises the target logit (sign of the gradient)",
       hint="gradient *ascent*: img + lr * grad / ||grad||, with the gradient of the logit w.r.t. the input")
def step_raises_logit(fn):
    model = TinyNet()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 0.6 + 0.2
    targets = torch.tensor([0, 4, 7])
    before = model(x)[torch.arange(3), targets]
    out = fn(x, model, targets, 0.0, 0.05)
    after = model(out)[torch.arange(3), targets]
    assert (after > before).all(), f"target logits went from {before.tolist()} to {after.tolist()}"


@check("on a linear model the step is exactly x + lr * g/||g|| with g = W[t] - 2*l2_reg*(x - 0.5)",
       hint="normalize the gradient by its L2 norm per image, then clamp to [0,1]")
def step_exact_linear(fn):
    model = LinearModel(size=8, num_classes=5, scale=0.01)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * 0.5 + 0.25
    for l2 in (0.0, 0.05):
        out = fn(x, model, 3, l2, 0.1)
        g = model.weight[3].view(1, 3, 8, 8) - 2 * l2 * (x - 0.5)
        expected = (x + 0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
        _close(out, expected, f"step with l2_reg={l2}")


@check("with a constant model, the L2 term alone moves the image straight towards gray by lr",
       hint="the objective is logit - l2_reg * ||img - 0.5||^2: its gradient is -2 l2_reg (img - 0.5)")
def step_l2_towards_gray(fn):
    model = LinearModel(size=8, num_classes=5, scale=0.0)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    d = x - 0.5
    out = fn(x, model, 1, 1.0, 0.5)
    _close(out, (x - 0.5 * d / d.norm()).clamp(0, 1), "pure L2 step")
    assert (out - 0.5).norm() < d.norm(), "the L2 step did not bring the image closer to gray"


@check("returns a new tensor in [0,1] without a graph, and leaves img unchanged")
def step_contract(fn):
    model = TinyNet()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    keep = x.clone()
    out = fn(x, model, 2, 1e-3, 50.0)
    assert torch.equal(x, keep), "class_visualization_step modified img in place"
    assert out.shape == x.shape, f"expected shape {tuple(x.shape)}, got {tuple(out.shape)}"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, "clamp the result to [0,1]"
    assert not out.requires_grad, "return a detached tensor (img.detach() + ...)"


class_visualization_step = Exercise("classviz", "class_visualization_step",
                                    [step_raises_logit, step_exact_linear, step_l2_towards_gray, step_contract])


# --------------------------------------------------------------------------
# visualize_class
# --------------------------------------------------------------------------
@check("follows the documented loop exactly (jitter, step, unjitter, blur every blur_every steps)",
       hint="draw ox, oy with torch.randint(-max_jitter, max_jitter + 1, (2,), generator=gen); "
            "blur when t % blur_every == 0, then clamp")
def visualize_matches_loop(fn):
    model = TinyNet()
    kw = dict(steps=7, l2_reg=1e-2, lr=0.5, blur_every=3, blur_sigma=0.7, max_jitter=3, seed=11)
    out = fn(model, 5, init=None, **kw)
    _close(out, reference_visualize_class(model, 5, init=None, **kw), "visualize_class from noise", atol=1e-4)
    photo = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(7))
    keep = photo.clone()
    out = fn(model, [1, 2], init=photo, **kw)
    assert torch.equal(photo, keep), "visualize_class modified init in place"
    _close(out, reference_visualize_class(model, [1, 2], init=photo, **kw), "visualize_class from a photo", atol=1e-4)


@check("the same seed gives the same image, another seed another one")
def visualize_deterministic(fn):
    model = TinyNet()
    a = fn(model, 3, steps=4, seed=1)
    b = fn(model, 3, steps=4, seed=1)
    c = fn(model, 3, steps=4, seed=2)
    assert a.shape == (1, 3, 16, 16), f"expected (1,3,16,16) (model.input_size), got {tuple(a.shape)}"
    assert torch.equal(a, b), "two runs with seed=1 differ: draw every random number from the seeded generator"
    assert not torch.equal(a, c), "seed=1 and seed=2 give the same image"


@check("raises the target logit and calls callback(step, img) after every step")
def visualize_raises_and_calls_back(fn):
    model = TinyNet()
    calls = []
    out = fn(model, 6, steps=15, lr=1.0, callback=lambda step, img: calls.append((step, tuple(img.shape))))
    start = (0.5 + 0.2 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert model(out)[0, 6] > model(start)[0, 6] + 0.1, "the target logit did not go up"
    assert [c[0] for c in calls] == list(range(1, 16)), f"callback steps: expected 1..15, got {[c[0] for c in calls]}"
    assert all(s == (1, 3, 16, 16) for _, s in calls), "callback should receive the current image (1,3,H,W)"


visualize_class = Exercise("classviz", "visualize_class",
                           [visualize_matches_loop, visualize_deterministic, visualize_raises_and_calls_back])


# --------------------------------------------------------------------------
# visualize_class_robust
# --------------------------------------------------------------------------
@check("returns (N,3,H,W) in [0,1] and follows the documented Adam loop exactly",
       hint="params = fourier_init(n, size, generator=gen).requires_grad_(True); per step: "
            "fourier_to_image, random_transform(img, gen, ...), loss = -logit, Adam step")
def robust_matches_loop(fn):
    model = TinyNet()
    out = fn(model, [2, 9], steps=5, seed=3, lr=0.1, pad=4, max_jitter=2)
    assert out.shape == (2, 3, 16, 16), f"expected (2,3,16,16), got {tuple(out.shape)}"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, "the image must be in [0,1]"
    expected = reference_visualize_class_robust(model, [2, 9], steps=5, seed=3, lr=0.1, pad=4, max_jitter=2,
                                                module=_module_of(fn))
    _close(out, expected, "visualize_class_robust", atol=1e-4)


@check("the same seed gives the same image, another seed another one; one image for an int target")
def robust_deterministic(fn):
    model = TinyNet()
    a, b, c = (fn(model, 4, steps=3, seed=s) for s in (5, 5, 6))
    assert a.shape == (1, 3, 16, 16), f"expected (1,3,16,16), got {tuple(a.shape)}"
    assert torch.equal(a, b), "two runs with the same seed differ"
    assert not torch.equal(a, c), "different seeds give the same image"


@check("raises the target logit above the starting image's")
def robust_raises_logit(fn):
    model = TinyNet()
    mod = _module_of(fn)
    out = fn(model, 8, steps=20, seed=0, lr=0.1)
    start = mod.fourier_to_image(mod.fourier_init(1, 16, generator=torch.Generator().manual_seed(0)), 16)
    assert model(out)[0, 8] > model(start)[0, 8] + 0.1, "the target logit did not go up: minimize -logit"


visualize_class_robust = Exercise("classviz", "visualize_class_robust",
                                  [robust_matches_loop, robust_deterministic, robust_raises_logit])


#: Every exercise of the lab, in notebook order.
EXERCISES = [jitter, blur, class_visualization_step, visualize_class, visualize_class_robust]
