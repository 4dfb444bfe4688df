"""Lab 5 (non-robust features): the exercises, the data loaders and the small models.

Everything runs on tiny images (4-8 px, CIFAR-shaped 32 px random tensors) and tiny models, so
the whole file takes seconds. The experiment pipeline is tested in tests/test_experiments.py.
"""

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from labkit import models
from labkit.check.toys import BrightnessModel, tiny_linear

EXERCISE_MODULE = "robust_features"


@pytest.fixture(scope="module", autouse=True)
def lab2_reference(impl, reference_pgd):
    """Lab 5 reuses Lab 2's pgd: test it against Lab 2's *reference*, not the student's Lab 2."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(impl, "lab2_pgd", lambda: reference_pgd)
        yield reference_pgd


# --------------------------------------------------------------------------
# Public checks, run on the implementation under test (parametrized by conftest's hook)
# --------------------------------------------------------------------------
def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))


# --------------------------------------------------------------------------
# make_adversarial_dataset
# --------------------------------------------------------------------------
def _digits_like(n=24, size=8, c=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen), torch.randint(0, c, (n,), generator=gen)


@pytest.mark.exercise
def test_matches_torchattacks_pgdl2(impl, torchattacks):
    """Targeted L2 PGD without random start is exactly torchattacks' PGDL2 in targeted mode."""
    model = models.small_cnn(width=4, seed=0).eval()
    images, labels = _digits_like()
    adv, targets = impl.make_adversarial_dataset(
        model, images, labels, eps=0.8, steps=6, step_size=0.2, mode="det", batch_size=10
    )
    atk = torchattacks.PGDL2(model, eps=0.8, alpha=0.2, steps=6, random_start=False)
    atk.set_mode_targeted_by_label(quiet=True)
    expected = torch.cat([atk(images[s : s + 10], targets[s : s + 10]) for s in range(0, len(images), 10)])
    assert torch.equal(targets, (labels + 1) % 10)
    assert torch.allclose(adv, expected, atol=1e-5)


@pytest.mark.exercise
def test_reuses_lab2_pgd(impl, lab2_reference):
    model = models.small_cnn(width=4, seed=1).eval()
    images, labels = _digits_like(seed=1)
    adv, targets = impl.make_adversarial_dataset(
        model, images, labels, eps=1.0, steps=4, step_size=0.3, mode="rand", seed=5, batch_size=24
    )
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(targets, (labels + torch.randint(1, 10, (24,), generator=gen)) % 10)
    expected = lab2_reference(model, images, targets, eps=1.0, step_size=0.3, steps=4, norm="l2", targeted=True)
    assert torch.allclose(adv, expected, atol=1e-6)


@pytest.mark.exercise
def test_rand_targets_are_uniform_over_the_other_classes(impl):
    model = BrightnessModel(5).eval()
    n = 5000
    images = torch.full((n, 3, 1, 1), 0.5)
    labels = torch.arange(n) % 5
    _, targets = impl.make_adversarial_dataset(
        model, images, labels, eps=1e-3, steps=1, step_size=1e-3, mode="rand", num_classes=5, batch_size=n
    )
    shift = (targets - labels) % 5
    counts = torch.bincount(shift, minlength=5)
    assert counts[0] == 0
    expected = n / 4  # binomial sd ~ 30.6
    assert all(abs(int(c) - expected) < 5 * math.sqrt(n * 0.25 * 0.75) for c in counts[1:])


@pytest.mark.exercise
def test_adversarial_dataset_bad_input(impl):
    model = BrightnessModel(10).eval()
    images, labels = _digits_like(6, size=4)
    impl.make_adversarial_dataset(model, images, labels, eps=0.1, steps=1, step_size=0.1)
    bad = [
        (dict(mode="both"), ValueError, "mode"),
        (dict(eps=0), ValueError, "eps"),
        (dict(eps=-0.5), ValueError, "eps"),
        (dict(steps=0), ValueError, "steps"),
        (dict(num_classes=8), ValueError, "logits"),
        (dict(num_classes=1), ValueError, "num_classes"),
    ]
    for kwargs, exc, words in bad:
        args = dict(eps=0.1, steps=1, step_size=0.1)
        args.update(kwargs)
        with pytest.raises(exc, match=words):
            impl.make_adversarial_dataset(model, images, labels, **args)
    with pytest.raises(ValueError, match="5 entries but there are 6 images"):
        impl.make_adversarial_dataset(model, images, labels[:5], eps=0.1, steps=1, step_size=0.1)
    with pytest.raises(ValueError, match=r"\[0, 9\]; got 12"):
        impl.make_adversarial_dataset(model, images, labels.clone().fill_(12), eps=0.1, steps=1, step_size=0.1)
    with pytest.raises(TypeError, match="LongTensor"):
        impl.make_adversarial_dataset(model, images, 3, eps=0.1, steps=1, step_size=0.1)
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        impl.make_adversarial_dataset(model, images * 255, labels, eps=0.1, steps=1, step_size=0.1)


