"""Public checks of Lab 2 (adversarial examples).

Run them in the notebook (``check.adversarial.fgsm()``) or with pytest. They use
tiny deterministic models (:mod:`labkit.check.toys`), most of them linear, so that
the input gradients are known in closed form; each check takes well under a second.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from labkit.check.runner import Exercise, check
from labkit.check.toys import LinearClassifier, OneConvReluNet, assert_close, assert_raises, images

#: The absolute tolerance of the comparisons.
TOL = 1e-5


def loss_gradient(model: LinearClassifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d CE(W x + b, labels) / dx for the linear model, in closed form (up to the 1/N of the mean)."""
    with torch.no_grad():
        p = model(images).softmax(-1)
        p[torch.arange(len(labels)), labels] -= 1
        return (p @ model.weight.flatten(1)).view_as(images)


def fgsm_closed_form(model: LinearClassifier, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step on the linear model's loss, in closed form: ``clamp(x + eps * sign(grad), 0, 1)``
    (a negative ``eps`` steps down the loss)."""
    return (images + eps * loss_gradient(model, images, labels).sign()).clamp(0, 1)


def _assert_attack_output(adv, images, eps, norm="linf"):
    assert isinstance(adv, torch.Tensor), f"expected a torch.Tensor, got {type(adv).__name__}"
    assert adv.shape == images.shape, f"expected shape {tuple(images.shape)}, got {tuple(adv.shape)}"
    assert not adv.requires_grad, "return a detached tensor (.detach()), not one that tracks gradients"
    lo, hi = adv.min().item(), adv.max().item()
    assert lo >= -TOL and hi <= 1 + TOL, f"values must stay in [0,1]; got min {lo:.4g}, max {hi:.4g}"
    delta = (adv - images).flatten(1)
    size = delta.abs().amax(1).max().item() if norm == "linf" else delta.norm(dim=1).max().item()
    assert size <= eps + 1e-4, f"the perturbation's {norm} norm is {size:.4g} > eps = {eps}"


# --------------------------------------------------------------------------
# linear_adversarial
# --------------------------------------------------------------------------
def _linear_problem(seed=0, c=4, d=30):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(c, d, generator=g), torch.randn(d, generator=g)


@check("returns x + eps * sign(W[target] - W[label])", hint="index the rows of weights; torch.sign")
def linear_adversarial_formula(fn):
    w, x = _linear_problem()
    out = fn(w, x, 1, 3, 0.1)
    assert_close(out, x + 0.1 * torch.sign(w[3] - w[1]), "linear_adversarial(w, x, 1, 3, 0.1)", rtol=0, atol=TOL)


@check(
    "raises the score gap s[target] - s[label] by exactly eps * ||W[target] - W[label]||_1",
    hint="the direction that most raises a dot product under |delta_i| <= eps is eps * sign(...)",
)
def linear_adversarial_gap(fn):
    w, x = _linear_problem(seed=1, c=3, d=100)
    out = fn(w, x, 0, 2, 0.05)
    gain = ((w[2] - w[0]) @ (out - x)).item()
    expected = 0.05 * (w[2] - w[0]).abs().sum().item()
    assert abs(gain - expected) < 1e-3, f"the gap grew by {gain:.4f}, expected {expected:.4f}"


@check("works on a batch x (N, D) with one label and target per row", hint="weights[target] has shape (N, D)")
def linear_adversarial_batch(fn):
    w, _ = _linear_problem(seed=2, c=5, d=12)
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(3))
    label, target = torch.tensor([0, 1, 2]), torch.tensor([4, 3, 0])
    out = fn(w, x, label, target, 0.2)
    assert_close(out, x + 0.2 * torch.sign(w[target] - w[label]), "batched linear_adversarial", rtol=0, atol=TOL)


# --------------------------------------------------------------------------
# fgsm
# --------------------------------------------------------------------------
@check(
    "untargeted: equals clamp(x + eps * sign(grad of the loss), 0, 1) on a linear model",
    hint="loss = F.cross_entropy(model(x), labels); grad with torch.autograd.grad on the input",
)
def fgsm_untargeted(fn):
    model, x = LinearClassifier(size=4, bias_scale=0.1), images(4, 4, seed=1)
    labels = torch.tensor([0, 1, 2, 3])
    expected = fgsm_closed_form(model, x, labels, 0.03)
    adv = fn(model, x, labels, 0.03)
    _assert_attack_output(adv, x, 0.03)
    assert_close(adv, expected, "fgsm(model, x, labels, 0.03)", rtol=0, atol=TOL)


@check("targeted: steps *down* the loss of the target classes", hint="subtract eps * sign(grad) instead")
def fgsm_targeted(fn):
    model, x = LinearClassifier(size=4, bias_scale=0.1), images(4, 4, seed=2)
    targets = torch.tensor([4, 4, 0, 1])
    expected = fgsm_closed_form(model, x, targets, -0.05)
    assert_close(fn(model, x, targets, 0.05, targeted=True), expected, "fgsm(..., targeted=True)", rtol=0, atol=TOL)


@check(
    "stays in [0,1] and in the eps-ball, returns a detached tensor, leaves the input unchanged",
    hint="clamp to [0,1]; .detach() the result; don't modify images in place",
)
def fgsm_constraints(fn):
    model, x = OneConvReluNet(), images(3, 8, seed=3)
    x[0, :, :2] = 0.0
    x[1, :, :2] = 1.0
    before = x.clone()
    adv = fn(model, x, 2, 0.1)
    _assert_attack_output(adv, x, 0.1)
    assert torch.equal(x, before), "fgsm modified its input images in place"


# --------------------------------------------------------------------------
# pgd
# --------------------------------------------------------------------------
@check(
    "linf, one step of size eps: equals FGSM's clamp(x + eps * sign(grad), 0, 1)",
    hint="step: adv + step_size * grad.sign(); project: clip adv to [x - eps, x + eps], then to [0,1]",
)
def pgd_linf_step(fn):
    model, x = LinearClassifier(size=4, bias_scale=0.1), images(4, 4, seed=4)
    labels = torch.tensor([1, 2, 3, 4])
    expected = fgsm_closed_form(model, x, labels, 0.02)
    assert_close(
        fn(model, x, labels, 0.02, 0.02, 1),
        expected,
        "pgd(model, x, labels, eps=0.02, step_size=0.02, steps=1)",
        rtol=0,
        atol=TOL,
    )


@check(
    "l2, one step: moves step_size along grad / ||grad||_2, or eps if step_size > eps",
    hint="normalize the gradient per image (flatten(1).norm(dim=1)); rescale delta to norm eps when it is longer",
)
def pgd_l2_step(fn):
    model, x = LinearClassifier(size=4, bias_scale=0.1), images(4, 4, seed=5, lo=0.2, hi=0.8)
    labels = torch.tensor([0, 0, 1, 1])
    g = loss_gradient(model, x, labels)
    unit = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert_close(
        fn(model, x, labels, 0.5, 0.1, 1, norm="l2"),
        (x + 0.1 * unit).clamp(0, 1),
        "pgd(..., eps=0.5, step_size=0.1, steps=1, norm='l2')",
        rtol=0,
        atol=TOL,
    )
    assert_close(
        fn(model, x, labels, 0.05, 0.1, 1, norm="l2"),
        (x + 0.05 * unit).clamp(0, 1),
        "pgd(..., eps=0.05, step_size=0.1, steps=1, norm='l2') (projected back to the ball)",
        rtol=0,
        atol=TOL,
    )


@check("linf and l2, many steps: stays in [0,1] and inside the eps-ball", hint="project after every step")
def pgd_constraints(fn):
    model, x = OneConvReluNet(), images(3, 8, seed=6)
    for norm, eps, step in (("linf", 0.03, 0.02), ("l2", 0.3, 0.2)):
        adv = fn(model, x, torch.tensor([0, 1, 2]), eps, step, 6, norm=norm)
        _assert_attack_output(adv, x, eps, norm)


@check(
    "untargeted PGD raises the loss of the labels; targeted PGD reaches the targets",
    hint="untargeted: ascend the loss of labels; targeted: descend the loss of the targets",
)
def pgd_effect(fn):
    model, x = OneConvReluNet(), images(4, 8, seed=7)
    with torch.no_grad():
        pred = model(x).argmax(1)
    adv = fn(model, x, pred, 0.5, 0.1, 10)
    with torch.no_grad():
        before, after = F.cross_entropy(model(x), pred), F.cross_entropy(model(adv), pred)
    assert after > before + 1.0, f"untargeted PGD should raise the loss of the labels: {before:.3f} -> {after:.3f}"
    target = (pred + 1) % model.num_classes
    adv = fn(model, x, target, 0.5, 0.1, 10, targeted=True)
    with torch.no_grad():
        hit = (model(adv).argmax(1) == target).float().mean().item()
    assert hit == 1.0, f"targeted PGD with a large eps should reach every target; reached {hit:.0%}"


@check(
    "random_start is deterministic given seed, differs across seeds, and stays in the ball",
    hint="draw the start with a torch.Generator seeded with `seed`",
)
def pgd_random_start(fn):
    model, x = OneConvReluNet(), images(2, 8, seed=8)
    for norm, eps in (("linf", 0.05), ("l2", 0.5)):
        a = fn(model, x, 0, eps, 0.01, 1, norm=norm, random_start=True, seed=3)
        b = fn(model, x, 0, eps, 0.01, 1, norm=norm, random_start=True, seed=3)
        c = fn(model, x, 0, eps, 0.01, 1, norm=norm, random_start=True, seed=4)
        assert torch.equal(a, b), f"{norm}: two calls with seed=3 gave different images"
        assert not torch.equal(a, c), f"{norm}: seeds 3 and 4 gave the same image: is the random start used?"
        _assert_attack_output(a, x, eps, norm)


# --------------------------------------------------------------------------
# fooling_image
# --------------------------------------------------------------------------
def _walked(model: LinearClassifier, image: torch.Tensor, target: int, lr: float, k: int) -> torch.Tensor:
    """Where ``k`` ascent steps take ``image`` on a linear model, in closed form.

    The target logit of a linear model has the same gradient ``W[target]`` everywhere, so every
    step adds ``lr * W[target] / ||W[target]||`` and clips to [0,1]; a constant step clipped
    after each addition is the same as ``k`` steps added at once, then clipped."""
    w = model.weight[target]
    return (image + k * lr * (w / w.norm()).view_as(image)).clamp(0, 1)


def _fooling_model() -> LinearClassifier:
    """The linear model of the fooling-image checks: 4 classes, 6x6 images."""
    return LinearClassifier(num_classes=4, size=6, seed=1, bias_scale=0.1)


def _predicted(model, image) -> int:
    with torch.no_grad():
        return int(model(image).argmax())


def _assert_first_hit(model, image, target, lr, steps):
    """``steps`` is the first step count at which the walk reaches ``target``."""
    assert isinstance(steps, int) or (isinstance(steps, torch.Tensor) and steps.numel() == 1), (
        f"steps should be an int; got {type(steps).__name__}"
    )
    steps = int(steps)
    assert steps >= 0, f"steps is {steps}"
    assert _predicted(model, _walked(model, image, target, lr, steps)) == target, (
        f"after {steps} steps of size lr the model does not predict the target yet: count the steps you took"
    )
    early = [k for k in range(steps) if _predicted(model, _walked(model, image, target, lr, k)) == target]
    assert not early, (
        f"returned {steps} steps, but the model already predicts the target after {early[0]}: "
        "check the prediction before each step, and stop as soon as it is the target"
    )


@check(
    "reaches the target and returns (image, steps) with the right number of steps on a linear model",
    hint="ascend the target *logit* with step lr * g / g.norm(); check the prediction before each step",
)
def fooling_image_steps(fn):
    model = _fooling_model()
    image = images(1, 6, seed=9, lo=0.45, hi=0.55)
    target = (_predicted(model, image) + 2) % 4
    out = fn(model, image, target, lr=0.05, max_steps=50)
    assert isinstance(out, tuple) and len(out) == 2, "return a tuple (image, steps)"
    fooled, steps = out
    _assert_attack_output(fooled, image, float("inf"))
    got = _predicted(model, fooled)
    assert got == target, f"the returned image is classified as {got}, not the target {target}"
    _assert_first_hit(model, image, target, 0.05, steps)
    assert int(steps) > 0, "this image needs at least one step"
    assert_close(
        fooled,
        _walked(model, image, target, 0.05, int(steps)),
        f"the image after {int(steps)} steps of lr * W[target] / ||W[target]||",
        rtol=0,
        atol=1e-4,
    )


@check(
    "returns 0 steps and the unchanged image when the model already predicts the target",
    hint="test the prediction before taking a step",
)
def fooling_image_zero_steps(fn):
    model = _fooling_model()
    image = images(1, 6, seed=10)
    pred = _predicted(model, image)
    fooled, steps = fn(model, image, pred, lr=0.1, max_steps=5)
    assert int(steps) == 0, f"expected 0 steps, got {steps}"
    assert_close(fooled, image, "the returned image", rtol=0, atol=TOL)


@check(
    "raises NotFooled (a RuntimeError) when max_steps is too small",
    hint="after the loop, raise NotFooled(...) with a message that says what to change",
)
def fooling_image_raises(fn):
    model = _fooling_model()
    image = images(1, 6, seed=9, lo=0.45, hi=0.55)
    target = (_predicted(model, image) + 2) % 4
    _, need = fn(model, image, target, lr=0.01, max_steps=500)  # enough steps: no error
    _assert_first_hit(model, image, target, 0.01, need)
    need, few = int(need), max(1, int(need) - 1)
    assert_raises(
        lambda: fn(model, image, target, lr=0.01, max_steps=few),
        RuntimeError,
        what=f"max_steps={few} (it needs {need} steps)",
    )


linear_adversarial = Exercise(
    "adversarial",
    "linear_adversarial",
    [
        linear_adversarial_formula,
        linear_adversarial_gap,
        linear_adversarial_batch,
    ],
)
fgsm = Exercise("adversarial", "fgsm", [fgsm_untargeted, fgsm_targeted, fgsm_constraints])
pgd = Exercise("adversarial", "pgd", [pgd_linf_step, pgd_l2_step, pgd_constraints, pgd_effect, pgd_random_start])
fooling_image = Exercise(
    "adversarial",
    "fooling_image",
    [
        fooling_image_steps,
        fooling_image_zero_steps,
        fooling_image_raises,
    ],
)

EXERCISES = [linear_adversarial, fgsm, pgd, fooling_image]
