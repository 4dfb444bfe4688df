"""Public checks for Lab 5 (non-robust features): ``check.robust_features.<exercise>()``.

They use tiny deterministic models of :mod:`labkit.check.toys` on 4x4 images, so each
runs in well under a second:

* :class:`~labkit.check.toys.BrightnessModel`: no parameters; class ``k`` wins when the
  image's mean intensity lies in ``[k/C, (k+1)/C)``. Differentiable, so PGD can move it.
  In train mode it returns the *negated* logits, so code that forgets ``model.eval()``
  gets visibly wrong answers.
* :func:`~labkit.check.toys.tiny_linear`: a seeded linear classifier with trainable weights.
"""

from __future__ import annotations

import copy
import functools

import pandas as pd
import torch
from torch import nn

from labkit.check.runner import Exercise, check
from labkit.check.toys import BrightnessModel, assert_raises, brightness_images, tiny_linear

SIZE = 4


def _data(n=40, num_classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, SIZE, SIZE, generator=gen) * 0.6 + 0.2
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return images, labels


# --------------------------------------------------------------------------
# make_adversarial_dataset
# --------------------------------------------------------------------------
def _adv(fn, mode="det", eps=0.5, steps=5, n=40, num_classes=10, seed=0, batch_size=16):
    images, labels = _data(n, num_classes)
    model = BrightnessModel(num_classes).eval()
    out = fn(
        model,
        images,
        labels,
        eps=eps,
        steps=steps,
        step_size=eps / 4,
        mode=mode,
        num_classes=num_classes,
        seed=seed,
        batch_size=batch_size,
    )
    assert isinstance(out, tuple) and len(out) == 2, "return a tuple (adversarial_images, targets)"
    return images, labels, out[0], out[1]


@check(
    "mode='det' targets are (y + 1) mod C, returned as a LongTensor (N,)", hint="targets = (labels + 1) % num_classes"
)
def make_adversarial_dataset_det_targets(fn):
    _, labels, adv, targets = _adv(fn, "det")
    assert isinstance(targets, torch.Tensor) and targets.dtype == torch.long, (
        f"targets should be a LongTensor, got {targets!r}"
    )
    assert targets.shape == labels.shape, f"targets should have shape {tuple(labels.shape)}, got {tuple(targets.shape)}"
    assert torch.equal(targets, (labels + 1) % 10), "targets are not (labels + 1) % num_classes"


@check(
    "mode='rand' targets are (y + r) mod C with r = torch.randint(1, C, (N,)) from a Generator seeded with seed",
    hint="gen = torch.Generator().manual_seed(seed); r = torch.randint(1, num_classes, (len(labels),), generator=gen)",
)
def make_adversarial_dataset_rand_targets(fn):
    _, labels, _, targets = _adv(fn, "rand", n=40, seed=3)
    assert bool((targets != labels).all()), "a random target must differ from the true label"
    assert bool(((targets >= 0) & (targets < 10)).all()), "targets must be in [0, num_classes)"
    gen = torch.Generator().manual_seed(3)
    expected = (labels + torch.randint(1, 10, (len(labels),), generator=gen)) % 10
    assert torch.equal(targets, expected), "targets do not follow the rule in the docstring"


@check("random targets are reproducible: same seed, same targets; another seed, other targets")
def make_adversarial_dataset_rand_seeded(fn):
    _, _, a1, t1 = _adv(fn, "rand", seed=1)
    _, _, a2, t2 = _adv(fn, "rand", seed=1)
    _, _, _, t3 = _adv(fn, "rand", seed=2)
    assert torch.equal(t1, t2) and torch.equal(a1, a2), "two runs with the same seed differ"
    assert not torch.equal(t1, t3), "seed=1 and seed=2 gave the same targets: use the seed"


@check(
    "every adversarial image stays in [0,1] and within L2 distance eps of its original",
    hint="use pgd(..., norm='l2', targeted=True) from Lab 2",
)
def make_adversarial_dataset_l2_constraint(fn):
    images, _, adv, _ = _adv(fn, "det", eps=0.3, steps=8)
    assert adv.shape == images.shape, (
        f"adversarial images should have shape {tuple(images.shape)}, got {tuple(adv.shape)}"
    )
    assert not adv.requires_grad, "detach the adversarial images"
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1, "adversarial images leave [0,1]"
    dist = (adv - images).flatten(1).norm(dim=1)
    assert float(dist.max()) <= 0.3 + 1e-4, f"an L2 perturbation has norm {float(dist.max()):.4f} > eps = 0.3"
    assert float(dist.mean()) > 0.15, "the images barely moved: did you run PGD with step_size and steps?"


