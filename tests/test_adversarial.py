"""Lab 2 (adversarial examples): the exercises against closed forms and torchattacks.

Run on the reference (default) or the student's file (``--impl=student``).
Tiny models keep the whole file at a few seconds; one test uses the real
EfficientNet-Lite0 at low resolution.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.check.toys import LinearClassifier, OneConvReluNet, images
from labkit.models import freeze

EXERCISE_MODULE = "adversarial"


# --------------------------------------------------------------------------
# The public checks, exactly as the notebook runs them
# --------------------------------------------------------------------------
def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))


# --------------------------------------------------------------------------
# Equality with torchattacks
# --------------------------------------------------------------------------
def _torchattack(cls, model, targeted=False, **kwargs):
    attack = cls(model, **kwargs)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    return attack


@pytest.mark.exercise
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_torchattacks(impl, torchattacks, targeted):
    model, x = OneConvReluNet(), images(5, 16, seed=11)
    labels = torch.tensor([0, 1, 2, 3, 4])
    expected = _torchattack(torchattacks.FGSM, model, targeted, eps=8 / 255)(x, labels)
    got = impl.fgsm(model, x, labels, 8 / 255, targeted=targeted)
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.exercise
@pytest.mark.parametrize("norm,targeted", [("linf", False), ("linf", True), ("l2", False), ("l2", True)])
def test_pgd_equals_torchattacks(impl, torchattacks, norm, targeted):
    """Without a random start PGD is deterministic: the same settings give the same images."""
    model, x = OneConvReluNet(seed=1), images(5, 16, seed=12)
    labels = torch.tensor([5, 4, 3, 2, 1])
    if norm == "linf":
        eps, step = 8 / 255, 2 / 255
        attack = _torchattack(torchattacks.PGD, model, targeted, eps=eps, alpha=step, steps=7, random_start=False)
    else:
        eps, step = 0.5, 0.1
        attack = _torchattack(torchattacks.PGDL2, model, targeted, eps=eps, alpha=step, steps=7, random_start=False)
    expected = attack(x, labels)
    got = impl.pgd(model, x, labels, eps, step, 7, norm=norm, targeted=targeted)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


@pytest.fixture(scope="module")
def digits_model():
    """A small convnet trained in ~1 s on scikit-learn's 8x8 digits, shown as 3-channel [0,1] images."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images / 16, dtype=torch.float32)[:, None].expand(-1, 3, -1, -1).contiguous()
    y = torch.tensor(digits.target)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train, test = slice(0, 1400), slice(1400, None)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x[train]), y[train]).backward()
        opt.step()
    freeze(model)
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy > 0.9, accuracy
    return model, x[test], y[test]


def _success(model, adv, labels):
    with torch.no_grad():
        return (model(adv).argmax(1) != labels).float().mean().item()


@pytest.mark.exercise
@pytest.mark.parametrize("norm,eps,step", [("linf", 0.08, 0.02), ("l2", 0.8, 0.2)])
def test_pgd_random_start_success_rate_matches_torchattacks(impl, torchattacks, digits_model, norm, eps, step):
    """With random starts the images differ, but the success rates must agree within sampling noise."""
    model, x, y = digits_model
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    torch.manual_seed(1)
    theirs = _success(model, cls(model, eps=eps, alpha=step, steps=5, random_start=True)(x, y), y)
    ours = _success(model, impl.pgd(model, x, y, eps, step, 5, norm=norm, random_start=True, seed=1), y)
    assert 0.15 < theirs < 0.95, f"pick settings where the success rate is informative; got {theirs:.2f}"
    noise = 3 * (theirs * (1 - theirs) / len(y)) ** 0.5 + 0.02
    assert abs(ours - theirs) <= noise, f"success rate {ours:.3f} vs torchattacks {theirs:.3f} (noise {noise:.3f})"


@pytest.mark.exercise
def test_fgsm_and_pgd_on_efficientnet_match_torchattacks(impl, torchattacks, model, photos):
    """The real model (batch norm, swish, normalization inside): FGSM and 2-step PGD equal torchattacks."""
    x = F.interpolate(photos[0][:2], size=96, mode="bilinear", antialias=True).clamp(0, 1)
    labels = photos[1][:2]
    expected = torchattacks.FGSM(model, eps=2 / 255)(x, labels)
    assert torch.allclose(impl.fgsm(model, x, labels, 2 / 255), expected, atol=1e-6)
    expected = torchattacks.PGD(model, eps=2 / 255, alpha=1 / 255, steps=2, random_start=False)(x, labels)
    got = impl.pgd(model, x, labels, 2 / 255, 1 / 255, 2)
    # a gradient entry that is ~0 can flip sign between two runs: allow a handful of such pixels
    assert ((got - expected).abs() > 1e-5).float().mean() < 1e-3


