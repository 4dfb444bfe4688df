"""Lab 2: adversarial examples.

Four exercises, from the linear explanation to attacks on a deep network:

* :func:`linear_adversarial`: the warm-up on a linear softmax classifier.
* :func:`fgsm`: the fast gradient sign method (Goodfellow et al., 2014).
* :func:`pgd`: projected gradient descent in L-infinity or L2 (Madry et al., 2017).
* :func:`fooling_image`: the CS231n "fooling image": walk a photo to any class.

Conventions: images are float tensors (N,3,H,W) in [0,1]; models normalize
inside and return logits; their parameters are frozen, so take gradients with
respect to the *input*. Every attack returns a new, detached tensor that stays
inside [0,1] (and inside the eps-ball around the input).
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from labkit import validate

NORMS = ("linf", "l2")


class NotFooled(RuntimeError):
    """Raised by :func:`fooling_image` when the model still disagrees after ``max_steps`` steps."""


def linear_adversarial(weights: torch.Tensor, x: torch.Tensor, label, target, eps: float) -> torch.Tensor:
    """The adversarial step that fools a linear softmax classifier ``scores = weights @ x``.

    Moving ``x`` by ``delta`` changes the score gap ``s[target] - s[label]`` by
    ``(W[target] - W[label]) . delta``. Under an L-infinity budget ``|delta_i| <= eps``
    the largest change comes from ``delta = eps * sign(W[target] - W[label])``, and it
    equals ``eps * ||W[target] - W[label]||_1``: it grows with the input dimension.

    Args:
        weights: (C, D) float tensor, one row of weights per class.
        x: one input (D,) or a batch (N, D). Not clipped: a linear model's inputs
            are arbitrary real vectors.
        label: the current class: an int or a LongTensor (N,).
        target: the class to move towards: an int or a LongTensor (N,).
        eps: the L-infinity size of the step, >= 0.

    Returns:
        ``x + eps * sign(W[target] - W[label])``, with the shape of ``x``.
    """
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point() or weights.ndim != 2:
        raise TypeError(f"weights must be a float tensor of shape (C, D); got {validate.describe_value(weights)}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a float tensor of shape (D,) or (N, D); got {validate.describe_value(x)}")
    num_classes, dim = weights.shape
    if x.ndim not in (1, 2) or x.shape[-1] != dim:
        raise ValueError(
            f"x must have shape ({dim},) or (N, {dim}) to match weights {tuple(weights.shape)}; got {tuple(x.shape)}"
        )
    eps = validate.positive(eps, "eps", allow_zero=True)
    n = 1 if x.ndim == 1 else x.shape[0]
    label = validate.targets(label, n, num_classes, name="label")
    target = validate.targets(target, n, num_classes, name="target")
    ### BEGIN SOLUTION
    direction = (weights[target] - weights[label]).sign()  # (n, D)
    if x.ndim == 1:
        direction = direction[0]
    return (x + eps * direction).detach()
    ### END SOLUTION


def fgsm(model: torch.nn.Module, images: torch.Tensor, labels, eps: float, targeted: bool = False) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy, 2014): one signed gradient step.

    Untargeted: ``labels`` are the true classes; step *up* their cross-entropy loss.
    Targeted: ``labels`` are the target classes; step *down* their loss.

    Args:
        model: a classifier taking (N,3,H,W) images in [0,1] and returning logits.
        images: (N,3,H,W) float tensor in [0,1].
        labels: an int or a LongTensor (N,).
        eps: the L-infinity size of the step, >= 0.
        targeted: see above.

    Returns:
        ``clamp(images + eps * sign(grad), 0, 1)`` (untargeted) or
        ``clamp(images - eps * sign(grad), 0, 1)`` (targeted), where ``grad`` is the
        gradient of the cross-entropy loss of ``labels`` with respect to ``images``.
        Detached, same shape as ``images``.
    """
    images = validate.images(images)
    eps = validate.positive(eps, "eps", allow_zero=True)
    labels = validate.targets(labels, len(images), validate.num_classes(model, images), name="labels")
    ### BEGIN SOLUTION
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():  # works even when called under torch.no_grad()
        loss = F.cross_entropy(model(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
    sign = -1.0 if targeted else 1.0
    return (images.detach() + sign * eps * grad.sign()).clamp(0, 1)
    ### END SOLUTION


def pgd(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels,
    eps: float,
    step_size: float,
    steps: int,
    norm: str = "linf",
    targeted: bool = False,
    random_start: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al., 2017) in the L-infinity or L2 ball.

    Each step moves the whole batch along the gradient of the cross-entropy loss
    (up for untargeted, down for targeted), then projects back onto the eps-ball
    around ``images`` and onto [0,1]:

    * ``"linf"``: step ``step_size * sign(grad)``; project by clipping each pixel
      to ``[x - eps, x + eps]``.
    * ``"l2"``: step ``step_size * grad / ||grad||_2`` (per image); project by
      rescaling ``delta`` to L2 norm ``eps`` when it is larger.

    Args:
        model: a classifier taking (N,3,H,W) images in [0,1] and returning logits.
        images: (N,3,H,W) float tensor in [0,1].
        labels: true classes (untargeted) or target classes (targeted): int or LongTensor (N,).
        eps: radius of the ball, >= 0.
        step_size: size of each step, > 0.
        steps: number of steps, >= 1.
        norm: ``"linf"`` or ``"l2"``.
        targeted: whether ``labels`` are targets.
        random_start: start from a random point of the ball (uniform per pixel for
            ``"linf"``; a random direction with a uniform radius for ``"l2"``), clipped to [0,1].
        seed: seed of the random start (a private generator, so results are
            reproducible and the global RNG is untouched).

    Returns:
        The adversarial images, detached, inside [0,1] and inside the eps-ball.
    """
    images = validate.images(images)
    eps = validate.positive(eps, "eps", allow_zero=True)
    step_size = validate.positive(step_size, "step_size")
    steps = validate.positive_int(steps, "steps")
    norm = validate.choice(norm, "norm", NORMS)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None; got {type(seed).__name__}")
    labels = validate.targets(labels, len(images), validate.num_classes(model, images), name="labels")
    ### BEGIN SOLUTION
    # Channels-last memory layout: the same numbers, ~15% faster convolutions on CPU.
    x0 = images.detach().contiguous(memory_format=torch.channels_last)
    n = len(x0)
    adv = x0.clone()
    if random_start:
        gen = torch.Generator(device=x0.device)
        gen.manual_seed(seed if seed is not None else int(torch.randint(2**31, ())))
        if norm == "linf":
            delta = (torch.rand(x0.shape, generator=gen, device=x0.device) * 2 - 1) * eps
        else:
            delta = torch.randn(x0.shape, generator=gen, device=x0.device)
            radius = torch.rand((n, 1, 1, 1), generator=gen, device=x0.device) * eps
            delta = delta / delta.flatten(1).norm(dim=1).view(n, 1, 1, 1) * radius
        adv = (x0 + delta).clamp(0, 1)
    sign = -1.0 if targeted else 1.0
    for _ in range(steps):
        adv = adv.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(adv), labels)
            (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            if norm == "linf":
                adv = adv + (sign * step_size) * grad.sign()
                adv = torch.minimum(torch.maximum(adv, x0 - eps), x0 + eps).clamp_(0, 1)
            else:
                grad_norm = grad.flatten(1).norm(dim=1).add_(1e-10).view(n, 1, 1, 1)
                adv = adv + (sign * step_size) * grad / grad_norm
                delta = adv - x0
                delta_norm = delta.flatten(1).norm(dim=1).view(n, 1, 1, 1)
                factor = (eps / delta_norm).clamp(max=1.0)  # inf (delta = 0) clamps to 1
                adv = (x0 + delta * factor).clamp_(0, 1)
    return adv.detach().contiguous()
    ### END SOLUTION


def fooling_image(
    model: torch.nn.Module, image: torch.Tensor, target: int, lr: float = 1.0, max_steps: int = 100
) -> tuple[torch.Tensor, int]:
    """Walk one image to ``target`` by gradient ascent on the target logit (CS231n's fooling image).

    At each step: if the model already predicts ``target``, stop; otherwise
    compute ``g``, the gradient of the target's *logit* (not the loss) with
    respect to the image, and move by ``lr * g / ||g||_2``, clipping to [0,1].

    Args:
        model: a classifier taking (N,3,H,W) images in [0,1] and returning logits.
        image: one image, (1,3,H,W) in [0,1].
        target: the class to reach, an int.
        lr: the L2 length of each step (in [0,1] pixel units), > 0.
        max_steps: the largest number of steps to take, >= 1.

    Returns:
        ``(fooled, steps)``: the image the model classifies as ``target`` (detached,
        (1,3,H,W) in [0,1]) and the number of gradient steps taken (0 if the model
        already predicted ``target``).

    Raises:
        NotFooled: the model does not predict ``target`` after ``max_steps`` steps.
    """
    image = validate.images(image, name="image")
    if image.shape[0] != 1:
        raise ValueError(f"image must be a single image of shape (1,3,H,W); got a batch of {image.shape[0]}")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"target must be an int class index; got {type(target).__name__}")
    target = int(validate.targets(int(target), 1, validate.num_classes(model, image), name="target")[0])
    lr = validate.positive(lr, "lr")
    max_steps = validate.positive_int(max_steps, "max_steps")
    ### BEGIN SOLUTION
    x = image.detach().clone()
    for step in range(max_steps + 1):
        x.requires_grad_(True)
        with torch.enable_grad():
            logits = model(x)
            if int(logits.argmax(dim=1)) == target:
                return x.detach(), step
            if step == max_steps:
                break
            (grad,) = torch.autograd.grad(logits[0, target], x)
        with torch.no_grad():
            x = (x + lr * grad / grad.norm().clamp_min(1e-12)).clamp_(0, 1)
    raise NotFooled(
        f"the model does not predict class {target} after {max_steps} steps of size lr={lr}; raise max_steps or lr"
    )
    ### END SOLUTION
