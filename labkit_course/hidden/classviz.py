"""Hidden tests of Lab 3 (class visualization): random inputs; the reference gives the answers.

Each function takes a ``random.Random`` (drawn from the per-student seed) and returns the cases
of one exercise. See :mod:`labkit_course.judge` for what a case is and how it is judged. The
models are the public checks' tiny ones (:class:`labkit.check.toys.LinearClassifier`, whose step is
known in closed form, and :class:`labkit.check.toys.SmoothConvNet`), and the loops run a few steps.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from labkit_course.judge import Call, Case, Mismatch, Toy, compare

EXERCISES = ("jitter", "blur", "class_visualization_step", "visualize_class", "visualize_class_robust")
LINEAR = "labkit.check.toys:LinearClassifier"
TINY = "labkit.check.toys:SmoothConvNet"


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def jitter(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(5):
        n, c, h, w = (rng.randint(1, 8) for _ in range(4))
        ox, oy = rng.randint(-20, 20), rng.randint(-20, 20)
        cases.append(
            Case(
                [Call.of(torch.rand(n, c, h, w, generator=g), ox, oy)],
                atol=0,
                rtol=0,
                describe=f"{n} images of {c} channels, {h}x{w}, shifted by ({ox}, {oy})",
            )
        )
    return cases


def blur(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for k in range(5):
        h, w = rng.randint(2, 19), rng.randint(2, 19)
        sigma = 0.2 + 3 * rng.random()
        dtype = torch.float32 if k == 4 else torch.float64
        x = torch.rand(2, 3, h, w, generator=g, dtype=dtype)
        cases.append(
            Case(
                [Call.of(x, sigma)],
                atol=1e-9 if dtype == torch.float64 else 1e-6,
                rtol=0,
                describe=f"2 images {h}x{w} ({'float32' if k == 4 else 'float64'}), sigma {sigma:.2f}",
            )
        )
    return cases


def class_visualization_step(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(4):
        size, k = rng.randint(3, 9), rng.randint(2, 7)
        model = Toy(LINEAR, size=size, num_classes=k, seed=rng.randrange(10**6), scale=0.01)
        x = 0.3 + 0.4 * torch.rand(3, 3, size, size, generator=g)
        t = torch.randint(0, k, (3,), generator=g)
        l2, lr = 0.1 * rng.random(), 0.2 * rng.random() + 0.01
        cases.append(
            Case(
                [Call.of(x, model, t, l2, lr)],
                check=_linear_step,
                describe=f"a linear model, 3 images {size}x{size}, l2_reg {l2:.3f}, lr {lr:.3f}",
            )
        )
    # a small nonlinear net, one int target for the batch; steps large enough to clamp
    size = rng.randint(8, 16)
    model = Toy(TINY, size=size, seed=rng.randrange(10**6))
    x = torch.rand(2, 3, size, size, generator=g)
    cases.append(
        Case(
            [Call.of(x, model, rng.randrange(10), 1e-3 * rng.random(), 0.5 + 5 * rng.random())],
            describe=f"a small CNN, 2 images {size}x{size}",
        )
    )
    return cases


def _linear_step(results, expected, calls):
    """The step of a linear model in closed form: g = W[t] - 2 l2_reg (x - 0.5)."""
    (result,) = results
    (x, model, t, l2, lr), _ = calls[0]
    grad = model.weight[t].view_as(x) - 2 * l2 * (x - 0.5)
    closed_form = (x + lr * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
    compare(result, closed_form.numpy(), atol=1e-5, rtol=1e-4)


def _tiny(rng: random.Random, lo: int, hi: int):
    size = rng.randint(lo, hi)
    return size, Toy(TINY, size=size, seed=rng.randrange(10**6))


def _same_seed_twice(rng: random.Random, steps: int) -> Case:
    """The same call twice on a small random CNN: the same seed must give the same image, bit for bit."""
    size, model = _tiny(rng, 8, 14)
    call = Call.of(model, rng.randrange(10), steps=steps, seed=rng.randrange(10**6))
    return Case([call, call], check=_same_twice, describe=f"a small CNN, {size}x{size}, twice with the same seed")


def visualize_class(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for start in ("noise", "photo"):
        size, model = _tiny(rng, 8, 19)
        kw = dict(
            steps=rng.randint(1, 7),
            l2_reg=0.05 * rng.random(),
            lr=rng.random() + 0.1,
            blur_every=rng.randint(0, 3),
            blur_sigma=rng.random() + 0.3,
            max_jitter=rng.randint(0, 4),
            seed=rng.randrange(10**6),
        )
        if start == "noise":
            target = rng.randrange(10)
        else:
            kw["init"] = torch.rand(1, 3, size, size, generator=g)
            target = [rng.randrange(10) for _ in range(2)]
        cases.append(
            Case(
                [Call.of(model, target, **kw)],
                atol=1e-4,
                describe=f"a small CNN, {size}x{size}, {kw['steps']} steps from {start}",
            )
        )
    cases.append(_same_seed_twice(rng, steps=3))
    return cases


def visualize_class_robust(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for targets in (2, 1):
        size, model = _tiny(rng, 8, 23)
        kw = dict(
            steps=rng.randint(1, 5),
            seed=rng.randrange(10**6),
            lr=0.1 * rng.random() + 0.01,
            pad=rng.randint(0, 5),
            max_jitter=rng.randint(0, 3),
        )
        target = torch.randint(0, 10, (2,), generator=g) if targets == 2 else rng.randrange(10)
        cases.append(
            Case(
                [Call.of(model, target, **kw)],
                atol=1e-4,
                describe=f"a small CNN, {size}x{size}, {kw['steps']} steps, "
                f"{'2 targets' if targets == 2 else 'one int target'}",
            )
        )
    cases.append(_same_seed_twice(rng, steps=2))
    return cases


def _same_twice(results, expected, calls):
    """The reference's image, and the very same image twice (bit for bit) for the same seed."""
    first, second = results
    compare(first, expected[0], atol=1e-4)
    if not np.array_equal(first, second):
        raise Mismatch("value", "two runs with the same seed give different images")