# --------------------------------------------------------------------------
# Analytic properties
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_linear_adversarial_gain_grows_with_dimension(impl):
    """The linear explanation: the same per-pixel eps buys a score change proportional to D."""
    gains = []
    for d in (10, 100, 1000):
        w = torch.ones(2, d)
        w[1] = -1  # W[target] - W[label] = 2 everywhere
        x = torch.zeros(d)
        out = impl.linear_adversarial(w, x, 1, 0, 0.01)
        gains.append(((w[0] - w[1]) @ (out - x)).item())
    assert gains == pytest.approx([0.2, 2.0, 20.0])


def _expected_fooling_steps(model, image, target, lr, max_steps):
    """Steps the fooling-image ascent takes on a linear model (None if more than ``max_steps``):
    every step is ``lr * W[target] / ||W[target]||``, then clipping to [0,1]."""
    w, b = model.weight.flatten(1).double(), model.bias.double()
    x = image.double().flatten()
    step = lr * w[target] / w[target].norm()
    for k in range(max_steps + 1):
        if int((w @ x + b).argmax()) == target:
            return k
        x = (x + step).clamp(0, 1)
    return None


@pytest.mark.exercise
def test_fooling_image_matches_closed_form_for_several_targets(impl):
    model = LinearClassifier(num_classes=6, size=5, seed=4, bias_scale=0.1)
    image = images(1, 5, seed=2, lo=0.4, hi=0.6)
    needed = {}
    for target in range(6):
        needed[target] = _expected_fooling_steps(model, image, target, 0.03, 100)
        fooled, steps = impl.fooling_image(model, image, target, lr=0.03, max_steps=100)
        assert steps == needed[target]
        assert fooled.min() >= 0 and fooled.max() <= 1
    target = max(needed, key=needed.get)
    assert needed[target] >= 2
    with pytest.raises(impl.NotFooled):
        impl.fooling_image(model, image, target, lr=0.03, max_steps=needed[target] - 1)


@pytest.mark.exercise
def test_pgd_zero_eps_returns_the_input(impl):
    model, x = OneConvReluNet(), images(2, 8, seed=13)
    for norm in ("linf", "l2"):
        assert torch.allclose(impl.pgd(model, x, 0, 0.0, 0.01, 3, norm=norm), x, atol=1e-7)


# --------------------------------------------------------------------------
# Bad input: clear ValueErrors (each test first calls the function on valid input)
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_fgsm_bad_input(impl):
    model, x = OneConvReluNet(), images(2, 8)
    impl.fgsm(model, x, 0, 0.1)
    with pytest.raises(ValueError, match="eps"):
        impl.fgsm(model, x, 0, -0.1)
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        impl.fgsm(model, x, 6, 0.1)
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        impl.fgsm(model, x * 255, 0, 0.1)


@pytest.mark.exercise
def test_pgd_bad_input(impl):
    model, x = OneConvReluNet(), images(2, 8)
    impl.pgd(model, x, 0, 0.1, 0.05, 2)
    with pytest.raises(ValueError, match="eps"):
        impl.pgd(model, x, 0, -0.1, 0.05, 2)
    with pytest.raises(ValueError, match="norm"):
        impl.pgd(model, x, 0, 0.1, 0.05, 2, norm="l1")
    with pytest.raises(ValueError, match="labels"):
        impl.pgd(model, x, torch.tensor([0, 99]), 0.1, 0.05, 2)
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        impl.pgd(model, x - 0.5, 0, 0.1, 0.05, 2)
    with pytest.raises(ValueError, match="steps"):
        impl.pgd(model, x, 0, 0.1, 0.05, 0)


@pytest.mark.exercise
def test_fooling_image_bad_input(impl):
    model = LinearClassifier(num_classes=4, size=6, seed=1, bias_scale=0.1)
    image = images(1, 6, seed=10)
    with torch.no_grad():
        pred = int(model(image).argmax())
    impl.fooling_image(model, image, pred)
    with pytest.raises(ValueError, match="target"):
        impl.fooling_image(model, image, 4)
    with pytest.raises(ValueError, match="target"):
        impl.fooling_image(model, image, -1)
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        impl.fooling_image(model, image * 2 + 1, pred)
    with pytest.raises(ValueError, match="single image"):
        impl.fooling_image(model, image.repeat(2, 1, 1, 1), pred)
    with pytest.raises(ValueError, match="lr"):
        impl.fooling_image(model, image, pred, lr=-1.0)


@pytest.mark.exercise
def test_linear_adversarial_bad_input(impl):
    w, x = torch.randn(3, 8), torch.rand(8)
    impl.linear_adversarial(w, x, 0, 1, 0.1)
    with pytest.raises(ValueError, match="eps"):
        impl.linear_adversarial(w, x, 0, 1, -0.1)
    with pytest.raises(ValueError, match="target"):
        impl.linear_adversarial(w, x, 0, 3, 0.1)
    with pytest.raises(ValueError, match=r"\(8,\)"):
        impl.linear_adversarial(w, torch.rand(9), 0, 1, 0.1)
