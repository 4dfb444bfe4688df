"""Public checks for Lab 1 (saliency maps): ``check.saliency.<exercise>()``.

They use the tiny models of :mod:`labkit.check.toys`: two whose answers are known
exactly (a linear classifier, a quadratic one) and a small random CNN on which
Captum's implementations are the reference. Each check takes well under a second.
"""

from __future__ import annotations

import torch
from torch import nn

from labkit.check.runner import Exercise, check
from labkit.check.toys import (
    LinearClassifier,
    QuadraticClassifier,
    assert_close,
    count_hooks,
    images,
    record_forwards,
    tiny_cnn,
)

#: The tolerances of the comparisons (but completeness): RTOL is relative to the largest expected value.
RTOL, ATOL = 1e-4, 1e-5


# --------------------------------------------------------------------------
# input_gradients
# --------------------------------------------------------------------------
@check(
    "returns d logit_target / d x, shape (N,3,H,W), on a linear model",
    hint="use torch.autograd.grad on the sum of the target logits",
)
def input_gradients_linear(fn):
    model, x, t = LinearClassifier(), images(3), torch.tensor([0, 3, 1])
    assert_close(fn(model, x, t), model.weight[t], "gradients of a linear model", rtol=RTOL, atol=ATOL)


@check(
    "works on a frozen CNN and matches captum.attr.Saliency(abs=False)",
    hint="the model's weights don't require grad: make a copy of the images that does",
)
def input_gradients_cnn(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([2, 5])
    from captum.attr import Saliency

    ours = fn(model, x, t)
    assert_close(ours, Saliency(model).attribute(x, target=t, abs=False), "gradients", rtol=RTOL, atol=ATOL)


@check(
    "leaves the input alone and returns a tensor that does not require grad",
    hint="x = images.detach().clone().requires_grad_(True)",
)
def input_gradients_pure(fn):
    model, x = tiny_cnn(), images(2, 12)
    before = x.clone()
    g = fn(model, x, 1)
    assert torch.equal(x, before), "the input images were modified"
    assert not x.requires_grad, "the input images now require grad"
    assert not g.requires_grad, "the result still requires grad: return torch.autograd.grad's result or .detach() it"


input_gradients = Exercise(
    "saliency",
    "input_gradients",
    [
        input_gradients_linear,
        input_gradients_cnn,
        input_gradients_pure,
    ],
)

# --------------------------------------------------------------------------
# gradient_saliency
# --------------------------------------------------------------------------


@check("returns max over channels of |gradient|, shape (N,H,W), on a linear model", hint="abs() then amax(dim=1)")
def gradient_saliency_linear(fn):
    model, x, t = LinearClassifier(), images(3), torch.tensor([4, 0, 2])
    assert_close(fn(model, x, t), model.weight[t].abs().amax(1), "saliency of a linear model", rtol=RTOL, atol=ATOL)


@check("matches Captum's Saliency (max over channels) on a small CNN with one int target")
def gradient_saliency_cnn(fn):
    model, x = tiny_cnn(), images(3, 12)
    t = torch.full((3,), 4)
    from captum.attr import Saliency

    ours = fn(model, x, 4)
    assert_close(ours, Saliency(model).attribute(x, target=t).amax(1), "saliency", rtol=RTOL, atol=ATOL)


gradient_saliency = Exercise("saliency", "gradient_saliency", [gradient_saliency_linear, gradient_saliency_cnn])

# --------------------------------------------------------------------------
# smoothgrad
# --------------------------------------------------------------------------


@check("with noise_level=0 equals gradient saliency", hint="sigma = noise_level * (max - min) of each image")
def smoothgrad_zero_noise(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 3])
    from captum.attr import Saliency

    ours = fn(model, x, t, n_samples=3, noise_level=0.0)
    assert_close(ours, Saliency(model).attribute(x, target=t).amax(1), "smoothgrad without noise", rtol=RTOL, atol=ATOL)


@check("on a linear model the gradient is constant, so the map equals max_c |W[target]|")
def smoothgrad_linear(fn):
    model, x, t = LinearClassifier(), images(2), torch.tensor([1, 2])
    assert_close(
        fn(model, x, t, n_samples=4, noise_level=0.3),
        model.weight[t].abs().amax(1),
        "smoothgrad of a linear model",
        rtol=RTOL,
        atol=ATOL,
    )


