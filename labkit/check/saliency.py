"""Public checks for Lab 1 (saliency maps): ``check.saliency.<exercise>()``.

They use tiny models whose answers are known exactly (a linear classifier, a
quadratic one) and a small random CNN on which Captum's implementations are
the reference. Each check takes well under a second.
"""
from __future__ import annotations

import torch
from torch import nn

from labkit.check.runner import Exercise, check

# --------------------------------------------------------------------------
# Models with known answers
# --------------------------------------------------------------------------


class Linear(nn.Module):
    """logits = W . flatten(x) + b, so d logit_c / d x = W[c] exactly."""

    def __init__(self, shape=(3, 8, 8), num_classes=5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.shape, self.num_classes = shape, num_classes
        self.weight = nn.Parameter(torch.randn(num_classes, *shape, generator=g), requires_grad=False)
        self.bias = nn.Parameter(torch.randn(num_classes, generator=g), requires_grad=False)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.einsum("nchw,kchw->nk", x, self.weight) + self.bias


class Quadratic(nn.Module):
    """logit_c = 1/2 sum w_c x^2: integrated gradients from baseline b is w_c (x^2 - b^2) / 2."""

    def __init__(self, shape=(3, 8, 8), num_classes=4, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.randn(num_classes, *shape, generator=g), requires_grad=False)

    def forward(self, x):
        return 0.5 * torch.einsum("nchw,kchw->nk", x**2, self.weight)


ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def tiny_cnn(activation=nn.ReLU, inplace=False, seed=0, num_classes=6, scale=1.0) -> nn.Module:
    """A small frozen CNN: conv-act-conv-act-pool-linear, deterministic for a seed.

    ``activation`` is a module class or its name in :data:`ACTIVATIONS` (``"relu6"``).
    ``features`` (the second activation's output, (N,8,H/2,W/2)) is a good Grad-CAM layer.
    """
    if isinstance(activation, str):
        activation = ACTIVATIONS[activation]
    torch.manual_seed(seed)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("act1", activation(inplace=inplace))
    net.add_module("conv2", nn.Conv2d(8, 8, 3, padding=1, stride=2))
    net.add_module("features", activation(inplace=inplace))
    net.add_module("pool", nn.AdaptiveAvgPool2d(2))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(32, num_classes))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    net.num_classes = num_classes
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def images(n=3, size=8, seed=0) -> torch.Tensor:
    """Random images (n,3,size,size) in [0,1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _close(actual, expected, what, rtol=1e-4, atol=1e-5):
    assert isinstance(actual, torch.Tensor), f"{what}: expected a torch.Tensor, got {type(actual).__name__}"
    assert actual.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
    diff = (actual.detach().float() - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert diff <= atol + rtol * scale, f"{what}: off by {diff:.3g} (largest value {scale:.3g})"


# --------------------------------------------------------------------------
# input_gradients
# --------------------------------------------------------------------------
@check("returns d logit_target / d x, shape (N,3,H,W), on a linear model", hint="use torch.autograd.grad on the sum of the target logits")
def ig_linear(fn):
    model, x, t = Linear(), images(3), torch.tensor([0, 3, 1])
    _close(fn(model, x, t), model.weight[t], "gradients of a linear model")


@check("works on a frozen CNN and matches captum.attr.Saliency(abs=False)",
       hint="the model's weights don't require grad: make a copy of the images that does")
def ig_cnn(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([2, 5])
    from captum.attr import Saliency

    _close(fn(model, x, t), Saliency(model).attribute(x, target=t, abs=False), "gradients")


@check("leaves the input alone and returns a tensor that does not require grad", hint="x = images.detach().clone().requires_grad_(True)")
def ig_pure(fn):
    model, x = tiny_cnn(), images(2, 12)
    before = x.clone()
    g = fn(model, x, 1)
    assert torch.equal(x, before), "the input images were modified"
    assert not x.requires_grad, "the input images now require grad"
    assert not g.requires_grad, "the result still requires grad: return torch.autograd.grad's result or .detach() it"


input_gradients = Exercise("saliency", "input_gradients", [ig_linear, ig_cnn, ig_pure])

# --------------------------------------------------------------------------
# gradient_saliency
# --------------------------------------------------------------------------


@check("returns max over channels of |gradient|, shape (N,H,W), on a linear model", hint="abs() then amax(dim=1)")
def gs_linear(fn):
    model, x, t = Linear(), images(3), torch.tensor([4, 0, 2])
    _close(fn(model, x, t), model.weight[t].abs().amax(1), "saliency of a linear model")


@check("matches Captum's Saliency (max over channels) on a small CNN with one int target")
def gs_cnn(fn):
    model, x = tiny_cnn(), images(3, 12)
    t = torch.full((3,), 4)
    from captum.attr import Saliency

    _close(fn(model, x, 4), Saliency(model).attribute(x, target=t).amax(1), "saliency")


gradient_saliency = Exercise("saliency", "gradient_saliency", [gs_linear, gs_cnn])

# --------------------------------------------------------------------------
# smoothgrad
# --------------------------------------------------------------------------


@check("with noise_level=0 equals gradient saliency", hint="sigma = noise_level * (max - min) of each image")
def sg_zero(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 3])
    from captum.attr import Saliency

    _close(fn(model, x, t, n_samples=3, noise_level=0.0), Saliency(model).attribute(x, target=t).amax(1),
           "smoothgrad without noise")


@check("on a linear model the gradient is constant, so the map equals max_c |W[target]|")
def sg_linear(fn):
    model, x, t = Linear(), images(2), torch.tensor([1, 2])
    _close(fn(model, x, t, n_samples=4, noise_level=0.3), model.weight[t].abs().amax(1), "smoothgrad of a linear model")


@check("averages |gradient| over exactly the documented noise draws (seeded generator, per-image sigma)",
       hint="g = torch.Generator().manual_seed(seed); noise = torch.randn(images.shape, generator=g) * sigma, once per sample; mean of |grad|, then max over channels")
def sg_exact(fn):
    # On the quadratic model the gradient at x + noise is w[t] * (x + noise): a closed form
    # for each documented noise draw. The two images have different value ranges, so
    # different sigmas.
    model, t, n, level, seed = Quadratic(), torch.tensor([0, 3]), 5, 0.2, 3
    x = images(2) * torch.tensor([1.0, 0.4]).view(2, 1, 1, 1)
    g = torch.Generator().manual_seed(seed)
    sigma = level * torch.tensor([float(x[0].max() - x[0].min()), float(x[1].max() - x[1].min())]).view(2, 1, 1, 1)
    draws = torch.stack([torch.randn(x.shape, generator=g) for _ in range(n)])  # (n, N, 3, H, W)
    mean_abs = (model.weight[t] * (x + draws * sigma)).abs().mean(0)
    _close(fn(model, x, t, n_samples=n, noise_level=level, seed=seed), mean_abs.amax(1),
           "smoothgrad of the quadratic model (gradient w x at each noisy copy)")


@check("makes one batched forward pass per noise sample", hint="loop over samples, not over images")
def sg_calls(fn):
    model = Linear()
    fn(model, images(4), 0, n_samples=6, noise_level=0.1)
    assert model.calls == 6, f"expected 6 forward passes for n_samples=6, counted {model.calls}"


smoothgrad = Exercise("saliency", "smoothgrad", [sg_zero, sg_linear, sg_exact, sg_calls])

# --------------------------------------------------------------------------
# integrated_gradients
# --------------------------------------------------------------------------


@check("is exact on a quadratic model (black baseline): IG = w x^2 / 2",
       hint="use labkit.saliency.ig_quadrature(steps) for the alphas and their weights")
def igr_quadratic(fn):
    model, x, t = Quadratic(), images(2), torch.tensor([0, 3])
    expected = 0.5 * model.weight[t] * x**2
    _close(fn(model, x, t, steps=8, batch_size=5), expected, "integrated gradients of a quadratic model", rtol=1e-4)


@check("handles a gray baseline: IG = w (x^2 - b^2) / 2 on the quadratic model", hint="path = baseline + alpha * (images - baseline); multiply by (images - baseline)")
def igr_baseline(fn):
    model, x, t = Quadratic(), images(2), torch.tensor([1, 2])
    expected = 0.5 * model.weight[t] * (x**2 - 0.25)
    _close(fn(model, x, t, baseline=0.5, steps=6), expected, "integrated gradients with baseline 0.5", rtol=1e-4)


@check("satisfies completeness on a small CNN: attributions sum to logit(x) - logit(baseline) within 1%")
def igr_complete(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 4])
    attr = fn(model, x, t, steps=128, batch_size=64)
    with torch.no_grad():
        delta = model(x).gather(1, t[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, t[:, None])[:, 0]
    _close(attr.sum((1, 2, 3)), delta, "sum of attributions vs logit difference", rtol=1e-2, atol=1e-3)


@check("gives the same answer whatever batch_size is", hint="batch the (image, step) pairs, and add each gradient to its own image")
def igr_batching(fn):
    model, x, t = tiny_cnn(), images(3, 12), torch.tensor([0, 1, 2])
    _close(fn(model, x, t, steps=7, batch_size=1), fn(model, x, t, steps=7, batch_size=8), "batch_size=1 vs 8")


integrated_gradients = Exercise("saliency", "integrated_gradients", [igr_quadratic, igr_baseline, igr_complete, igr_batching])

# --------------------------------------------------------------------------
# occlusion
# --------------------------------------------------------------------------


@check("matches captum.attr.Occlusion (averaged over channels) on a small CNN",
       hint="patches start at 0, stride, 2*stride, ...: ceil((H - window) / stride) + 1 per axis, the last clipped at the border")
def occ_captum(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([3, 0])
    from captum.attr import Occlusion

    theirs = Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0.0)
    _close(fn(model, x, t, window=4, stride=2), theirs.mean(1), "occlusion")


@check("handles sizes the stride does not divide and a non-zero baseline")
def occ_ragged(fn):
    model, x, t = tiny_cnn(), images(1, 11), torch.tensor([2])
    from captum.attr import Occlusion

    theirs = Occlusion(model).attribute(x, target=t, sliding_window_shapes=(3, 5, 5), strides=(3, 3, 3), baselines=0.5)
    _close(fn(model, x, t, window=5, stride=3, baseline=0.5), theirs.mean(1), "occlusion on 11x11")


@check("gives the same answer whatever batch_size is")
def occ_batching(fn):
    model, x, t = tiny_cnn(), images(2, 12), 1
    _close(fn(model, x, t, window=4, stride=2, batch_size=1), fn(model, x, t, window=4, stride=2, batch_size=50), "batch_size=1 vs 50")


occlusion = Exercise("saliency", "occlusion", [occ_captum, occ_ragged, occ_batching])

# --------------------------------------------------------------------------
# grad_cam
# --------------------------------------------------------------------------


def _upsampled(cam, x):
    """A coarse (N,1,h,w) map, bilinearly upsampled to the images' size (N,H,W)."""
    import torch.nn.functional as F

    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]



