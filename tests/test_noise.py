"""Lab 4 (noise probing): the public checks, exact comparisons and bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import labkit.check.noise as checks
from labkit.check.toys import PooledLinear

EXERCISE_MODULE = "noise"


def seed000_reference(n: int, size: int, seed: int) -> torch.Tensor:
    """The seed article's generator, written independently (float -> uint8 wraps like numpy on x86)."""
    z = np.random.default_rng(seed).standard_normal((n, size, size, 3)) * 255
    as_uint8 = (np.trunc(z).astype(np.int64) % 256).astype(np.uint8)
    return torch.from_numpy(as_uint8).permute(0, 3, 1, 2).float() / 255


def adam_ascent(model, images, target, steps, lr):
    """The docstring's algorithm, written independently (Adam's update by hand)."""
    x = images.detach().clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        xg = x.clone().requires_grad_(True)
        loss = -F.log_softmax(model(xg), -1)[torch.arange(len(x)), target].sum()
        (g,) = torch.autograd.grad(loss, xg)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
        x = (x - step).clamp(0, 1)
    with torch.no_grad():
        conf = model(x).softmax(-1)[torch.arange(len(x)), target]
    return x, conf


def test_public_check(impl, public_check):
    name, check = public_check
    check(getattr(impl, name))


# --------------------------------------------------------------------------- noise_images
@pytest.mark.exercise
def test_seed000_equals_numpy_astype_on_this_machine(impl):
    """The seed's exact code path (astype wraps on x86; elsewhere we trust the written rule)."""
    import platform

    x = impl.noise_images(2, 16, "seed000", seed=7)
    expected = seed000_reference(2, 16, 7)
    assert torch.allclose(x, expected, atol=1e-6)
    if platform.machine() in ("x86_64", "AMD64"):
        z = np.random.default_rng(7).standard_normal((2, 16, 16, 3)) * 255
        with np.errstate(invalid="ignore"):
            raw = z.astype(np.uint8)
        assert torch.allclose(x, torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255, atol=1e-6)


@pytest.mark.exercise
def test_seed000_is_nearly_uniform_not_gaussian(impl):
    """Wrapping N(0, 255^2) modulo 256 flattens it: mean ~0.5, std ~1/sqrt(12), flat histogram."""
    x = impl.noise_images(4, 64, "seed000", seed=0)
    assert abs(float(x.mean()) - 0.5) < 0.01
    assert abs(float(x.std()) - 12**-0.5) < 0.01
    hist = torch.histc(x, bins=8, min=0, max=1) / x.numel()
    assert float((hist - 1 / 8).abs().max()) < 0.01


@pytest.mark.exercise
def test_gaussian_statistics(impl):
    x = impl.noise_images(4, 64, "gaussian", seed=0)
    assert abs(float(x.mean()) - 0.5) < 0.01
    clipped = float(((x == 0) | (x == 1)).float().mean())
    assert abs(clipped - 0.0455) < 0.01  # P(|Z| > 2)


@pytest.mark.exercise
@pytest.mark.parametrize(
    "bad,err",
    [
        (dict(n=0), ValueError),
        (dict(n=-3), ValueError),
        (dict(kind="pink"), ValueError),
        (dict(kind=None), TypeError),
        (dict(n=2.5), TypeError),
        (dict(size=0), ValueError),
    ],
)
def test_noise_bad_input(impl, bad, err):
    assert impl.noise_images(1, 4, "gaussian").shape == (1, 3, 4, 4)
    args = dict(n=2, size=8, kind="gaussian", seed=0) | bad
    with pytest.raises(err) as info:
        impl.noise_images(**args)
    assert str(next(iter(bad.values()))) in str(info.value) or err is TypeError


# --------------------------------------------------------------------------- probe
@pytest.mark.exercise
def test_probe_matches_predict_on_efficientnet(impl, model):
    from labkit.models import predict

    x = impl.noise_images(3, 64, "uniform", seed=1)
    df = impl.probe({"lite0": model}, x, batch_size=2)
    conf, idx = predict(model, x)
    assert df["class_index"].tolist() == idx[:, 0].tolist()
    assert np.allclose(df["confidence"], conf[:, 0].numpy(), atol=1e-5)


