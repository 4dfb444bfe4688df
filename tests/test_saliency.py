"""Lab 1: saliency maps. Public checks, Captum equality on the course model, bad input."""

import functools

import pytest
import torch
from captum.attr import LayerGradCam, Occlusion

from labkit.check import saliency as checks
from labkit.check.toys import count_hooks, images, tiny_cnn

EXERCISE_MODULE = "saliency"
EXERCISES = [ex.name for ex in checks.EXERCISES]


def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))


@pytest.fixture(scope="module")
def small_photos(photos):
    """Two photos at 64px: the real model, at a fraction of the cost."""
    import torch.nn.functional as F

    images, labels = photos
    return F.interpolate(images[:2], size=64, mode="bilinear", antialias=True).clamp(0, 1), labels[:2]


@pytest.mark.exercise
def test_occlusion_equals_captum_on_the_course_model(impl, model, small_photos):
    x, t = small_photos
    ours = impl.occlusion(model, x, t, window=16, stride=8)
    theirs = (
        Occlusion(model)
        .attribute(
            x, target=t, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8), baselines=0.0, perturbations_per_eval=64
        )
        .mean(1)
    )
    assert (ours - theirs).abs().max() <= 1e-3 * theirs.abs().max()


@pytest.mark.exercise
def test_grad_cam_equals_captum_before_upsampling(impl, model, small_photos):
    x, t = small_photos
    layer = model.cam_layer
    theirs = LayerGradCam(model, layer).attribute(x, target=t, relu_attributions=True)  # (N,1,h,w)
    ours = impl.grad_cam(model, layer, x, t)
    assert ours.shape == (2, 64, 64)
    # Downsampling our upsampled map by area recovers the coarse map only approximately;
    # compare on the coarse grid by upsampling Captum's map the documented way instead.
    expected = torch.nn.functional.interpolate(theirs, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-6 * expected.abs().max().item())
    assert count_hooks(model) == 0


@pytest.mark.exercise
def test_guided_backprop_on_the_course_model_leaves_it_untouched(impl, model, small_photos):
    x, t = small_photos
    flags = [m.inplace for m in model.modules() if hasattr(m, "inplace")]
    with torch.no_grad():
        before = model(x)
    guided = impl.guided_backprop(model, x, t)
    assert guided.shape == x.shape and torch.isfinite(guided).all()
    plain = impl.input_gradients(model, x, t)
    assert not torch.allclose(guided, plain), (
        "guided backprop equals the plain gradient: the ReLU6 rule was not applied"
    )
    assert [m.inplace for m in model.modules() if hasattr(m, "inplace")] == flags
    assert count_hooks(model) == 0
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.exercise
def test_guided_backprop_removes_hooks_when_the_forward_pass_fails(impl):
    model = tiny_cnn(torch.nn.ReLU6, inplace=True)
    x = images(1, 12)
    assert impl.guided_backprop(model, x, 0).shape == x.shape

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ArithmeticError("the forward pass failed")

    model.pool = Broken()  # after the ReLUs, so their hooks are in place when it fails
    with pytest.raises(ArithmeticError):
        impl.guided_backprop(model, x, 0)
    assert count_hooks(model) == 0


@pytest.mark.slow
@pytest.mark.exercise
def test_integrated_gradients_completeness_on_the_cat_photo(impl, model, photos):
    """Completeness within 5% at 200 steps on the course model (all photos: benchmarks/saliency.py)."""
    images, _ = photos
    x = images[:1]
    with torch.no_grad():
        t = model(x).argmax(1)
        delta = (model(x)[0, t] - model(torch.zeros_like(x))[0, t]).item()
    attr = impl.integrated_gradients(model, x, t, steps=200, batch_size=50)
    assert abs(attr.sum().item() - delta) <= 0.05 * abs(delta)


@pytest.mark.exercise
@pytest.mark.parametrize("name", EXERCISES)
def test_bad_input_is_refused_with_a_clear_error(impl, name):
    model = tiny_cnn()
    fn = getattr(impl, name)
    if name == "occlusion":
        fn = functools.partial(fn, window=4, stride=2)
    args = (model, "features") if name == "grad_cam" else (model,)
    x = images(2, 12)
    assert fn(*args, x, 1).shape[0] == 2  # valid input works
    with pytest.raises(TypeError, match="float"):
        fn(*args, (x * 255).to(torch.uint8), 1)
    with pytest.raises(TypeError, match="tensor"):
        fn(*args, x[0].permute(1, 2, 0).numpy(), 1)
    if name != "input_gradients":  # it takes noisy images on purpose (SmoothGrad)
        with pytest.raises(ValueError, match=r"\[0,1\]"):
            fn(*args, x * 255, 1)
    with pytest.raises(ValueError, match="N,3,H,W"):
        fn(*args, x[0], 1)
    with pytest.raises(ValueError, match="class indices"):
        fn(*args, x, 6)
    with pytest.raises(ValueError, match="entries"):
        fn(*args, x, torch.tensor([0, 1, 2]))


@pytest.mark.exercise
def test_grad_cam_refuses_a_layer_that_is_not_in_the_model(impl):
    model = tiny_cnn()
    x = images(1, 12)
    assert impl.grad_cam(model, "features", x, 0).shape == (1, 12, 12)
    with pytest.raises(ValueError, match="no layer named"):
        impl.grad_cam(model, "nope", x, 0)
    with pytest.raises(ValueError, match="not a submodule"):
        impl.grad_cam(model, torch.nn.ReLU(), x, 0)


@pytest.mark.exercise
def test_parameters_are_validated(impl):
    model, x = tiny_cnn(), images(1, 12)
    assert impl.smoothgrad(model, x, 0, n_samples=2).shape == (1, 12, 12)
    with pytest.raises(ValueError, match="n_samples"):
        impl.smoothgrad(model, x, 0, n_samples=0)
    with pytest.raises(ValueError, match="noise_level"):
        impl.smoothgrad(model, x, 0, noise_level=-0.1)
    with pytest.raises(ValueError, match="steps"):
        impl.integrated_gradients(model, x, 0, steps=0)
    with pytest.raises(ValueError, match="window"):
        impl.occlusion(model, x, 0, window=20)
    with pytest.raises(ValueError, match="stride"):
        impl.occlusion(model, x, 0, window=4, stride=5)


def test_ig_quadrature_is_exact_for_linear_functions_and_dense_near_zero(impl):
    alphas, weights = impl.ig_quadrature(10)
    assert torch.all((alphas > 0) & (alphas < 1)) and torch.all(alphas.diff() > 0)
    assert weights.sum().item() == pytest.approx(1, rel=1e-6)
    assert (weights * alphas).sum().item() == pytest.approx(0.5, rel=1e-6)
    assert (weights * alphas**2).sum().item() == pytest.approx(1 / 3, rel=1e-2)
    assert (alphas < 0.25).sum() == 5, "half the nodes should sit in the first quarter of the path"


def test_check_reports_todo_on_the_stub(capsys):
    """The notebook's check says 'not implemented yet', not a traceback, on an unfinished exercise."""
    from labkit import saliency as student

    report = checks.gradient_saliency(student.gradient_saliency)
    out = capsys.readouterr().out
    assert not report.passed and not report.implemented
    with pytest.raises(
        NotImplementedError,
        match=r"gradient_saliency\(\) is not implemented yet: fill in its body in labkit/saliency.py",
    ):
        assert report
    assert "not implemented yet" in out and "Traceback" not in out
