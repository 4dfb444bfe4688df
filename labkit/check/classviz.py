"""Public checks for Lab 3 (class visualization): ``check.classviz.<exercise>()``.

Every check runs in well under a second on the tiny deterministic models of
:mod:`labkit.check.toys`, and checks behaviour: hand-computed shifts, scipy's ``gaussian_filter1d``,
the closed-form step of a linear model, loops whose result is known in closed
form (one step; a model that only pulls towards gray; a model that ignores its
input), determinism and the target logit going up. The exact outputs of the
loops on random inputs are left to the hidden tests.
"""

from __future__ import annotations

import torch

from labkit.check.runner import Exercise, check
from labkit.check.toys import LinearClassifier, SmoothConvNet, assert_close, images, record_forwards


def _module_of(fn):
    import importlib
    import sys

    return sys.modules.get(fn.__module__) or importlib.import_module(fn.__module__)


# --------------------------------------------------------------------------
# jitter
# --------------------------------------------------------------------------
@check("shifts right by ox and down by oy, circularly (exact)", hint="torch.roll(img, shifts=(oy, ox), dims=(2, 3))")
def jitter_exact(fn):
    x = torch.tensor([[0.0, 1, 2], [3, 4, 5]]).view(1, 1, 2, 3)
    for (ox, oy), rows in [
        ((1, 0), [[2, 0, 1], [5, 3, 4]]),
        ((0, 1), [[3, 4, 5], [0, 1, 2]]),
        ((-1, 1), [[4, 5, 3], [1, 2, 0]]),
        ((4, -3), [[5, 3, 4], [2, 0, 1]]),
    ]:
        out = fn(x, ox, oy)
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, (
            f"jitter(x, {ox}, {oy}): expected shape (1,1,2,3)"
        )
        assert out.view(2, 3).tolist() == rows, (
            f"jitter({x.view(2, 3).tolist()}, {ox}, {oy}) gave {out.view(2, 3).tolist()}, expected {rows}"
        )
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    for ox, oy in [(3, -2), (-9, 11)]:
        out = fn(x, ox, oy)
        for i, j in [(0, 0), (4, 6), (2, 3)]:  # pixel (i, j) lands on ((i + oy) % H, (j + ox) % W)
            moved = out[:, :, (i + oy) % 5, (j + ox) % 7]
            assert torch.equal(moved, x[:, :, i, j]), (
                f"jitter(x, {ox}, {oy}): pixel ({i}, {j}) is not at ({(i + oy) % 5}, {(j + ox) % 7})"
            )


@check("jittering back by (-ox, -oy) gives the image back, bit for bit; the input is untouched")
def jitter_inverse(fn):
    x = images(1, 6, seed=1)
    keep = x.clone()
    back = fn(fn(x, 4, -3), -4, 3)
    assert torch.equal(x, keep), "jitter modified its input in place"
    assert torch.equal(back, x), "jitter(jitter(x, 4, -3), -4, 3) != x"


jitter = Exercise("classviz", "jitter", [jitter_exact, jitter_inverse])


# --------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------
@check(
    "equals scipy's gaussian_filter1d along H then W (mode='reflect', truncate=4)",
    hint="radius r = int(4*sigma + 0.5); pad with pad_symmetric; conv2d with groups=C, once per axis",
)
def blur_matches_scipy(fn):
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    from scipy.ndimage import gaussian_filter1d

    for sigma in (0.5, 1.0, 2.5):
        scipy = gaussian_filter1d(
            gaussian_filter1d(x.numpy(), sigma, axis=2, mode="reflect", truncate=4.0),
            sigma,
            axis=3,
            mode="reflect",
            truncate=4.0,
        )
        assert_close(fn(x, sigma), torch.from_numpy(scipy), f"blur(x, {sigma})", rtol=0, atol=1e-9)


@check("keeps a constant image constant and the shape, and doesn't modify its input")
def blur_constant(fn):
    x = torch.full((1, 3, 7, 10), 0.3)
    out = fn(x, 1.5)
    assert_close(out, torch.full_like(x, 0.3), "blur of a constant image", rtol=0, atol=1e-6)
    assert torch.equal(x, torch.full_like(x, 0.3)), "blur modified its input"


blur = Exercise("classviz", "blur", [blur_matches_scipy, blur_constant])


# --------------------------------------------------------------------------
# class_visualization_step
# --------------------------------------------------------------------------
@check(
    "one step raises the target logit (sign of the gradient)",
    hint="gradient *ascent*: img + lr * grad / ||grad||, with the gradient of the logit w.r.t. the input",
)
def class_visualization_step_raises_logit(fn):
    model = SmoothConvNet()
    x = images(3, 16, seed=3, lo=0.2, hi=0.8)
    targets = torch.tensor([0, 4, 7])
    before = model(x)[torch.arange(3), targets]
    out = fn(x, model, targets, 0.0, 0.05)
    after = model(out)[torch.arange(3), targets]
    assert (after > before).all(), f"target logits went from {before.tolist()} to {after.tolist()}"