@pytest.mark.exercise
def test_probe_bad_input(impl):
    models = {"t": PooledLinear()}
    x = torch.rand(2, 3, 8, 8)
    assert len(impl.probe(models, x)) == 2
    with pytest.raises(ValueError, match="empty"):
        impl.probe({}, x)
    with pytest.raises(TypeError, match="dict"):
        impl.probe(PooledLinear(), x)
    with pytest.raises(ValueError, match="channels"):
        impl.probe(models, x.permute(0, 2, 3, 1))
    with pytest.raises(TypeError):
        impl.probe(models, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        impl.probe(models, x, batch_size=0)


# --------------------------------------------------------------------------- summarize / class_counts
@pytest.mark.exercise
def test_summarize_and_counts_on_a_real_probe(impl):
    x = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    models = {"z": PooledLinear(seed=1), "y": PooledLinear(seed=2)}
    df = impl.probe(models, x)
    table = impl.summarize(df)
    assert list(table.columns) == ["z", "y"]
    pd.testing.assert_series_equal(table["y"], df[df.model == "y"].confidence.describe(), check_names=False)
    counts = impl.class_counts(df, top=3)
    for name in models:
        expected = df[df.model == name].class_index.value_counts()
        got = counts[counts.model == name]
        assert got["count"].tolist() == expected.sort_values(ascending=False).head(3).tolist()
        assert got["count"].sum() <= 40


@pytest.mark.exercise
def test_summarize_and_counts_bad_input(impl):
    df = checks._probe_frame()
    assert impl.summarize(df).shape == (8, 2)
    assert len(impl.class_counts(df)) == 6
    with pytest.raises(ValueError, match="confidence"):
        impl.summarize(df.drop(columns="confidence"))
    with pytest.raises(ValueError, match="empty"):
        impl.class_counts(df.iloc[:0])
    with pytest.raises(ValueError, match="top"):
        impl.class_counts(df, top=0)


# --------------------------------------------------------------------------- maximize_confidence
@pytest.mark.exercise
def test_maximize_matches_independent_adam_longer(impl):
    model = PooledLinear(num_classes=20, seed=7, scale=2.0)
    x = torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 5, 10, 19])
    got_x, got_c = impl.maximize_confidence(model, x, target=target, steps=15, lr=0.02)
    exp_x, exp_c = adam_ascent(model, x, target, 15, 0.02)
    assert torch.allclose(got_x, exp_x, atol=1e-5)
    assert torch.allclose(got_c, exp_c, atol=1e-5)


@pytest.mark.exercise
def test_maximize_is_per_image(impl):
    """Each image is optimized on its own: a batch gives the same result as one at a time."""
    model = PooledLinear(seed=8, scale=1.0)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    batch_x, batch_c = impl.maximize_confidence(model, x, target=2, steps=6)
    one_x, one_c = impl.maximize_confidence(model, x[1:2], target=2, steps=6)
    assert torch.allclose(batch_x[1:2], one_x, atol=1e-6)
    assert torch.allclose(batch_c[1:2], one_c, atol=1e-6)


@pytest.mark.exercise
def test_maximize_bad_input(impl):
    model = PooledLinear()
    x = torch.rand(2, 3, 8, 8)
    assert impl.maximize_confidence(model, x, steps=1)[1].shape == (2,)
    with pytest.raises(ValueError, match="3 entries but there are 2"):
        impl.maximize_confidence(model, x, target=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        impl.maximize_confidence(model, x, target=10)
    with pytest.raises(ValueError, match="steps"):
        impl.maximize_confidence(model, x, steps=0)
    with pytest.raises(ValueError, match="lr"):
        impl.maximize_confidence(model, x, lr=-1.0)
    with pytest.raises(TypeError, match="nn.Module"):
        impl.maximize_confidence(lambda t: t, x)


# --------------------------------------------------------------------------- confidence_auroc
@pytest.mark.exercise
@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_sklearn(impl, seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n_real, n_noise = rng.integers(1, 50, size=2)
    real = rng.beta(2, 1, n_real).round(rng.integers(1, 4))
    noise = rng.beta(1, 2, n_noise).round(rng.integers(1, 4))
    expected = roc_auc_score(np.r_[np.ones(n_real), np.zeros(n_noise)], np.r_[real, noise])
    assert impl.confidence_auroc(real, noise) == pytest.approx(expected, abs=1e-12)
    assert impl.confidence_auroc(pd.Series(real), torch.tensor(noise)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.exercise
def test_auroc_bad_input(impl):
    assert impl.confidence_auroc([0.2, 0.9], [0.1]) == 1.0
    with pytest.raises(ValueError, match="noise_confidences is empty"):
        impl.confidence_auroc([0.5], [])
    with pytest.raises(ValueError, match="1-D"):
        impl.confidence_auroc(np.ones((2, 3)), [0.1])
    with pytest.raises(ValueError, match="NaN"):
        impl.confidence_auroc([float("nan")], [0.1])
    with pytest.raises(TypeError):
        impl.confidence_auroc("0.5", [0.1])