@check("matches Captum's LayerGradCam (ReLU'd, bilinearly upsampled) on a frozen CNN",
       hint="hook the layer's output A; weights = mean of dlogit/dA over (h,w); ReLU(sum_k w_k A_k); F.interpolate(..., mode='bilinear', align_corners=False)")
def gc_captum(fn):
    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([1, 5])
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, model.features).attribute(x, target=t, relu_attributions=True)
    _close(fn(model, model.features, x, t), _upsampled(cam, x), "grad-cam")


@check("accepts the layer's name and leaves no hook behind", hint="remove the hook in a finally: block")
def gc_name(fn):
    model, x = tiny_cnn(), images(1, 12)
    out = fn(model, "features", x, 2)
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, model.features).attribute(x, target=2, relu_attributions=True)
    _close(out, _upsampled(cam, x), "grad-cam by layer name")
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 0, f"{hooks} hook(s) left on the model"


grad_cam = Exercise("saliency", "grad_cam", [gc_captum, gc_name])

# --------------------------------------------------------------------------
# guided_backprop
# --------------------------------------------------------------------------


@check("matches captum.attr.GuidedBackprop on a CNN built from nn.ReLU",
       hint="return _PositiveGradient.apply(output) from a forward hook on every ReLU")
def gb_captum(fn):
    from captum.attr import GuidedBackprop

    model, x, t = tiny_cnn(), images(2, 12), torch.tensor([0, 4])
    _close(fn(model, x, t), GuidedBackprop(model).attribute(x, target=t), "guided backprop")


