"""Hidden tests of Lab 2 (adversarial examples): random inputs; the reference gives the answers.

Each function takes a ``random.Random`` (drawn from the per-student seed) and returns the cases
of one exercise. See :mod:`labkit_course.judge` for what a case is and how it is judged.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from labkit_course.judge import Call, Case, Mismatch, Toy, check_form

EXERCISES = ("linear_adversarial", "fgsm", "pgd", "fooling_image")
LINEAR = "labkit.check.toys:LinearClassifier"
CONVNET = "labkit.check.toys:OneConvReluNet"


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def mostly_equal(fraction: float = 1e-3, tol: float = 1e-4):
    """A check: at most ``fraction`` of the pixels differ from the reference by more than ``tol``.

    Signed-gradient attacks flip a pixel where its gradient is within rounding of 0, so a correct
    implementation may differ from the reference in a few such pixels."""

    def check(results, expected, calls):
        for r, e in zip(results, expected):
            a, e = check_form(r, e)  # an error, the type, the shape, NaN or the range: all wrong
            off = float((np.abs(a - e) > tol).mean())
            if off > fraction:
                raise Mismatch("value", f"{off:.1%} of the pixels differ from the expected attack")

    return check


def linear_adversarial(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(5):
        c, d, n = rng.randint(2, 11), rng.randint(1, 299), rng.randint(1, 5)
        w, x = torch.randn(c, d, generator=g), torch.randn(n, d, generator=g)
        label, target = torch.randint(0, c, (n,), generator=g), torch.randint(0, c, (n,), generator=g)
        eps = rng.random()
        cases.append(
            Case(
                [Call.of(w, x, label, target, eps), Call.of(w, x[0], int(label[0]), int(target[0]), eps)],
                describe=f"{c} classes, {n} inputs of {d} features",
                atol=1e-6,
            )
        )
    return cases


def fgsm(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(4):
        c, s, n = rng.randint(2, 9), rng.randint(2, 6), rng.randint(1, 5)
        model = Toy(LINEAR, num_classes=c, size=s, seed=rng.randrange(10_000), bias_scale=0.1)
        x, y = torch.rand(n, 3, s, s, generator=g), torch.randint(0, c, (n,), generator=g)
        eps = 0.2 * rng.random()
        for targeted in (False, True):
            cases.append(
                Case(
                    [Call.of(model, x, y, eps, targeted=targeted)],
                    check=mostly_equal(),
                    describe=f"{n} images {s}x{s}, {'targeted' if targeted else 'untargeted'}",
                )
            )
    return cases


def pgd(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(3):
        model = Toy(CONVNET, num_classes=6, seed=rng.randrange(10_000))
        n, steps = rng.randint(1, 5), rng.randint(1, 5)
        x, y = torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 6, (n,), generator=g)
        for norm, eps in (("linf", 0.1 * rng.random()), ("l2", rng.random())):
            for targeted in (False, True):
                cases.append(
                    Case(
                        [Call.of(model, x, y, eps, eps / 3 + 1e-3, steps, norm=norm, targeted=targeted)],
                        check=mostly_equal(),
                        describe=f"{n} images, {norm}, {steps} steps" + (", targeted" if targeted else ""),
                    )
                )
        seed = rng.randrange(1000)
        random_start = Call.of(model, x, y, 0.05, 0.01, 2, random_start=True, seed=seed)
        cases.append(
            Case(
                [random_start, random_start],
                check=_same_twice,
                reference=False,
                describe="a random start, twice with the same seed",
            )
        )
    return cases


def _same_twice(results, expected, calls):
    """No reference (the random draw is not specified): the same images twice, inside the eps-ball
    and [0, 1], and moved by the random start and the steps (the unchanged input is not an attack)."""
    x = calls[0][0][1].numpy()
    first, second = (check_form(r, x)[0] for r in results)  # an error, the type, the shape, NaN, the range
    if not np.array_equal(first, second):
        raise Mismatch("value", "two runs with the same seed give different images")
    if np.abs(first - x).max() > 0.05 + 1e-6:
        raise Mismatch("range", "the random start leaves the eps-ball")
    if (np.abs(first - x) > 1e-6).mean() < 0.5:
        raise Mismatch("value", "most pixels are unchanged: the random start and the steps should move them")


def fooling_image(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(6):
        c = rng.randint(3, 7)
        model = Toy(LINEAR, num_classes=c, size=5, seed=rng.randrange(10_000), bias_scale=0.1)
        image = 0.3 + 0.4 * torch.rand(1, 3, 5, 5, generator=g)
        target, lr = rng.randrange(c), 0.01 + 0.09 * rng.random()
        calls = [Call.of(model, image, target, lr=lr, max_steps=300)]
        calls += [Call.of(model, image, target, lr=lr, max_steps=rng.randint(0, 3))]  # NotFooled, mostly
        cases.append(Case(calls, describe=f"a {c}-class linear model, lr {lr:.3f}", atol=1e-4))
    return cases
