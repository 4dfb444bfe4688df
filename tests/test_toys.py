"""labkit.check.toys: every toy's closed form (logits, gradient, attribution) against autograd, and the helpers."""

import pytest
import torch
import torch.nn.functional as F

from labkit.check.toys import (
    BrightnessModel,
    LinearClassifier,
    OneConvReluNet,
    PooledLinear,
    QuadraticClassifier,
    SmoothConvNet,
    assert_close,
    assert_raises,
    brightness_images,
    count_hooks,
    images,
    record_forwards,
    tiny_cnn,
    tiny_linear,
    toy_pgd,
)


def input_gradient(model, x, logit):
    """d logit(model(x)).sum() / dx by autograd, ``logit`` picking what to differentiate from the logits."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(logit(model(x)).sum(), x)
    return g


def picked(t):
    return lambda logits: logits.gather(1, t[:, None])


def assert_frozen(model):
    assert not model.training and not any(p.requires_grad for p in model.parameters())


# --------------------------------------------------------------------------
# Models with closed forms
# --------------------------------------------------------------------------
def test_linear_classifier_logits_and_gradients():
    model = LinearClassifier(size=5, num_classes=4, seed=3, scale=0.5, bias_scale=0.1)
    x, t = images(3, 5), torch.tensor([0, 3, 1])
    assert_frozen(model)
    assert model.weight.shape == (4, 3, 5, 5) and model.input_size == 5 and model.num_classes == 4
    w, b = model.weight, model.bias
    torch.testing.assert_close(model(x), torch.einsum("nchw,kchw->nk", x, w) + b)
    torch.testing.assert_close(input_gradient(model, x, picked(t)), w[t])
    y = torch.tensor([2, 2, 0])
    ce = input_gradient(model, x, lambda logits: F.cross_entropy(logits, y, reduction="sum"))
    closed = (model(x).softmax(-1) - F.one_hot(y, 4)) @ w.flatten(1)
    torch.testing.assert_close(ce, closed.view_as(x))
    flat = LinearClassifier(size=5, scale=0.0)
    assert torch.equal(input_gradient(flat, x, picked(t)), torch.zeros_like(x))


def test_linear_classifier_draws_weight_then_bias_from_its_seed():
    model = LinearClassifier(size=2, num_classes=3, seed=7, scale=2.0, bias_scale=0.1)
    g = torch.Generator().manual_seed(7)
    assert torch.equal(model.weight, 2.0 * torch.randn(3, 3, 2, 2, generator=g))
    assert torch.equal(model.bias, 0.1 * torch.randn(3, generator=g))


def test_quadratic_classifier_gradient_and_exact_integrated_gradients():
    model = QuadraticClassifier(size=4, num_classes=3, seed=2)
    x, b, t = images(2, 4), images(1, 4, seed=1), torch.tensor([2, 0])
    assert_frozen(model)
    torch.testing.assert_close(model(x), 0.5 * torch.einsum("nchw,kchw->nk", x**2, model.weight))
    torch.testing.assert_close(input_gradient(model, x, picked(t)), model.weight[t] * x)
    # the path's gradient is linear in alpha, so the midpoint rule is exact whatever the number of steps
    alphas = (torch.arange(3) + 0.5) / 3
    path_grads = torch.stack([input_gradient(model, b + a * (x - b), picked(t)) for a in alphas])
    ig = (x - b) * path_grads.mean(0)
    torch.testing.assert_close(ig, model.weight[t] * (x**2 - b**2) / 2)


def test_pooled_linear_gradient_is_its_weight_spread_over_quadrants():
    model = PooledLinear(num_classes=5, seed=1, scale=4.0)
    x, t = images(2, 6), torch.tensor([4, 1])
    assert_frozen(model)
    w = model.linear.weight.view(5, 3, 2, 2)
    closed = w[t].repeat_interleave(3, dim=2).repeat_interleave(3, dim=3) * 4 / 36  # each quadrant is 3x3
    torch.testing.assert_close(input_gradient(model, x, picked(t)), closed)
    torch.testing.assert_close(model(torch.full((1, 3, 6, 6), 0.5))[0], model.linear.bias)


def test_brightness_model_predicts_the_band_and_has_a_uniform_gradient():
    model = BrightnessModel(num_classes=4, scale=2.0).eval()
    assert list(model.parameters()) == []
    levels = torch.tensor([0.1, 0.3, 0.6, 0.9])
    assert model(brightness_images(levels)).argmax(1).tolist() == [0, 1, 2, 3]
    x, t = images(3, 4), torch.tensor([0, 2, 3])
    m = x.flatten(1).mean(1)
    closed = -2 * 2.0 * 4 * (4 * m - t - 0.5) / (3 * 4 * 4)
    torch.testing.assert_close(input_gradient(model, x, picked(t)), closed.view(-1, 1, 1, 1).expand_as(x))
    assert torch.equal(model.train()(x), -model.eval()(x))


def test_tiny_linear_is_a_trainable_linear_layer_with_zero_bias():
    model = tiny_linear(num_classes=3, size=4, seed=5)
    assert model.training and all(p.requires_grad for p in model.parameters()) and model.num_classes == 3
    g = torch.Generator().manual_seed(5)
    assert torch.equal(model[1].weight, torch.randn(3, 48, generator=g) * 0.1)
    assert torch.equal(model[1].bias, torch.zeros(3))
    x = images(2, 4)
    torch.testing.assert_close(model(x), x.flatten(1) @ model[1].weight.T)


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_toy_pgd_moves_by_its_closed_form(norm, targeted):
    model, x, y = BrightnessModel(4).eval(), brightness_images([0.5, 0.5]), torch.tensor([2, 1])
    adv = toy_pgd(model, x, y, eps=0.3, step_size=0.05, steps=4, norm=norm, targeted=targeted)  # r = 0.2
    delta = (adv - x).flatten(1)
    size = delta.abs() if norm == "linf" else delta.norm(dim=1)
    torch.testing.assert_close(size, torch.full_like(size, 0.2))
    h, w, c = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), torch.arange(3.0), indexing="ij")
    pattern = torch.stack([torch.cos((k + 1) * (h + 2 * w + 3 * c)).permute(2, 0, 1).flatten() for k in (2, 1)])
    logits = model(x)
    side = torch.sign(logits[torch.arange(2), y] - logits.mean(1))[:, None] * (1 if targeted else -1)
    assert torch.equal(torch.sign(delta), side * torch.sign(pattern))
    back = toy_pgd(model.train(), x, y, eps=0.3, step_size=0.05, steps=4, norm=norm, targeted=targeted)
    torch.testing.assert_close(back - x, x - adv)  # train mode negates the logits, so the side flips


# --------------------------------------------------------------------------
# Models without a closed form: the formula in the docstring, shapes, seeds
# --------------------------------------------------------------------------
def test_tiny_cnn_shapes_seed_and_relu6_at_small_scale():
    model, x = tiny_cnn(), images(2, 11)
    assert_frozen(model)
    features = []
    model.features.register_forward_hook(lambda m, i, o: features.append(o))
    assert model(x).shape == (2, 6) and features[0].shape == (2, 8, 6, 6)
    assert torch.equal(tiny_cnn(seed=3)(x), tiny_cnn(seed=3)(x))
    assert not torch.equal(tiny_cnn(seed=3)(x), tiny_cnn(seed=4)(x))
    for seed in range(3):
        relu6, relu = tiny_cnn("relu6", inplace=True, seed=seed, scale=0.5), tiny_cnn(seed=seed, scale=0.5)
        assert torch.equal(relu6(images(2, 12)), relu(images(2, 12)))


def test_one_conv_relu_net_is_its_formula():
    model, x = OneConvReluNet(num_classes=4, seed=2), images(2, 8)
    assert_frozen(model)
    assert torch.equal(model.conv.weight, 0.5 * torch.randn(8, 3, 3, 3, generator=torch.Generator().manual_seed(2)))
    h = F.adaptive_avg_pool2d(F.relu(F.conv2d(x, model.conv.weight, model.conv.bias, padding=1)), 4)
    torch.testing.assert_close(model(x), h.flatten(1) @ model.fc.weight.T + model.fc.bias)


def test_smooth_conv_net_is_its_formula():
    model, x = SmoothConvNet(size=12, num_classes=3, seed=1), images(2, 9)
    assert_frozen(model)
    assert model.input_size == 12 and model.num_classes == 3
    h = torch.tanh(F.conv2d(x - 0.5, model.conv1.weight, model.conv1.bias, padding=1))
    h = torch.tanh(F.conv2d(h, model.conv2.weight, model.conv2.bias, padding=1))
    torch.testing.assert_close(model(x), h.mean((2, 3)) @ model.fc.weight.T + model.fc.bias)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def test_images_are_seeded_and_in_range():
    x = images(2, 5, seed=4, lo=0.2, hi=0.6)
    assert x.shape == (2, 3, 5, 5) and float(x.min()) >= 0.2 and float(x.max()) <= 0.6
    assert torch.equal(x, images(2, 5, seed=4, lo=0.2, hi=0.6)) and not torch.equal(x, images(2, 5, seed=5))
    assert torch.equal(brightness_images([0.25], size=3), torch.full((1, 3, 3, 3), 0.25))


def test_assert_close_tolerances():
    expected = torch.tensor([10.0, 0.0])
    assert_close(torch.tensor([10.0009, 0.0009]), expected, "x", rtol=1e-4, atol=0)  # 9e-4 <= 1e-4 * 10
    with pytest.raises(AssertionError, match=r"x: largest difference 0\.0011 \(allowed 0\.001"):
        assert_close(torch.tensor([10.0, 0.0011]), expected, "x", rtol=1e-4, atol=0)
    assert_close(torch.tensor([10.0, 1e-6]), expected, "x", rtol=0, atol=1e-6)
    with pytest.raises(AssertionError, match=r"allowed 1e-06\)"):
        assert_close(torch.tensor([10.0, 2e-6]), expected, "x", rtol=0, atol=1e-6)
    with pytest.raises(AssertionError, match="expected shape"):
        assert_close(torch.zeros(3), expected, "x", rtol=0, atol=1)
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got list"):
        assert_close([10.0, 0.0], expected, "x", rtol=0, atol=1)
    assert_close(torch.zeros(0, 3), torch.zeros(0, 3), "empty", rtol=0, atol=0)  # nothing to differ
    with pytest.raises(AssertionError, match="expected shape"):
        assert_close(torch.zeros(0, 3), torch.zeros(0, 2), "empty", rtol=0, atol=0)


def test_assert_raises():
    def fails(exc):
        def fn():
            raise exc("bad n: got 0")

        return fn

    assert assert_raises(fails(ValueError), ValueError, match="got 0") == "bad n: got 0"
    with pytest.raises(AssertionError, match="should say 'got 1'"):
        assert_raises(fails(ValueError), ValueError, match="got 1")
    with pytest.raises(AssertionError, match="n=0: expected ValueError, got TypeError"):
        assert_raises(fails(TypeError), ValueError, what="n=0")
    with pytest.raises(AssertionError, match="expected ValueError, but nothing was raised"):
        assert_raises(lambda: None, ValueError)
    with pytest.raises(NotImplementedError):  # an unfinished exercise, though it is a RuntimeError
        assert_raises(fails(NotImplementedError), RuntimeError)


def test_count_hooks_counts_every_kind_on_every_submodule():
    model = tiny_cnn()
    assert count_hooks(model) == 0
    handles = [
        model.register_forward_pre_hook(lambda *a: None),
        model.conv1.register_forward_hook(lambda *a: None),
        model.fc.register_full_backward_pre_hook(lambda *a: None),
        model.features.register_full_backward_hook(lambda *a: None),
    ]
    assert count_hooks(model) == 4
    for h in handles:
        h.remove()
    assert count_hooks(model) == 0


def test_record_forwards_keeps_inputs_and_inference_mode():
    model = PooledLinear()
    forwards = record_forwards(model)
    x = images(3, 4)
    model(x)
    with torch.inference_mode():
        model(x[:1])
    assert [len(f.input) for f in forwards] == [3, 1] and [f.inference_mode for f in forwards] == [False, True]
    assert torch.equal(forwards[0].input, x) and forwards[0].input is not x
    assert count_hooks(model) == 1