@check(
    "averages |gradient| over exactly the documented noise draws (seeded generator, per-image sigma)",
    hint="g = torch.Generator().manual_seed(seed); noise = torch.randn(images.shape, generator=g) * sigma, "
    "once per sample; mean of |grad|, then max over channels",
)
def smoothgrad_exact_noise(fn):
    # On the quadratic model the gradient at x + noise is w[t] * (x + noise): a closed form
    # for each documented noise draw. The two images have different value ranges, so
    # different sigmas.
    model, t, n, level, seed = QuadraticClassifier(), torch.tensor([0, 3]), 5, 0.2, 3
    x = images(2) * torch.tensor([1.0, 0.4]).view(2, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    sigma = level * torch.tensor([float(x[0].max() - x[0].min()), float(x[1].max() - x[1].min())]).view(2, 1, 1, 1)
    draws = torch.stack([torch.randn(x.shape, generator=g) for _ in range(n)])  # (n, N, 3, H, W)
    mean_abs = (model.weight[t] * (x + draws * sigma)).abs().mean(0)
    assert_close(
        fn(model, x, t, n_samples=n, noise_level=level, seed=seed),
        mean_abs.amax(1),
        "smoothgrad of the quadratic model (gradient w x at each noisy copy)",
        rtol=RTOL,
        atol=ATOL,
    )


@check("makes one batched forward pass per noise sample", hint="loop over samples, not over images")
def smoothgrad_forward_passes(fn):
    model = LinearClassifier()
    forwards = record_forwards(model)
    fn(model, images(4), 0, n_samples=6, noise_level=0.1)
    assert len(forwards) == 6, f"expected 6 forward passes for n_samples=6, counted {len(forwards)}"


smoothgrad = Exercise(
    "saliency",
    "smoothgrad",
    [
        smoothgrad_zero_noise,
        smoothgrad_linear,
        smoothgrad_exact_noise,
        smoothgrad_forward_passes,
    ],
)

# --------------------------------------------------------------------------
# integrated_gradients
# --------------------------------------------------------------------------


@check(
    "is exact on a quadratic model (black baseline): IG = w x^2 / 2",
    hint="use labkit.saliency.ig_quadrature(steps) for the alphas and their weights",
)
def integrated_gradients_quadratic(fn):
    model, x, t = QuadraticClassifier(), images(2), torch.tensor([0, 3])
    expected = 0.5 * model.weight[t] * x**2
    assert_close(
        fn(model, x, t, steps=8, batch_size=5),
        expected,
        "integrated gradients of a quadratic model",
        rtol=RTOL,
        atol=ATOL,
    )


@check(
    "handles a gray baseline: IG = w (x^2 - b^2) / 2 on the quadratic model",
    hint="path = baseline + alpha * (images - baseline); multiply by (images - baseline)",
)
def integrated_gradients_baseline(fn):
    model, x, t = QuadraticClassifier(), images(2), torch.tensor([1, 2])
    expected = 0.5 * model.weight[t] * (x**2 - 0.25)
    assert_close(
        fn(model, x, t, baseline=0.5, steps=6), expected, "integrated gradients with baseline 0.5", rtol=RTOL, atol=ATOL
    )


@check("satisfies completeness on a small CNN: attributions sum to logit(x) - logit(baseline) within 1%")
def integrated_gradients_completeness(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 4])
    attr = fn(model, x, t, steps=128, batch_size=64)
    with torch.no_grad():
        delta = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    assert_close(attr.sum((1, 2, 3)), delta, "sum of attributions vs logit difference", rtol=1e-2, atol=1e-3)


@check(
    "gives the same answer whatever batch_size is",
    hint="batch the (image, step) pairs, and add each gradient to its own image",
)
def integrated_gradients_batching(fn):
    model, x, t = tiny_cnn(), images(3, 12), torch.tensor([0, 1, 2])
    assert_close(
        fn(model, x, t, steps=7, batch_size=1),
        fn(model, x, t, steps=7, batch_size=8),
        "batch_size=1 vs 8",
        rtol=RTOL,
        atol=ATOL,
    )


integrated_gradients = Exercise(
    "saliency",
    "integrated_gradients",
    [
        integrated_gradients_quadratic,
        integrated_gradients_baseline,
        integrated_gradients_completeness,
        integrated_gradients_batching,
    ],
)

# --------------------------------------------------------------------------
# occlusion
# --------------------------------------------------------------------------


@check(
    "matches captum.attr.Occlusion (averaged over channels) on a small CNN",
    hint="patches start at 0, stride, 2*stride, ...: ceil((H - window) / stride) + 1 per axis, "
    "the last clipped at the border",
)
def occlusion_captum(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([3, 0])
    from captum.attr import Occlusion

    theirs = Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0.0)
    assert_close(fn(model, x, t, window=4, stride=2), theirs.mean(1), "occlusion", rtol=RTOL, atol=ATOL)


