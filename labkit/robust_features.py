# Your exercises for this lab. Fill in every body that raises
# NotImplementedError; the docstrings say exactly what to return.
# Save (Ctrl+S) and re-run the notebook's check cell, or check them all from a
# terminal: python -m labkit.check robust_features
# (for the course's linter: this file is generated, in the solutions' layout)
# ruff: noqa: F401, F841
# fmt: off
"""Lab 5: non-robust features (Ilyas et al., 2019, "Adversarial Examples Are Not Bugs, They Are Features").

The experiment: train a classifier, turn every training image into a *targeted*
adversarial example towards another class, label it with that target, and
train a fresh model on this dataset, which looks mislabelled to a person.
If the fresh model still classifies the *clean* test set well, it learned
from the tiny perturbations alone: they carry real, generalizing features.

Four exercises:

* :func:`make_adversarial_dataset`: D_det (targets ``(y+1) mod C``) or D_rand
  (uniformly random other class), built with targeted L2 PGD from Lab 2.
* :func:`train_classifier`: a plain training loop.
* :func:`evaluate`: accuracy.
* :func:`per_class_accuracy`: the per-class table.

Not here: the lab's data, models, defaults, the whole experiment and the
perceptibility judge live in :mod:`labkit.experiments`, whose pipeline runs
your ``train_classifier``, ``evaluate`` and ``make_adversarial_dataset``
(looked up when it runs: this module does not import it). The modes and Lab 2's
``pgd`` come from :mod:`labkit.relabel`.

Conventions: images are float tensors (N,3,H,W) in [0,1]; models normalize
inside and return logits.
"""

from __future__ import annotations

import numbers

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from labkit import data, validate
from labkit.relabel import MODES, lab2_pgd