@check("works with in-place ReLU6 (as in EfficientNet-Lite)", hint="hook nn.ReLU6 modules too")
def gb_relu6(fn):
    from captum.attr import GuidedBackprop

    # Small weights keep activations below 6, where ReLU6 and ReLU agree.
    model6 = tiny_cnn(nn.ReLU6, inplace=True, scale=0.5)
    reference = tiny_cnn(nn.ReLU, scale=0.5)
    x, t = images(2, 12), torch.tensor([3, 1])
    _close(fn(model6, x, t), GuidedBackprop(reference).attribute(x, target=t), "guided backprop with ReLU6")


@check("leaves the model as it found it: no hooks, same inplace flags, same outputs")
def gb_clean(fn):
    model, x = tiny_cnn(nn.ReLU6, inplace=True), images(2, 12)
    flags = [m.inplace for m in model.modules() if hasattr(m, "inplace")]
    before = model(x)
    fn(model, x, 0)
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 0, f"{hooks} hook(s) left on the model"
    assert flags == [m.inplace for m in model.modules() if hasattr(m, "inplace")], "inplace flags changed"
    assert torch.equal(model(x), before), "the model's outputs changed"


guided_backprop = Exercise("saliency", "guided_backprop", [gb_captum, gb_relu6, gb_clean])

EXERCISES = [input_gradients, gradient_saliency, smoothgrad, integrated_gradients, occlusion, grad_cam, guided_backprop]