@check(
    "on a linear model the step is exactly x + lr * g/||g|| with g = W[t] - 2*l2_reg*(x - 0.5)",
    hint="normalize the gradient by its L2 norm per image, then clamp to [0,1]",
)
def class_visualization_step_exact_linear(fn):
    model = LinearClassifier(size=8, num_classes=5, scale=0.01)
    x = images(2, 8, seed=4, lo=0.25, hi=0.75)
    for l2 in (0.0, 0.05):
        out = fn(x, model, 3, l2, 0.1)
        g = model.weight[3].view(1, 3, 8, 8) - 2 * l2 * (x - 0.5)
        expected = (x + 0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
        assert_close(out, expected, f"step with l2_reg={l2}", rtol=0, atol=1e-5)


@check(
    "with a constant model, the L2 term alone moves the image straight towards gray by lr",
    hint="the objective is logit - l2_reg * ||img - 0.5||^2: its gradient is -2 l2_reg (img - 0.5)",
)
def class_visualization_step_l2_towards_gray(fn):
    model = LinearClassifier(size=8, num_classes=5, scale=0.0)
    x = images(1, 8, seed=5)
    d = x - 0.5
    out = fn(x, model, 1, 1.0, 0.5)
    assert_close(out, (x - 0.5 * d / d.norm()).clamp(0, 1), "pure L2 step", rtol=0, atol=1e-5)
    assert (out - 0.5).norm() < d.norm(), "the L2 step did not bring the image closer to gray"


@check("returns a new tensor in [0,1] without a graph, and leaves img unchanged")
def class_visualization_step_contract(fn):
    model = SmoothConvNet()
    x = images(1, 16, seed=6)
    keep = x.clone()
    out = fn(x, model, 2, 1e-3, 50.0)
    assert torch.equal(x, keep), "class_visualization_step modified img in place"
    assert out.shape == x.shape, f"expected shape {tuple(x.shape)}, got {tuple(out.shape)}"
    assert float(out.min()) >= 0 and float(out.max()) <= 1, "clamp the result to [0,1]"
    assert not out.requires_grad, "return a detached tensor (img.detach() + ...)"


class_visualization_step = Exercise(
    "classviz",
    "class_visualization_step",
    [
        class_visualization_step_raises_logit,
        class_visualization_step_exact_linear,
        class_visualization_step_l2_towards_gray,
        class_visualization_step_contract,
    ],
)


# --------------------------------------------------------------------------
# visualize_class
# --------------------------------------------------------------------------
@check(
    "one step is: draw (ox, oy), jitter, step, jitter back, blur (closed form on a linear model)",
    hint="init from the generator first (when init is None), then per step torch.randint(-max_jitter, "
    "max_jitter + 1, (2,), generator=gen); blur when t % blur_every == 0, then clamp",
)
def visualize_class_one_step(fn):
    from scipy.ndimage import gaussian_filter1d

    model = LinearClassifier(size=8, num_classes=5, seed=2)
    kw = dict(steps=1, l2_reg=0.05, lr=0.3, blur_every=2, blur_sigma=0.7, max_jitter=3, seed=11)
    photo = images(1, 8, seed=7, lo=0.2, hi=0.8)
    keep = photo.clone()
    for init, target in ((None, 4), (photo, [1, 2])):
        gen = torch.Generator().manual_seed(11)
        if init is None:
            x = (0.5 + 0.2 * torch.randn(1, 3, 8, 8, generator=gen)).clamp(0, 1)
        else:
            x = photo.expand(2, -1, -1, -1)
        ox, oy = torch.randint(-3, 4, (2,), generator=gen).tolist()
        # On a linear model the gradient in the jittered frame is W[t]: in x's frame, W[t] shifted back
        w = torch.roll(model.weight[torch.tensor(target).view(-1)].view(-1, 3, 8, 8), shifts=(-oy, -ox), dims=(2, 3))
        g = w - 2 * 0.05 * (x - 0.5)
        moved = (x + 0.3 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
        blurred = gaussian_filter1d(moved.double().numpy(), 0.7, axis=2, mode="reflect", truncate=4.0)
        blurred = gaussian_filter1d(blurred, 0.7, axis=3, mode="reflect", truncate=4.0)
        out = fn(model, target, init=init, **kw)
        what = "one step from noise" if init is None else "one step from a photo, two targets"
        assert_close(out, torch.from_numpy(blurred).float().clamp(0, 1), what, rtol=0, atol=1e-5)
    assert torch.equal(photo, keep), "visualize_class modified init in place"


@check(
    "many jittered steps of a model that only pulls towards gray walk straight to gray by lr per step",
    hint="jitter back by (-ox, -oy) after every step; take exactly `steps` steps",
)
def visualize_class_towards_gray(fn):
    model = LinearClassifier(size=8, num_classes=5, scale=0.0)  # the logit's gradient is 0: only the L2 term acts
    photo = images(1, 8, seed=8)
    d = photo - 0.5
    out = fn(model, 3, steps=6, init=photo, l2_reg=1.0, lr=0.25, blur_every=0, max_jitter=4, seed=5)
    assert_close(
        out, 0.5 + d * (1 - 6 * 0.25 / d.norm()), "6 steps of the L2 term alone, with jitter", rtol=0, atol=1e-5
    )


def _assert_seeded(run, seed: int, other: int):
    """``run(seed)`` twice gives the same image (1,3,16,16), ``run(other)`` another one."""
    a, b, c = run(seed), run(seed), run(other)
    assert a.shape == (1, 3, 16, 16), f"expected (1,3,16,16) (model.input_size), got {tuple(a.shape)}"
    assert torch.equal(a, b), f"two runs with seed={seed} differ: draw every random number from the seeded generator"
    assert not torch.equal(a, c), f"seed={seed} and seed={other} give the same image"


@check("the same seed gives the same image, another seed another one")
def visualize_class_deterministic(fn):
    model = SmoothConvNet()
    _assert_seeded(lambda seed: fn(model, 3, steps=4, seed=seed), 1, 2)


@check("raises the target logit and calls callback(step, img) after every step")
def visualize_class_raises_and_calls_back(fn):
    model = SmoothConvNet()
    calls = []
    out = fn(model, 6, steps=15, lr=1.0, callback=lambda step, img: calls.append((step, tuple(img.shape))))
    start = (0.5 + 0.2 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert model(out)[0, 6] > model(start)[0, 6] + 0.1, "the target logit did not go up"
    assert [c[0] for c in calls] == list(range(1, 16)), f"callback steps: expected 1..15, got {[c[0] for c in calls]}"
    assert all(s == (1, 3, 16, 16) for _, s in calls), "callback should receive the current image (1,3,H,W)"


visualize_class = Exercise(
    "classviz",
    "visualize_class",
    [
        visualize_class_one_step,
        visualize_class_towards_gray,
        visualize_class_deterministic,
        visualize_class_raises_and_calls_back,
    ],
)


# --------------------------------------------------------------------------
# visualize_class_robust
# --------------------------------------------------------------------------
@check(
    "returns (N,3,H,W) in [0,1]; scores a random_transform of the Fourier image drawn from the seed's generator",
    hint="params = fourier_init(n, size, generator=gen).requires_grad_(True); per step: "
    "fourier_to_image, random_transform(img, gen, ...), loss = -logit, Adam step",
)
def visualize_class_robust_first_input(fn):
    mod = _module_of(fn)
    model = SmoothConvNet()
    forwards = record_forwards(model)
    kw = dict(decay=0.8, pad=4, max_jitter=2, scale_range=(0.95, 1.05), max_rotation=5.0)
    out = fn(model, [2, 9], steps=3, seed=3, lr=0.1, **kw)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 16, 16), (
        f"expected (2,3,16,16), got {tuple(getattr(out, 'shape', ()))}"
    )
    assert float(out.min()) >= 0 and float(out.max()) <= 1, "the image must be in [0,1]"
    assert not out.requires_grad, "return a detached image"
    assert len(forwards) == 3, f"expected one forward pass per step (3), counted {len(forwards)}"
    gen = torch.Generator().manual_seed(3)
    start = mod.fourier_to_image(mod.fourier_init(2, 16, generator=gen), 16, 0.8)
    first = mod.random_transform(start, gen, 4, 2, (0.95, 1.05), 5.0)
    assert_close(forwards[0].input, first, "the model's input at the first step", rtol=0, atol=1e-5)


@check(
    "with a model that ignores its input, Adam does not move: the result is the starting Fourier image",
    hint="Adam([params], lr=lr) on -logit; return fourier_to_image(params, size, decay) after the loop",
)
def visualize_class_robust_constant_model(fn):
    mod = _module_of(fn)
    model = LinearClassifier(size=12, num_classes=5, scale=0.0)  # constant logits: the gradient is 0
    out = fn(model, [0, 4], steps=4, seed=8, lr=0.2, decay=0.5)
    expected = mod.fourier_to_image(mod.fourier_init(2, 12, generator=torch.Generator().manual_seed(8)), 12, 0.5)
    assert_close(out, expected, "the image of a model with zero gradient", rtol=0, atol=1e-6)


@check("the same seed gives the same image, another seed another one; one image for an int target")
def visualize_class_robust_deterministic(fn):
    model = SmoothConvNet()
    _assert_seeded(lambda seed: fn(model, 4, steps=3, seed=seed), 5, 6)


@check("raises the target logit above the starting image's")
def visualize_class_robust_raises_logit(fn):
    model = SmoothConvNet()
    mod = _module_of(fn)
    out = fn(model, 8, steps=20, seed=0, lr=0.1)
    start = mod.fourier_to_image(mod.fourier_init(1, 16, generator=torch.Generator().manual_seed(0)), 16)
    assert model(out)[0, 8] > model(start)[0, 8] + 0.1, "the target logit did not go up: minimize -logit"


visualize_class_robust = Exercise(
    "classviz",
    "visualize_class_robust",
    [
        visualize_class_robust_first_input,
        visualize_class_robust_constant_model,
        visualize_class_robust_deterministic,
        visualize_class_robust_raises_logit,
    ],
)


#: Every exercise of the lab, in notebook order.
EXERCISES = [jitter, blur, class_visualization_step, visualize_class, visualize_class_robust]