def make_adversarial_dataset(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels,
    eps: float,
    steps: int,
    step_size: float,
    mode: str = "det",
    num_classes: int = 10,
    seed: int = 0,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relabel a dataset with adversarial targets: Ilyas et al.'s D_det or D_rand.

    Each image gets a target class ``t != y``:

    * ``mode="det"``: ``t = (y + 1) mod num_classes``;
    * ``mode="rand"``: ``t`` uniform over the ``num_classes - 1`` other classes,
      ``t = (y + r) mod num_classes`` with ``r`` drawn uniformly from
      ``{1, ..., num_classes - 1}`` by ``torch.randint`` from a private
      ``torch.Generator`` seeded with ``seed`` (one call for the whole dataset).

    Then the image is pushed towards ``t`` with *targeted* L2 PGD: Lab 2's
    ``pgd(model, x, t, eps, step_size, steps, norm="l2", targeted=True)``
    (no random start; get it with ``pgd = lab2_pgd()``), in batches of
    ``batch_size`` with a tqdm progress bar, the model in eval mode (restore its
    mode afterwards).

    Args:
        model: a classifier taking (N,3,H,W) images in [0,1] and returning logits.
        images: (N,3,H,W) float tensor in [0,1].
        labels: the true classes, a LongTensor (N,).
        eps: L2 radius of the perturbation (per image, [0,1] pixel units), > 0.
        steps: PGD steps, >= 1.
        step_size: L2 length of each PGD step, > 0.
        mode: ``"det"`` or ``"rand"``.
        num_classes: C, the number of classes.
        seed: seed of the random targets (``mode="rand"``).
        batch_size: images per PGD batch.

    Returns:
        ``(adversarial_images, targets)``: a float tensor like ``images`` (detached,
        in [0,1], each within L2 distance ``eps`` of its original) and the
        LongTensor (N,) of targets, which are the new labels.
    """
    model = validate.module(model)
    images = validate.images(images)
    mode = validate.choice(mode, "mode", MODES)
    eps = validate.positive(eps, "eps")
    steps = validate.positive_int(steps, "steps")
    step_size = validate.positive(step_size, "step_size")
    num_classes = validate.positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (a target must differ from the label); got {num_classes}")
    seed = validate.integer(seed, "seed")
    batch_size = validate.positive_int(batch_size, "batch_size")
    if isinstance(labels, numbers.Integral) and not isinstance(labels, bool):
        raise TypeError(f"labels must be a LongTensor of shape ({len(images)},), one label per image; got an int")
    logits = validate.num_classes(model, images[:1].to(validate.device(model)))
    if logits != num_classes:
        raise ValueError(f"num_classes is {num_classes} but the model returns {logits} logits")
    labels = validate.targets(labels, len(images), num_classes, name="labels")
    # YOUR CODE HERE
    raise NotImplementedError(
        "make_adversarial_dataset() is not implemented yet: "
        "fill in its body in labkit/robust_features.py"
    )


def train_classifier(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    seed: int = 0,
    augment: bool = False,
) -> torch.nn.Module:
    """Train ``model`` (in place) with a plain loop; return it in eval mode.

    The recipe: cross-entropy loss; SGD with Nesterov momentum 0.9 and weight
    decay 5e-4; the learning rate decays linearly from ``lr`` to 0 over all the
    steps (step k of K uses ``lr * (1 - k / K)``, e.g. with ``LambdaLR``); each
    epoch visits the images in a new random order (``torch.randperm``), in batches
    of ``batch_size`` (a last batch of a single image joins the previous one:
    BatchNorm needs two). The shuffling (and augmentation) comes from a private
    ``torch.Generator`` seeded with ``seed``, so the same model, data and seed
    give the same result. A tqdm progress bar shows the epochs. With ``augment``,
    each batch goes through ``data.augment(x, generator)`` (``labkit.data`` is
    imported for you; it applies a random translation by up to H/8 pixels and a
    random horizontal flip), for natural images like CIFAR-10 (not for digits: a
    flipped 2 is not a 2).

    Args:
        model: a classifier taking (N,3,H,W) images in [0,1] and returning logits.
        images: (N,3,H,W) float tensor in [0,1].
        labels: a LongTensor (N,) of classes.
        epochs: passes over the data, >= 1.
        lr: the initial learning rate, > 0.
        batch_size: images per step.
        seed: seed of the shuffling.
        augment: see above.

    Returns:
        ``model``, trained, in eval mode.
    """
    model = validate.module(model)
    images = validate.images(images)
    epochs = validate.positive_int(epochs, "epochs")
    lr = validate.positive(lr, "lr")
    batch_size = validate.positive_int(batch_size, "batch_size")
    seed = validate.integer(seed, "seed")
    labels = validate.targets(
        labels, len(images), validate.num_classes(model, images[:1].to(validate.device(model))), name="labels"
    )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            "model has no trainable parameters (it is frozen); train a fresh one, e.g. labkit.models.small_cnn()"
        )
    # YOUR CODE HERE
    raise NotImplementedError(
        "train_classifier() is not implemented yet: "
        "fill in its body in labkit/robust_features.py"
    )


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(images, labels)``, a float in [0,1].

    Runs in eval mode without gradients, in batches of ``batch_size``; the model's
    train/eval mode is restored afterwards.
    """
    model = validate.module(model)
    images = validate.images(images)
    batch_size = validate.positive_int(batch_size, "batch_size")
    labels = validate.targets(
        labels, len(images), validate.num_classes(model, images[:1].to(validate.device(model))), name="labels"
    )
    # YOUR CODE HERE
    raise NotImplementedError(
        "evaluate() is not implemented yet: "
        "fill in its body in labkit/robust_features.py"
    )


def per_class_accuracy(model: torch.nn.Module, images: torch.Tensor, labels, class_names) -> pd.DataFrame:
    """The seed's per-class table: for each class, how many test images, how many right, the accuracy.

    Returns:
        A DataFrame with one row per class, in label order, indexed by the class
        names (index name ``"class"``), with integer columns ``"n"`` (images of
        that class) and ``"correct"`` (of those, predicted right), and a float
        column ``"accuracy"`` (``correct / n``, NaN for a class with no image).
        Predictions are made in eval mode, as in :func:`evaluate`.
    """
    model = validate.module(model)
    images = validate.images(images)
    class_names = list(class_names)
    if not class_names or not all(isinstance(c, str) for c in class_names):
        raise TypeError("class_names must be a non-empty sequence of strings, one per class")
    logits = validate.num_classes(model, images[:1].to(validate.device(model)))
    if logits != len(class_names):
        raise ValueError(f"class_names has {len(class_names)} names but the model returns {logits} logits")
    labels = validate.targets(labels, len(images), len(class_names), name="labels")
    # YOUR CODE HERE
    raise NotImplementedError(
        "per_class_accuracy() is not implemented yet: "
        "fill in its body in labkit/robust_features.py"
    )
