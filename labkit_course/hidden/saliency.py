"""Hidden tests of Lab 1 (saliency maps): random inputs; the reference gives the answers.

Each function takes a ``random.Random`` (drawn from the per-student seed) and returns the cases
of one exercise. See :mod:`labkit_course.judge` for what a case is and how it is judged. The
models are the public checks' tiny ones (a linear model, a quadratic one, a small frozen CNN), so
the whole lab is judged in seconds.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from labkit_course.judge import Attr, Call, Case, Mismatch, Toy, compare

EXERCISES = (
    "input_gradients",
    "gradient_saliency",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "grad_cam",
    "guided_backprop",
)
CNN = "labkit.check.toys:tiny_cnn"
LINEAR = "labkit.check.toys:LinearClassifier"
QUADRATIC = "labkit.check.toys:QuadraticClassifier"


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def _cnn(rng: random.Random, **kwargs) -> Toy:
    return Toy(CNN, seed=rng.randrange(10_000), **kwargs)


def _targets(rng: random.Random, g: torch.Generator, n: int, classes: int):
    """Either one int for the batch or a LongTensor (n,): the exercises take both."""
    if rng.random() < 0.3:
        return rng.randrange(classes)
    return torch.randint(0, classes, (n,), generator=g)


def _cnn_cases(rng: random.Random, g: torch.Generator, count: int) -> list[Case]:
    """``count`` cases of a few random images and targets for a small random CNN."""
    cases = []
    for _ in range(count):
        n, size, x = _batch(rng, g)
        cases.append(
            Case([Call.of(_cnn(rng), x, _targets(rng, g, n, 6))], describe=f"a small CNN, {n} images {size}x{size}")
        )
    return cases


def _linear_case(rng: random.Random, g: torch.Generator, n: int) -> Case:
    """A case of ``n`` random 8x8 images, their targets and a random linear model."""
    x = torch.rand(n, 3, 8, 8, generator=g)
    model = Toy(LINEAR, seed=rng.randrange(10_000))
    return Case([Call.of(model, x, torch.randint(0, 5, (n,), generator=g))], describe=f"a linear model, {n} images 8x8")


def _batch(rng: random.Random, g: torch.Generator, lo: int = 8, hi: int = 12, n_max: int = 3):
    n, size = rng.randint(1, n_max), rng.randint(lo, hi)
    return n, size, torch.rand(n, 3, size, size, generator=g)


def input_gradients(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = _cnn_cases(rng, g, 3)
    # noisy images outside [0,1] (SmoothGrad feeds them)
    n, size, x = _batch(rng, g)
    cases.append(
        Case(
            [Call.of(_cnn(rng), 2 * x - 0.5, _targets(rng, g, n, 6))],
            describe=f"a small CNN, {n} images {size}x{size} with values outside [0,1]",
        )
    )
    cases.append(_linear_case(rng, g, 2))
    return cases


def gradient_saliency(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = _cnn_cases(rng, g, 3)
    cases.append(_linear_case(rng, g, 3))
    return cases


def smoothgrad(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    # a linear model: the gradient is constant, whatever the noise
    x = torch.rand(2, 3, 8, 8, generator=g)
    cases.append(
        Case(
            [
                Call.of(
                    Toy(LINEAR, seed=rng.randrange(10_000)),
                    x,
                    torch.randint(0, 5, (2,), generator=g),
                    n_samples=rng.randint(1, 4),
                    noise_level=0.5 * rng.random(),
                    seed=rng.randrange(1000),
                )
            ],
            describe="a linear model, 2 images 8x8",
        )
    )
    # a small CNN: exactly the documented noise draws
    for _ in range(2):
        n, size, x = _batch(rng, g, n_max=2)
        lo = 0.5 * rng.random()
        x = lo + (0.2 + 0.3 * rng.random()) * x  # each image's value range sets its noise level
        cases.append(
            Case(
                [
                    Call.of(
                        _cnn(rng),
                        x,
                        _targets(rng, g, n, 6),
                        n_samples=rng.randint(1, 4),
                        noise_level=0.05 + 0.3 * rng.random(),
                        seed=rng.randrange(1000),
                    )
                ],
                describe=f"a small CNN, {n} images {size}x{size}",
            )
        )
    # no noise: gradient saliency
    n, size, x = _batch(rng, g, n_max=2)
    cases.append(
        Case(
            [Call.of(_cnn(rng), x, _targets(rng, g, n, 6), n_samples=2, noise_level=0.0)],
            describe=f"a small CNN, {n} images {size}x{size}, noise_level=0",
        )
    )
    # the same seed twice
    n, size, x = _batch(rng, g, n_max=2)
    call = Call.of(_cnn(rng), x, 1, n_samples=2, seed=rng.randrange(1000))
    describe = f"a small CNN, {n} images {size}x{size}, twice with the same seed"
    cases.append(Case([call, call], check=_same_twice, describe=describe))
    return cases


def _same_twice(results, expected, calls):
    """The reference's map, and the very same map twice (bit for bit) for the same seed."""
    first, second = results
    compare(first, expected[0])
    if not np.array_equal(first, second):
        raise Mismatch("value", "two runs with the same seed give different maps")


