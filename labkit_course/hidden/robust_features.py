"""Hidden tests of Lab 5 (non-robust features): random inputs; the reference gives the answers.

Each function takes a ``random.Random`` (drawn from the per-student seed) and returns the cases
of one exercise. See :mod:`labkit_course.judge` for what a case is and how it is judged. Everything
is tiny: the public checks' models (:func:`labkit.check.toys.tiny_linear`, a linear
classifier with trainable weights, and :class:`~labkit.check.toys.BrightnessModel`, which
negates its logits in train mode) on a few dozen 8x8 images, trained for a few epochs.

``make_adversarial_dataset`` calls Lab 2's ``pgd`` (``labkit.relabel.lab2_pgd``). It is judged
with Lab 2's ``pgd`` replaced, on both sides, by :func:`labkit.check.toys.toy_pgd`, a
stand-in with a closed form: what is judged is Lab 5's own work (targets, batches, eval mode, the
arguments handed to ``pgd``), and neither the student's Lab 2 nor its reference is needed.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from labkit_course.judge import Call, Case, Mismatch, Toy, compare

EXERCISES = ("train_classifier", "evaluate", "per_class_accuracy", "make_adversarial_dataset")
#: Lab 2's pgd, replaced by a public stand-in while make_adversarial_dataset is judged
PGD_STAND_IN = {"labkit.adversarial.pgd": "labkit.check.toys:toy_pgd"}
LINEAR = "labkit.check.toys:tiny_linear"
BRIGHTNESS = "labkit.check.toys:BrightnessModel"
SIZE = 8


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def _levels_data(rng: random.Random, g: torch.Generator, n: int, classes: int, noise: float = 0.05):
    """Flat images whose brightness says the class (learnable), plus noise; labels mostly right."""
    labels = torch.randint(0, classes, (n,), generator=g)
    levels = (labels.float() + 0.2 + 0.6 * torch.rand(n, generator=g)) / classes
    images = levels.view(-1, 1, 1, 1) + noise * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return images.clamp(0, 1), labels


def _linear(rng: random.Random, classes: int) -> Toy:
    return Toy(LINEAR, num_classes=classes, size=SIZE, seed=rng.randrange(10_000))


# ----------------------------------------------------------------------------------------------
# train_classifier
# ----------------------------------------------------------------------------------------------
def train_classifier(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for kind in ("minibatches", "a last batch of one", "full batch", "augmentation"):
        classes = rng.randint(2, 5)
        batch_size = rng.randint(4, 12)
        if kind == "a last batch of one":
            n = batch_size * rng.randint(2, 4) + 1
        elif kind == "full batch":
            n = rng.randint(10, 30)
            batch_size = n
        else:
            n = rng.randint(20, 40)
        x, y = torch.rand(n, 3, SIZE, SIZE, generator=g), torch.randint(0, classes, (n,), generator=g)
        kw = dict(
            epochs=rng.randint(1, 3),
            lr=0.05 + 0.3 * rng.random(),
            batch_size=batch_size,
            seed=rng.randrange(1000),
            augment=kind == "augmentation",
        )
        cases.append(
            Case(
                [Call.of(_linear(rng, classes), x, y, **kw)],
                check=_trained,
                atol=1e-5,
                rtol=1e-4,
                describe=f"a linear model, {n} images 8x8 of {classes} classes, {kw['epochs']} epochs, "
                f"batch size {batch_size} ({kind})",
            )
        )
    classes, n = 3, rng.randint(24, 40)
    x, y = _levels_data(rng, g, n, classes)
    cases.append(
        Case(
            [Call.of(_linear(rng, classes), x, y, epochs=30, lr=0.5, batch_size=8, seed=rng.randrange(1000))],
            check=_learns,
            reference=False,
            describe=f"{n} images of 3 easy classes, 30 epochs",
        )
    )
    x, y = torch.rand(6, 3, SIZE, SIZE, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    cases.append(
        Case(
            [Call.of(_linear(rng, 3), x, y[:5], epochs=1, lr=0.1)],
            describe="5 labels for 6 images (should raise ValueError)",
        )
    )
    return cases


def _as_module(result):
    if not (isinstance(result, dict) and result.get("$") == "module"):
        compare(result, {"$": "module", "state": {}})  # says what is wrong: an error or the type
    return result


def _trained(results, expected, calls):
    """The reference's weights, and the model handed back in eval mode."""
    (result,), (reference,) = results, expected
    compare(result, reference, atol=1e-5, rtol=1e-4, what="the trained model")
    if _as_module(result).get("training"):
        raise Mismatch("value", "the returned model is still in train mode: call model.eval() before returning it")


