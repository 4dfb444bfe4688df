"""Public checks for Lab 3 (class visualization): ``check.classviz.<exercise>()``.

Every check runs in well under a second on tiny deterministic models defined
here, and checks behaviour: hand-computed shifts, scipy's ``gaussian_filter1d``,
the closed-form step of a linear model, loops whose result is known in closed
form (one step; a model that only pulls towards gray; a model that ignores its
input), determinism and the target logit going up. The exact outputs of the
loops on random inputs are left to the hidden tests.
"""
from __future__ import annotations

import torch
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
    x = torch.tensor([[0.0, 1, 2], [3, 4, 5]]).view(1, 1, 2, 3)
    for (ox, oy), rows in [((1, 0), [[2, 0, 1], [5, 3, 4]]), ((0, 1), [[3, 4, 5], [0, 1, 2]]),
                           ((-1, 1), [[4, 5, 3], [1, 2, 0]]), ((4, -3), [[5, 3, 4], [2, 0, 1]])]:
        out = fn(x, ox, oy)
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, f"jitter(x, {ox}, {oy}): expected shape (1,1,2,3)"
        assert out.view(2, 3).tolist() == rows, f"jitter({x.view(2, 3).tolist()}, {ox}, {oy}) gave {out.view(2, 3).tolist()}, expected {rows}"
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    for ox, oy in [(3, -2), (-9, 11)]:
        out = fn(x, ox, oy)
        for i, j in [(0, 0), (4, 6), (2, 3)]:  # pixel (i, j) lands on ((i + oy) % H, (j + ox) % W)
            moved = out[:, :, (i + oy) % 5, (j + ox) % 7]
            assert torch.equal(moved, x[:, :, i, j]), f"jitter(x, {ox}, {oy}): pixel ({i}, {j}) is not at ({(i + oy) % 5}, {(j + ox) % 7})"


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
    from scipy.ndimage import gaussian_filter1d

    for sigma in (0.5, 1.0, 2.5):
        scipy = gaussian_filter1d(gaussian_filter1d(x.numpy(), sigma, axis=2, mode="reflect", truncate=4.0),
                                  sigma, axis=3, mode="reflect", truncate=4.0)
        _close(fn(x, sigma), torch.from_numpy(scipy), f"blur(x, {sigma})", atol=1e-9)


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
@check("one step is: draw (ox, oy), jitter, step, jitter back, blur (closed form on a linear model)",
       hint="init from the generator first (when init is None), then per step torch.randint(-max_jitter, "
            "max_jitter + 1, (2,), generator=gen); blur when t % blur_every == 0, then clamp")
def visualize_one_step(fn):
    from scipy.ndimage import gaussian_filter1d

    model = LinearModel(size=8, num_classes=5, seed=2)
    kw = dict(steps=1, l2_reg=0.05, lr=0.3, blur_every=2, blur_sigma=0.7, max_jitter=3, seed=11)
    photo = 0.2 + 0.6 * torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    keep = photo.clone()
    for init, target in ((None, 4), (photo, [1, 2])):
        gen = torch.Generator().manual_seed(11)
        x = (0.5 + 0.2 * torch.randn(1, 3, 8, 8, generator=gen)).clamp(0, 1) if init is None else photo.expand(2, -1, -1, -1)
        ox, oy = torch.randint(-3, 4, (2,), generator=gen).tolist()
        # On a linear model the gradient in the jittered frame is W[t]: in x's frame, W[t] shifted back
        w = torch.roll(model.weight[torch.tensor(target).view(-1)].view(-1, 3, 8, 8), shifts=(-oy, -ox), dims=(2, 3))
        g = w - 2 * 0.05 * (x - 0.5)
        moved = (x + 0.3 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
        blurred = gaussian_filter1d(gaussian_filter1d(moved.double().numpy(), 0.7, axis=2, mode="reflect", truncate=4.0),
                                    0.7, axis=3, mode="reflect", truncate=4.0)
        out = fn(model, target, init=init, **kw)
        what = "one step from noise" if init is None else "one step from a photo, two targets"
        _close(out, torch.from_numpy(blurred).float().clamp(0, 1), what, atol=1e-5)
    assert torch.equal(photo, keep), "visualize_class modified init in place"


@check("many jittered steps of a model that only pulls towards gray walk straight to gray by lr per step",
       hint="jitter back by (-ox, -oy) after every step; take exactly `steps` steps")
def visualize_towards_gray(fn):
    model = LinearModel(size=8, num_classes=5, scale=0.0)  # the logit's gradient is 0: only the L2 term acts
    photo = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    d = photo - 0.5
    out = fn(model, 3, steps=6, init=photo, l2_reg=1.0, lr=0.25, blur_every=0, max_jitter=4, seed=5)
    _close(out, 0.5 + d * (1 - 6 * 0.25 / d.norm()), "6 steps of the L2 term alone, with jitter", atol=1e-5)


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
                           [visualize_one_step, visualize_towards_gray, visualize_deterministic,
                            visualize_raises_and_calls_back])


# --------------------------------------------------------------------------
# visualize_class_robust
# --------------------------------------------------------------------------
class _Recording(TinyNet):
    """A TinyNet that keeps a copy of every input it sees."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return super().forward(x)


@check("returns (N,3,H,W) in [0,1]; scores a random_transform of the Fourier image drawn from the seed's generator",
       hint="params = fourier_init(n, size, generator=gen).requires_grad_(True); per step: "
            "fourier_to_image, random_transform(img, gen, ...), loss = -logit, Adam step")
def robust_first_input(fn):
    mod = _module_of(fn)
    model = _Recording()
    kw = dict(decay=0.8, pad=4, max_jitter=2, scale_range=(0.95, 1.05), max_rotation=5.0)
    out = fn(model, [2, 9], steps=3, seed=3, lr=0.1, **kw)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 16, 16), f"expected (2,3,16,16), got {tuple(getattr(out, 'shape', ()))}"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, "the image must be in [0,1]"
    assert not out.requires_grad, "return a detached image"
    assert len(model.inputs) == 3, f"expected one forward pass per step (3), counted {len(model.inputs)}"
    gen = torch.Generator().manual_seed(3)
    start = mod.fourier_to_image(mod.fourier_init(2, 16, generator=gen), 16, 0.8)
    first = mod.random_transform(start, gen, 4, 2, (0.95, 1.05), 5.0)
    _close(model.inputs[0], first, "the model's input at the first step", atol=1e-5)


@check("with a model that ignores its input, Adam does not move: the result is the starting Fourier image",
       hint="Adam([params], lr=lr) on -logit; return fourier_to_image(params, size, decay) after the loop")
def robust_constant_model(fn):
    mod = _module_of(fn)
    model = LinearModel(size=12, num_classes=5, scale=0.0)  # constant logits: the gradient is 0
    out = fn(model, [0, 4], steps=4, seed=8, lr=0.2, decay=0.5)
    expected = mod.fourier_to_image(mod.fourier_init(2, 12, generator=torch.Generator().manual_seed(8)), 12, 0.5)
    _close(out, expected, "the image of a model with zero gradient", atol=1e-6)


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
                                  [robust_first_input, robust_constant_model, robust_deterministic,
                                   robust_raises_logit])


#: Every exercise of the lab, in notebook order.
EXERCISES = [jitter, blur, class_visualization_step, visualize_class, visualize_class_robust]