def integrated_gradients(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    # a quadratic model, where the quadrature is exact: IG = w (x^2 - b^2) / 2
    for _ in range(2):
        x = torch.rand(3, 3, 8, 8, generator=g)
        b = 0.5 * rng.random()
        cases.append(
            Case(
                [
                    Call.of(
                        Toy(QUADRATIC, seed=rng.randrange(10_000)),
                        x,
                        torch.randint(0, 4, (3,), generator=g),
                        baseline=b,
                        steps=rng.randint(1, 8),
                        batch_size=rng.randint(1, 8),
                    )
                ],
                check=_quadratic_ig,
                describe=f"a quadratic model, gray baseline {b:.2f}",
            )
        )
    # a small CNN: the documented quadrature, with each kind of baseline
    for baseline in ("none", "float", "tensor"):
        n, size, x = _batch(rng, g, 8, 10)
        kwargs = dict(steps=rng.randint(1, 6), batch_size=rng.randint(1, 9))
        if baseline == "float":
            kwargs["baseline"] = round(rng.random(), 3)
        elif baseline == "tensor":
            kwargs["baseline"] = torch.rand(1, 3, size, size, generator=g)
        cases.append(
            Case(
                [Call.of(_cnn(rng), x, _targets(rng, g, n, 6), **kwargs)],
                atol=1e-5,
                rtol=1e-3,
                describe=f"a small CNN, {n} images {size}x{size}, {kwargs['steps']} steps, "
                f"{'a black' if baseline == 'none' else 'a gray' if baseline == 'float' else 'an image'}"
                " baseline",
            )
        )
    return cases


def _quadratic_ig(results, expected, calls):
    (result,) = results
    (model, x, t), kwargs = calls[0]
    b = kwargs["baseline"]
    closed_form = (0.5 * model.weight[t] * (x**2 - b**2)).numpy()
    compare(result, closed_form, atol=1e-4, rtol=1e-4, what="the result")


def occlusion(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for k in range(3):
        n, size, x = _batch(rng, g, 9, 14, n_max=2)
        if k == 0:
            window, stride, baseline = 5, 3, 0.0
        else:
            window = rng.randint(2, min(6, size))
            stride, baseline = rng.randint(1, window), round(rng.random(), 2)
        cases.append(
            Case(
                [
                    Call.of(
                        _cnn(rng),
                        x,
                        _targets(rng, g, n, 6),
                        window=window,
                        stride=stride,
                        baseline=baseline,
                        batch_size=rng.randint(1, 20),
                    )
                ],
                atol=1e-4,
                describe=f"a small CNN, {n} images {size}x{size}, window {window}, stride {stride}",
            )
        )
    return cases


def grad_cam(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for layer in ("conv2", "features", "conv1"):
        n, size, x = _batch(rng, g, 8, 12)
        cases.append(
            Case(
                [Call.of(_cnn(rng), Attr(0, layer), x, _targets(rng, g, n, 6))],
                describe=f"a small CNN, layer {layer}, {n} images {size}x{size}",
            )
        )
    n, size, x = _batch(rng, g, 8, 12)
    cases.append(
        Case(
            [Call.of(_cnn(rng), "features", x, _targets(rng, g, n, 6))],
            describe=f"a small CNN, the layer given by its name, {n} images {size}x{size}",
        )
    )
    return cases


def guided_backprop(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(2):
        n, size, x = _batch(rng, g, 8, 12)
        cases.append(
            Case(
                [Call.of(_cnn(rng), x, _targets(rng, g, n, 6))],
                describe=f"a small CNN with ReLUs, {n} images {size}x{size}",
            )
        )
    n, size, x = _batch(rng, g, 8, 12)
    cases.append(
        Case(
            [Call.of(_cnn(rng, activation="relu6", inplace=True, scale=0.5 + rng.random()), x, _targets(rng, g, n, 6))],
            describe=f"a small CNN with in-place ReLU6, {n} images {size}x{size}",
        )
    )
    return cases
