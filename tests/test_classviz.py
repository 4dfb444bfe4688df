"""Lab 3 (class visualization): public checks, exact answers, bad input, one real-model step."""

import json

import pytest
import torch

from labkit.check.toys import LinearClassifier, SmoothConvNet
from labkit_course.repo import REPO, SOLUTIONS

EXERCISE_MODULE = "classviz"


def reference_jitter(x: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """out[..., i, j] = x[..., (i - oy) % H, (j - ox) % W], by explicit indexing."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h) - oy) % h
    cols = (torch.arange(w) - ox) % w
    return x[..., rows[:, None], cols[None, :]]


def reference_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d along H then W (mode reflect, truncate 4)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter1d

    a = x.detach().double().numpy()
    a = gaussian_filter1d(a, sigma, axis=2, mode="reflect", truncate=4.0)
    a = gaussian_filter1d(a, sigma, axis=3, mode="reflect", truncate=4.0)
    return torch.from_numpy(np.ascontiguousarray(a)).to(x.dtype)


# --------------------------------------------------------------------------
# The public checks, run on the implementation under test
# --------------------------------------------------------------------------
def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))


# --------------------------------------------------------------------------
# Exact answers on random inputs
# --------------------------------------------------------------------------
@pytest.mark.exercise
@pytest.mark.parametrize("seed", range(3))
def test_jitter_equals_roll_and_index_formula(impl, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 9, 12, generator=g)
    ox, oy = torch.randint(-20, 21, (2,), generator=g).tolist()
    out = impl.jitter(x, ox, oy)
    assert torch.equal(out, torch.roll(x, shifts=(oy, ox), dims=(2, 3)))
    assert torch.equal(out, reference_jitter(x, ox, oy))


@pytest.mark.exercise
@pytest.mark.parametrize("sigma", [0.3, 0.5, 1.7, 6.0])
def test_blur_equals_scipy_even_with_radius_larger_than_image(impl, sigma):
    x = torch.rand(1, 3, 5, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(impl.blur(x, sigma), reference_blur(x, sigma), atol=1e-10, rtol=0)


@pytest.mark.exercise
def test_blur_is_separable_and_linear(impl):
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(1, 2, 10, 10, generator=g), torch.rand(1, 2, 10, 10, generator=g)
    torch.testing.assert_close(impl.blur(2 * a + b, 1.0), 2 * impl.blur(a, 1.0) + impl.blur(b, 1.0))
    # A centered impulse far from the borders spreads into the outer product of 1-D kernels.
    imp = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    imp[..., 10, 10] = 1
    out = impl.blur(imp, 1.0)[0, 0]
    k = torch.exp(-(torch.arange(-4, 5, dtype=torch.float64) ** 2) / 2)
    k = k / k.sum()
    torch.testing.assert_close(out[6:15, 6:15], torch.outer(k, k))
    assert float(out.sum()) == pytest.approx(1.0)


@pytest.mark.exercise
def test_step_l2_norm_is_lr_per_image(impl):
    model = SmoothConvNet()
    x = 0.4 + 0.2 * torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    out = impl.class_visualization_step(x, model, torch.tensor([1, 2, 3]), 1e-3, 0.05)
    norms = (out - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((3,), 0.05), atol=1e-5, rtol=0)


@pytest.mark.exercise
def test_step_l2_regularization_larger_weight_stays_closer_to_gray(impl):
    model = LinearClassifier(size=8, num_classes=4, scale=0.01)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    dist = [float((impl.class_visualization_step(x, model, 0, l2, 0.2) - 0.5).norm()) for l2 in (0.0, 0.01, 1.0)]
    assert dist[0] > dist[1] > dist[2]


@pytest.mark.exercise
def test_visualize_class_is_deterministic_with_default_arguments(impl):
    model = SmoothConvNet(size=24)
    a = impl.visualize_class(model, 3, steps=12)
    b = impl.visualize_class(model, 3, steps=12)
    assert a.shape == (1, 3, 24, 24)
    assert torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1


@pytest.mark.exercise
def test_visualize_class_from_photo_keeps_its_size_and_stays_close_with_strong_l2(impl):
    model = SmoothConvNet()
    photo = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(8))
    out = impl.visualize_class(model, 1, steps=3, init=photo, lr=0.01, blur_every=0)
    assert out.shape == photo.shape
    assert float((out - photo).abs().max()) < 0.05


@pytest.mark.exercise
def test_robust_batch_equals_separate_runs_shape_and_range(impl):
    model = SmoothConvNet()
    out = impl.visualize_class_robust(model, torch.tensor([1, 2, 3]), steps=2, seed=4)
    assert out.shape == (3, 3, 16, 16)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert not out.requires_grad


# --------------------------------------------------------------------------
# The real model: one step really raises the target logit
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_one_step_raises_target_logit_on_efficientnet(impl, model):
    from labkit.data import sample_image

    x = sample_image("coffee", size=160)
    target = 1  # goldfish: unrelated to the photo
    out = impl.class_visualization_step(x, model, target, 1e-3, 1.0)
    with torch.no_grad():
        before, after = model(x)[0, target], model(out)[0, target]
    assert after > before
    assert float((out - x).norm()) == pytest.approx(1.0, abs=0.05)  # clamping trims a little at most


# --------------------------------------------------------------------------
# Bad input: clear errors (each test also calls the function on valid input)
# --------------------------------------------------------------------------
@pytest.mark.exercise
def test_target_out_of_range(impl):
    model = SmoothConvNet(num_classes=10)
    x = torch.rand(1, 3, 16, 16)
    impl.class_visualization_step(x, model, 9, 0.0, 0.1)
    with pytest.raises(ValueError, match=r"\[0, 9\]; got 10"):
        impl.class_visualization_step(x, model, 10, 0.0, 0.1)
    impl.visualize_class(model, 9, steps=1)
    with pytest.raises(ValueError, match="got -1"):
        impl.visualize_class(model, -1, steps=1)
    with pytest.raises(ValueError, match="got 10"):
        impl.visualize_class_robust(model, [3, 10], steps=1)


@pytest.mark.exercise
def test_wrong_image_shape(impl):
    model = SmoothConvNet()
    impl.jitter(torch.rand(1, 3, 4, 4), 1, 1)
    with pytest.raises(ValueError, match=r"shape \(N,3,H,W\).*unsqueeze"):
        impl.class_visualization_step(torch.rand(3, 16, 16), model, 0, 0.0, 0.1)
    with pytest.raises(ValueError, match="3 channels"):
        impl.visualize_class(model, 0, steps=1, init=torch.rand(1, 16, 16, 3))
    with pytest.raises(ValueError, match="1 or 2 images"):
        impl.visualize_class(model, [0, 1], steps=1, init=torch.rand(3, 3, 16, 16))
    with pytest.raises(ValueError, match=r"values in \[0,1\]"):
        impl.visualize_class(model, 0, steps=1, init=255 * torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        impl.blur(torch.rand(16, 16), 1.0)


@pytest.mark.exercise
def test_steps_below_one(impl):
    model = SmoothConvNet()
    impl.visualize_class(model, 0, steps=1)
    impl.visualize_class_robust(model, 0, steps=1)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"steps must be >= 1; got {bad}"):
            impl.visualize_class(model, 0, steps=bad)
        with pytest.raises(ValueError, match=f"steps must be >= 1; got {bad}"):
            impl.visualize_class_robust(model, 0, steps=bad)
    with pytest.raises(TypeError, match="steps must be an int"):
        impl.visualize_class(model, 0, steps=2.5)


@pytest.mark.exercise
def test_other_bad_arguments(impl):
    model = SmoothConvNet()
    x = torch.rand(1, 3, 16, 16)
    impl.blur(x, 0.5)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        impl.blur(x, 0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        impl.class_visualization_step(x, model, 0, 0.0, -1.0)
    with pytest.raises(TypeError, match="ox must be an int"):
        impl.jitter(x, 1.5, 0)


# --------------------------------------------------------------------------
# Scaffolding (given to students, so not exercise tests)
# --------------------------------------------------------------------------
def test_pad_symmetric_matches_numpy(impl):
    import numpy as np

    x = torch.arange(4.0).view(1, 1, 1, 4)
    for r in (1, 3, 9):
        got = impl.pad_symmetric(x, r, dim=3)[0, 0, 0].numpy()
        np.testing.assert_array_equal(got, np.pad(np.arange(4.0), r, mode="symmetric"))


def test_fourier_image_is_differentiable_and_in_range(impl):
    p = impl.fourier_init(2, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    img = impl.fourier_to_image(p, 32)
    assert img.shape == (2, 3, 32, 32) and 0 < float(img.detach().min()) and float(img.detach().max()) < 1
    img[:, 0].sum().backward()
    assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_random_transform_identity_and_gradients(impl):
    x = torch.rand(1, 3, 20, 20, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    same = impl.random_transform(x, g, pad=5, max_jitter=0, scale_range=(1.0, 1.0), max_rotation=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    moved = impl.random_transform(x, g)
    assert moved.shape == x.shape
    moved.sum().backward()
    assert x.grad is not None


def test_notebook_structure():
    nb = json.loads((SOLUTIONS / "notebooks" / "03_class_visualization.ipynb").read_text())
    cells = nb["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "google.colab" in "".join(code[0]["source"])
    assert any("parameters" in c["metadata"].get("tags", []) for c in code)
    quick = nb["metadata"]["labkit"]["quick_parameters"]
    params = next("".join(c["source"]) for c in code if "parameters" in c["metadata"].get("tags", []))
    assert all(f"{k} =" in params for k in quick)
    assert (REPO / "benchmarks" / "classviz.py").exists()