def _learns(results, expected, calls):
    (result,) = results
    state = _as_module(result)["state"]
    if set(state) != {"1.weight", "1.bias"}:
        raise Mismatch("value", "the returned model has other parameters than the one given")
    (_, x, y), _ = calls[0]
    logits = x.flatten(1).double().numpy() @ np.asarray(state["1.weight"], np.float64).T + np.asarray(state["1.bias"])
    accuracy = float((logits.argmax(1) == y.numpy()).mean())
    if accuracy < 1.0:
        raise Mismatch("value", f"training accuracy is {accuracy:.0%} after 30 epochs on easy classes; expected 100%")


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
def evaluate(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(3):
        classes, n = rng.randint(2, 7), rng.randint(1, 200)
        x, y = torch.rand(n, 3, SIZE, SIZE, generator=g), torch.randint(0, classes, (n,), generator=g)
        cases.append(
            Case(
                [Call.of(_linear(rng, classes), x, y, batch_size=rng.randint(1, 99))],
                atol=1e-9,
                rtol=0,
                describe=f"a linear model, {n} images of {classes} classes",
            )
        )
    # a model whose logits are negated in train mode: predictions must be made in eval mode
    classes, n = rng.randint(3, 8), rng.randint(10, 60)
    x, y = _levels_data(rng, g, n, classes, noise=0.02)
    y = torch.where(torch.rand(n, generator=g) < 0.3, torch.randint(0, classes, (n,), generator=g), y)
    cases.append(
        Case(
            [Call.of(Toy(BRIGHTNESS, num_classes=classes), x, y, batch_size=rng.randint(1, 20))],
            atol=1e-9,
            rtol=0,
            describe=f"a model in train mode, {n} images of {classes} classes",
        )
    )
    return cases


# ----------------------------------------------------------------------------------------------
# per_class_accuracy
# ----------------------------------------------------------------------------------------------
def per_class_accuracy(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for k in range(3):
        classes, n = rng.randint(2, 7), rng.randint(20, 120)
        x, y = torch.rand(n, 3, SIZE, SIZE, generator=g), torch.randint(0, classes, (n,), generator=g)
        if k == 2:  # one class has no image: its accuracy is NaN
            y = torch.where(y == classes - 1, torch.zeros_like(y), y)
        names = [f"class {i}" for i in rng.sample(range(100), classes)]
        cases.append(
            Case(
                [Call.of(_linear(rng, classes), x, y, names)],
                atol=1e-9,
                rtol=0,
                describe=f"a linear model, {n} images of {classes} classes"
                + (", one class without images" if k == 2 else ""),
            )
        )
    classes, n = rng.randint(3, 6), rng.randint(20, 60)
    x, y = _levels_data(rng, g, n, classes, noise=0.02)
    y = torch.where(torch.rand(n, generator=g) < 0.3, torch.randint(0, classes, (n,), generator=g), y)
    cases.append(
        Case(
            [Call.of(Toy(BRIGHTNESS, num_classes=classes), x, y, [f"level {i}" for i in range(classes)])],
            atol=1e-9,
            rtol=0,
            describe=f"a model in train mode, {n} images of {classes} classes",
        )
    )
    return cases


# ----------------------------------------------------------------------------------------------
# make_adversarial_dataset
# ----------------------------------------------------------------------------------------------
def make_adversarial_dataset(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for mode, model_kind in (("det", "linear"), ("rand", "linear"), ("rand", "brightness")):
        classes = rng.randint(3, 10)
        n = rng.randint(classes, 30)
        eps = 0.2 + 2 * rng.random()
        if model_kind == "linear":
            model = _linear(rng, classes)
            x = torch.rand(n, 3, SIZE, SIZE, generator=g)
        else:
            model = Toy(BRIGHTNESS, num_classes=classes)  # in train mode: the attack must use eval mode
            x = 0.2 + 0.6 * torch.rand(n, 3, SIZE, SIZE, generator=g)
        y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]  # every class, in random order
        kwargs = dict(
            eps=eps,
            steps=rng.randint(1, 5),
            step_size=eps / 4,
            mode=mode,
            num_classes=classes,
            seed=rng.randrange(1000),
            batch_size=rng.randint(1, n + 2),
        )
        cases.append(
            Case(
                [Call((model, x, y), kwargs, patch=PGD_STAND_IN)],
                describe=f"{'a linear' if model_kind == 'linear' else 'a train-mode'} model, {n} images "
                f"of {classes} classes, mode {mode!r}, eps {eps:.2f}",
            )
        )
    x, y = torch.rand(4, 3, SIZE, SIZE, generator=g), torch.tensor([0, 1, 2, 0])
    unknown = dict(eps=0.5, steps=1, step_size=0.1, mode="random", num_classes=3)
    cases.append(
        Case(
            [Call((_linear(rng, 3), x, y), unknown, patch=PGD_STAND_IN)],
            describe="an unknown mode (should raise ValueError)",
        )
    )
    return cases