# --------------------------------------------------------------------------
# train_classifier
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_two_full_batch_epochs_are_two_sgd_steps_with_linear_decay(impl):
    images, labels = _digits_like(16, size=4, c=3)
    model = tiny_linear(3)
    expected = copy.deepcopy(model)
    opt = torch.optim.SGD(expected.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for step in range(2):
        for group in opt.param_groups:
            group["lr"] = 0.2 * (1 - step / 2)
        opt.zero_grad()
        F.cross_entropy(expected(images), labels).backward()
        opt.step()
    out = impl.train_classifier(model, images, labels, epochs=2, lr=0.2, batch_size=16, seed=3)
    assert out is model and not model.training
    for p, q in zip(model.parameters(), expected.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


@pytest.mark.exercise
def test_train_resnet9_with_augmentation_on_cifar_shaped_data(impl):
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(20, 3, 32, 32, generator=gen), torch.randint(0, 10, (20,), generator=gen)
    runs = []
    for _ in range(2):
        model = models.resnet9(width=4, seed=0)
        impl.train_classifier(model, images, labels, epochs=1, lr=0.05, batch_size=8, seed=7, augment=True)
        assert not model.training
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])  # deterministic under the seed, augmentation included


@pytest.mark.exercise
def test_train_classifier_bad_input(impl):
    images, labels = _digits_like(8, size=4, c=3)
    impl.train_classifier(tiny_linear(3), images, labels, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        impl.train_classifier(tiny_linear(3), images, labels, epochs=0, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        impl.train_classifier(tiny_linear(3), images, labels, epochs=1, lr=0.0)
    with pytest.raises(ValueError, match="7 entries but there are 8 images"):
        impl.train_classifier(tiny_linear(3), images, labels[:7], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="frozen"):
        impl.train_classifier(models.freeze(tiny_linear(3)), images, labels, epochs=1, lr=0.1)


# --------------------------------------------------------------------------
# evaluate and per_class_accuracy
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_evaluate_matches_a_direct_computation(impl):
    images, labels = _digits_like(50, size=4, c=3, seed=2)
    model = tiny_linear(3, seed=2)
    with torch.no_grad():
        expected = (model(images).argmax(1) == labels).float().mean().item()
    assert impl.evaluate(model, images, labels) == pytest.approx(expected, abs=1e-6)
    assert impl.evaluate(model, images, labels, batch_size=7) == pytest.approx(expected, abs=1e-6)


@pytest.mark.exercise
def test_per_class_accuracy_matches_sklearn_recall(impl):
    from sklearn.metrics import confusion_matrix, recall_score

    images, labels = _digits_like(60, size=4, c=3, seed=4)
    model = tiny_linear(3, seed=4)
    with torch.no_grad():
        preds = model(images).argmax(1)
    table = impl.per_class_accuracy(model, images, labels, ["a", "b", "c"])
    assert isinstance(table, pd.DataFrame)
    recall = recall_score(labels.numpy(), preds.numpy(), average=None, labels=[0, 1, 2], zero_division=0)
    cm = confusion_matrix(labels.numpy(), preds.numpy(), labels=[0, 1, 2])
    assert table["accuracy"].tolist() == pytest.approx(recall.tolist())
    assert table["n"].tolist() == cm.sum(1).tolist()
    assert table["correct"].tolist() == cm.diagonal().tolist()


@pytest.mark.exercise
def test_per_class_accuracy_bad_input(impl):
    images, labels = _digits_like(10, size=4, c=3)
    impl.per_class_accuracy(tiny_linear(3), images, labels, ["a", "b", "c"])
    with pytest.raises(ValueError, match="2 names but the model returns 3 logits"):
        impl.per_class_accuracy(tiny_linear(3), images, labels, ["a", "b"])
    with pytest.raises(ValueError, match="9 entries but there are 10 images"):
        impl.per_class_accuracy(tiny_linear(3), images, labels[:9], ["a", "b", "c"])