@check("handles sizes the stride does not divide and a non-zero baseline")
def occlusion_ragged(fn):
    model, x, t = tiny_cnn(), images(1, 11), torch.tensor([2])
    from captum.attr import Occlusion

    theirs = Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, 5, 5), strides=(3, 3, 3), baselines=0.5)
    assert_close(
        fn(model, x, t, window=5, stride=3, baseline=0.5), theirs.mean(1), "occlusion on 11x11", rtol=RTOL, atol=ATOL
    )


@check("gives the same answer whatever batch_size is")
def occlusion_batching(fn):
    model, x, t = tiny_cnn(), images(2, 12), 1
    one, fifty = (fn(model, x, t, window=4, stride=2, batch_size=b) for b in (1, 50))
    assert_close(one, fifty, "batch_size=1 vs 50", rtol=RTOL, atol=ATOL)


occlusion = Exercise("saliency", "occlusion", [occlusion_captum, occlusion_ragged, occlusion_batching])

# --------------------------------------------------------------------------
# grad_cam
# --------------------------------------------------------------------------


def _upsampled(cam, x):
    """A coarse (N,1,h,w) map, bilinearly upsampled to the images' size (N,H,W)."""
    import torch.nn.functional as F

    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


@check(
    "matches Captum's LayerGradCam (ReLU'd, bilinearly upsampled) on a frozen CNN",
    hint="hook the layer's output A; weights = mean of dlogit/dA over (h,w); ReLU(sum_k w_k A_k); "
    "F.interpolate(..., mode='bilinear', align_corners=False)",
)
def grad_cam_captum(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 5])
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, model.features).attribute(x, target=t, relu_attributions=True)
    assert_close(fn(model, model.features, x, t), _upsampled(cam, x), "grad-cam", rtol=RTOL, atol=ATOL)


@check("accepts the layer's name and leaves no hook behind", hint="remove the hook in a finally: block")
def grad_cam_by_name(fn):
    model, x = tiny_cnn(), images(1, 12)
    out = fn(model, "features", x, 2)
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, model.features).attribute(x, target=2, relu_attributions=True)
    assert_close(out, _upsampled(cam, x), "grad-cam by layer name", rtol=RTOL, atol=ATOL)
    hooks = count_hooks(model)
    assert hooks == 0, f"{hooks} hook(s) left on the model"


grad_cam = Exercise("saliency", "grad_cam", [grad_cam_captum, grad_cam_by_name])

# --------------------------------------------------------------------------
# guided_backprop
# --------------------------------------------------------------------------


@check(
    "matches captum.attr.GuidedBackprop on a CNN built from nn.ReLU",
    hint="return _PositiveGradient.apply(output) from a forward hook on every ReLU",
)
def guided_backprop_captum(fn):
    from captum.attr import GuidedBackprop

    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([0, 4])
    ours = fn(model, x, t)
    assert_close(ours, GuidedBackprop(model).attribute(x, target=t), "guided backprop", rtol=RTOL, atol=ATOL)


@check("works with in-place ReLU6 (as in EfficientNet-Lite)", hint="hook nn.ReLU6 modules too")
def guided_backprop_relu6(fn):
    from captum.attr import GuidedBackprop

    # Small weights keep activations below 6, where ReLU6 and ReLU agree.
    model6 = tiny_cnn(nn.ReLU6, inplace=True, scale=0.5)
    reference = tiny_cnn(nn.ReLU, scale=0.5)
    x, t = images(2, 12), torch.tensor([3, 1])
    ours = fn(model6, x, t)
    assert_close(
        ours, GuidedBackprop(reference).attribute(x, target=t), "guided backprop with ReLU6", rtol=RTOL, atol=ATOL
    )


@check("leaves the model as it found it: no hooks, same inplace flags, same outputs")
def guided_backprop_leaves_model_alone(fn):
    model, x = tiny_cnn(nn.ReLU6, inplace=True), images(2, 12)
    flags = [m.inplace for m in model.modules() if hasattr(m, "inplace")]
    before = model(x)
    fn(model, x, 0)
    hooks = count_hooks(model)
    assert hooks == 0, f"{hooks} hook(s) left on the model"
    assert flags == [m.inplace for m in model.modules() if hasattr(m, "inplace")], "inplace flags changed"
    assert torch.equal(model(x), before), "the model's outputs changed"


guided_backprop = Exercise(
    "saliency",
    "guided_backprop",
    [
        guided_backprop_captum,
        guided_backprop_relu6,
        guided_backprop_leaves_model_alone,
    ],
)

EXERCISES = [input_gradients, gradient_saliency, smoothgrad, integrated_gradients, occlusion, grad_cam, guided_backprop]