@check(
    "the attack works: the model predicts the target for most adversarial images",
    hint="targeted=True: PGD must go *down* the loss of the target class",
)
def make_adversarial_dataset_reaches_targets(fn):
    model = BrightnessModel(10).eval()
    images = brightness_images(torch.linspace(0.12, 0.85, 30))
    labels = model(images).argmax(1)
    adv, targets = fn(
        model, images, labels, eps=1.5, steps=20, step_size=0.2, mode="det", num_classes=10, seed=0, batch_size=7
    )
    hit = float((model(adv).argmax(1) == targets).float().mean())
    assert hit >= 0.9, f"only {hit:.0%} of the adversarial images are classified as their target"


@check("batching does not change the result, and the model's train/eval mode is restored")
def make_adversarial_dataset_batching(fn):
    images, labels = _data(25)
    model = BrightnessModel(10)
    a1, t1 = fn(model.eval(), images, labels, eps=0.4, steps=4, step_size=0.1, batch_size=25)
    model.train()
    a2, t2 = fn(model, images, labels, eps=0.4, steps=4, step_size=0.1, batch_size=4)
    assert model.training, "the model was in train mode before the call and should be after it"
    assert torch.equal(t1, t2), "targets depend on the batch size"
    assert torch.allclose(a1, a2, atol=1e-5), "the adversarial images depend on the batch size (or on train/eval mode)"


@check("bad input is refused: unknown mode, eps <= 0, mismatched counts, labels out of range")
def make_adversarial_dataset_bad_input(fn):
    images, labels = _data(6)
    model = BrightnessModel(10).eval()
    fn(model, images, labels, eps=0.2, steps=1, step_size=0.1)  # valid input works
    for kwargs, what in [
        (dict(mode="random"), "mode='random'"),
        (dict(eps=0.0), "eps=0"),
        (dict(eps=-1.0), "eps=-1"),
    ]:
        args = dict(eps=0.2, steps=1, step_size=0.1)
        args.update(kwargs)
        assert_raises(functools.partial(fn, model, images, labels, **args), ValueError, what=what)
    for lab, what in [(labels[:5], "5 labels for 6 images"), (labels.clone().fill_(10), "label 10 with 10 classes")]:
        assert_raises(functools.partial(fn, model, images, lab, eps=0.2, steps=1, step_size=0.1), ValueError, what=what)


make_adversarial_dataset = Exercise(
    "robust_features",
    "make_adversarial_dataset",
    [
        make_adversarial_dataset_det_targets,
        make_adversarial_dataset_rand_targets,
        make_adversarial_dataset_rand_seeded,
        make_adversarial_dataset_l2_constraint,
        make_adversarial_dataset_reaches_targets,
        make_adversarial_dataset_batching,
        make_adversarial_dataset_bad_input,
    ],
)


# --------------------------------------------------------------------------
# train_classifier
# --------------------------------------------------------------------------
def _separable(n=48, seed=0):
    """Three classes of flat images: dark, middle, bright (plus a little noise)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    levels = 0.2 + 0.3 * labels.float()
    images = (brightness_images(levels) + 0.05 * torch.randn(n, 3, SIZE, SIZE, generator=gen)).clamp(0, 1)
    return images, labels


@check("returns the same model, trained, in eval mode", hint="call model.eval() before returning it")
def train_classifier_returns_eval_model(fn):
    images, labels = _separable()
    model = tiny_linear().train()
    out = fn(model, images, labels, epochs=1, lr=0.1, batch_size=16)
    assert out is model, "return the model you were given (trained in place)"
    assert not model.training, "the returned model is still in train mode"


@check("it learns: 100% training accuracy on three easy classes within 30 epochs")
def train_classifier_learns(fn):
    images, labels = _separable()
    model = fn(tiny_linear(), images, labels, epochs=30, lr=0.5, batch_size=16)
    with torch.no_grad():
        acc = float((model(images).argmax(1) == labels).float().mean())
    assert acc == 1.0, f"training accuracy {acc:.0%} after 30 epochs"


@check(
    "it changes the weights, and the same seed gives the same weights",
    hint="shuffle with torch.randperm(n, generator=torch.Generator().manual_seed(seed))",
)
def train_classifier_deterministic(fn):
    images, labels = _separable()
    start = tiny_linear()
    runs = []
    for seed in (0, 0, 1):
        model = copy.deepcopy(start)
        fn(model, images, labels, epochs=2, lr=0.1, batch_size=8, seed=seed)
        runs.append(model[1].weight.detach().clone())
    assert not torch.equal(runs[0], start[1].weight), "the weights did not change"
    assert torch.equal(runs[0], runs[1]), "two runs with the same seed give different weights"
    assert not torch.equal(runs[0], runs[2]), "seed=0 and seed=1 give the same weights: shuffle with the seed"


@check("one full-batch epoch is one step of SGD (Nesterov momentum 0.9, weight decay 5e-4) at rate lr")
def train_classifier_one_sgd_step(fn):
    images, labels = _separable(12)
    model = tiny_linear()
    expected = copy.deepcopy(model)
    opt = torch.optim.SGD(expected.parameters(), lr=0.3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    nn.functional.cross_entropy(expected(images), labels).backward()
    opt.step()
    fn(model, images, labels, epochs=1, lr=0.3, batch_size=12)
    assert torch.allclose(model[1].weight, expected[1].weight, atol=1e-6), "the update differs from one SGD step"


@check("bad input is refused: mismatched counts, labels out of range")
def train_classifier_bad_input(fn):
    images, labels = _separable(12)
    fn(tiny_linear(), images, labels, epochs=1, lr=0.1)  # valid input works
    for lab, what in [(labels[:5], "5 labels for 12 images"), (labels + 3, "label 3+ with 3 classes")]:
        assert_raises(functools.partial(fn, tiny_linear(), images, lab, epochs=1, lr=0.1), ValueError, what=what)


train_classifier = Exercise(
    "robust_features",
    "train_classifier",
    [
        train_classifier_returns_eval_model,
        train_classifier_learns,
        train_classifier_deterministic,
        train_classifier_one_sgd_step,
        train_classifier_bad_input,
    ],
)


# --------------------------------------------------------------------------
# evaluate and per_class_accuracy
# --------------------------------------------------------------------------
def _graded(num_classes=4):
    """Images whose BrightnessModel prediction is known, and labels with some of them wrong."""
    preds = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    images = brightness_images((preds.float() + 0.5) / num_classes)
    labels = torch.tensor([0, 1, 2, 3, 1, 1, 2, 0, 3, 2])  # 7 of 10 right
    return images, labels


@check("accuracy of a model with known predictions (7 right out of 10) is 0.7, as a float")
def evaluate_exact_accuracy(fn):
    images, labels = _graded()
    acc = fn(BrightnessModel(4).eval(), images, labels)
    assert isinstance(acc, float), f"return a Python float, got {type(acc).__name__}"
    assert abs(acc - 0.7) < 1e-6, f"expected 0.7, got {acc}"


@check(
    "predicts in eval mode, restores the mode, and batching doesn't matter",
    hint="model.eval() inside torch.no_grad(); remember model.training to restore it",
)
def evaluate_eval_mode(fn):
    images, labels = _graded()
    model = BrightnessModel(4).train()
    acc = fn(model, images, labels, batch_size=3)
    assert abs(acc - 0.7) < 1e-6, f"expected 0.7 in eval mode with batch_size=3, got {acc}"
    assert model.training, "the model was in train mode before the call and should be after it"


@check("bad input is refused: mismatched counts, labels out of range")
def evaluate_bad_input(fn):
    images, labels = _graded()
    model = BrightnessModel(4).eval()
    fn(model, images, labels)
    for lab, what in [(labels[:5], "5 labels for 10 images"), (labels + 4, "label 4+ with 4 classes")]:
        assert_raises(functools.partial(fn, model, images, lab), ValueError, what=what)


evaluate = Exercise("robust_features", "evaluate", [evaluate_exact_accuracy, evaluate_eval_mode, evaluate_bad_input])

NAMES = ["dark", "dim", "light", "bright"]


@check("returns a DataFrame indexed by class name with columns n, correct, accuracy")
def per_class_accuracy_table_shape(fn):
    images, labels = _graded()
    table = fn(BrightnessModel(4).eval(), images, labels, NAMES)
    assert isinstance(table, pd.DataFrame), f"return a pandas DataFrame, got {type(table).__name__}"
    assert list(table.index) == NAMES, f"the index should be the class names {NAMES}, got {list(table.index)}"
    assert table.index.name == "class", f"name the index 'class', got {table.index.name!r}"
    assert list(table.columns) == ["n", "correct", "accuracy"], (
        f"columns should be n, correct, accuracy; got {list(table.columns)}"
    )


@check("the counts and accuracies are right for a model with known predictions (in eval mode)")
def per_class_accuracy_table_values(fn):
    images, labels = _graded()
    table = fn(BrightnessModel(4).train(), images, labels, NAMES)
    assert table["n"].tolist() == [2, 3, 3, 2], f"n should be [2, 3, 3, 2], got {table['n'].tolist()}"
    assert table["correct"].tolist() == [1, 2, 2, 2], f"correct should be [1, 2, 2, 2], got {table['correct'].tolist()}"
    expected = [0.5, 2 / 3, 2 / 3, 1.0]
    got = table["accuracy"].tolist()
    assert all(abs(a - b) < 1e-9 for a, b in zip(got, expected)), f"accuracy should be {expected}, got {got}"


per_class_accuracy = Exercise(
    "robust_features",
    "per_class_accuracy",
    [
        per_class_accuracy_table_shape,
        per_class_accuracy_table_values,
    ],
)

#: Every exercise of the lab, in the notebook's order.
EXERCISES = [train_classifier, evaluate, per_class_accuracy, make_adversarial_dataset]
