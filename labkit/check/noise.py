"""Public checks for Lab 4 (noise probing): ``check.noise.<exercise>()``.

Every check uses tiny deterministic models (:class:`TinyNet`) and small
images, so each one runs in well under a second. The same functions run in
pytest (tests/test_noise.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from labkit.check.runner import Exercise, check

KINDS = ("gaussian", "uniform", "seed000")


class TinyNet(nn.Module):
    """A tiny deterministic classifier: 2x2 average-pooled colors -> a fixed linear layer.

    Follows the course convention ([0,1] images in, logits out, eval mode, frozen).
    """

    def __init__(self, num_classes: int = 10, seed: int = 0, scale: float = 4.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(12, num_classes)
        with torch.no_grad():
            self.linear.weight.copy_(scale * torch.randn(num_classes, 12, generator=g))
            self.linear.bias.copy_(torch.randn(num_classes, generator=g))
        self.num_classes = num_classes
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.linear(F.adaptive_avg_pool2d(x - 0.5, 2).flatten(1))


class _Recorder(TinyNet):
    """A TinyNet that remembers its batch sizes and whether inference mode was on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def forward(self, x):
        self.calls.append((len(x), torch.is_inference_mode_enabled()))
        return super().forward(x)


def _raises(exc_type, fn, *args, **kwargs) -> str:
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return str(exc)
    except NotImplementedError:
        raise
    except Exception as exc:  # noqa: BLE001 - report the wrong exception type
        raise AssertionError(f"expected {exc_type.__name__}, got {type(exc).__name__}: {exc}") from None
    raise AssertionError(f"expected {exc_type.__name__}, but nothing was raised")


def _probe_frame() -> pd.DataFrame:
    """A hand-made probe() result: model b has a tie between classes 7 and 3."""
    rows = [("a", 5, 0.9), ("a", 5, 0.7), ("a", 2, 0.2), ("a", 5, 0.4), ("a", 8, 0.1),
            ("b", 7, 0.3), ("b", 3, 0.6), ("b", 7, 0.5), ("b", 3, 0.35), ("b", 1, 0.05)]
    return pd.DataFrame({
        "model": [r[0] for r in rows],
        "image": [0, 1, 2, 3, 4] * 2,
        "class_index": [r[1] for r in rows],
        "class_name": [f"c{r[1]}" for r in rows],
        "confidence": [r[2] for r in rows],
    })


# --------------------------------------------------------------------------- noise_images
@check("returns float32 (n,3,size,size) in [0,1] for every kind", hint="see the docstring for each kind")
def noise_shape_range(fn):
    for kind in KINDS:
        x = fn(3, size=8, kind=kind, seed=1)
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32, f"{kind}: expected a float32 tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}"
        assert tuple(x.shape) == (3, 3, 8, 8), f"{kind}: expected shape (3,3,8,8), got {tuple(x.shape)}"
        assert float(x.min()) >= 0 and float(x.max()) <= 1, f"{kind}: values must be in [0,1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]"


@check("same seed, same images; another seed, other images")
def noise_reproducible(fn):
    for kind in KINDS:
        a, b, c = fn(2, 8, kind, seed=5), fn(2, 8, kind, seed=5), fn(2, 8, kind, seed=6)
        assert torch.equal(a, b), f"{kind}: two calls with seed=5 differ"
        assert not torch.equal(a, c), f"{kind}: seed=5 and seed=6 give the same images"


@check('"gaussian" and "uniform" draw from torch.Generator().manual_seed(seed)',
       hint="gaussian: (0.5 + 0.25 * torch.randn(..., generator=g)).clamp(0, 1); uniform: torch.rand(..., generator=g)")
def noise_torch_kinds(fn):
    g = torch.Generator().manual_seed(3)
    expected = (0.5 + 0.25 * torch.randn(2, 3, 6, 6, generator=g)).clamp(0, 1)
    assert torch.allclose(fn(2, 6, "gaussian", 3), expected, atol=1e-6), "gaussian differs from 0.5 + 0.25*randn, clipped"
    g = torch.Generator().manual_seed(3)
    assert torch.allclose(fn(2, 6, "uniform", 3), torch.rand(2, 3, 6, 6, generator=g), atol=1e-6), "uniform differs from torch.rand"


@check('"seed000" reproduces the seed: standard_normal * 255 cast to uint8 (it wraps!)',
       hint="np.random.default_rng(seed).standard_normal((n, size, size, 3)) * 255; truncate, wrap mod 256; channels first; / 255")
def noise_seed000(fn):
    got = fn(2, 6, "seed000", 4)
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 3, 6, 6), "expected a tensor of shape (2,3,6,6)"
    levels = got.double().numpy() * 255
    assert np.abs(levels - levels.round()).max() < 1e-3, "seed000 values must be uint8 levels divided by 255"
    assert levels.min() >= 0 and levels.max() <= 255, "seed000 values must be in [0,1]"
    # each level is congruent, modulo 256, to trunc(255 z) for the seed's normal draw z (channels last)
    z = np.random.default_rng(4).standard_normal((2, 6, 6, 3)).transpose(0, 3, 1, 2)
    off = np.mod(levels.round() - np.trunc(255 * z), 256)
    assert np.all(off == 0), (f"{int((off != 0).sum())} of {off.size} values differ from the seed's generator "
                              "(trunc(255 z) wrapped modulo 256, channels first)")


@check("an unknown kind or n < 1 raises ValueError")
def noise_bad_input(fn):
    assert fn(1, 4, "uniform").shape == (1, 3, 4, 4)
    _raises(ValueError, fn, 2, 8, "pink")
    _raises(ValueError, fn, 0, 8, "gaussian")


noise_images = Exercise("noise", "noise_images",
                        [noise_shape_range, noise_reproducible, noise_torch_kinds, noise_seed000, noise_bad_input])


# --------------------------------------------------------------------------- probe
def _probe_inputs():
    g = torch.Generator().manual_seed(0)
    return {"tiny0": TinyNet(seed=0), "tiny1": TinyNet(seed=1)}, torch.rand(5, 3, 8, 8, generator=g)


@check("one row per (model, image) with the columns model, image, class_index, class_name, confidence")
def probe_layout(fn):
    models, x = _probe_inputs()
    df = fn(models, x, batch_size=2)
    assert isinstance(df, pd.DataFrame), f"expected a DataFrame, got {type(df).__name__}"
    assert list(df.columns) == ["model", "image", "class_index", "class_name", "confidence"], f"columns are {list(df.columns)}"
    assert len(df) == 10, f"2 models x 5 images should give 10 rows, got {len(df)}"
    assert list(df["model"]) == ["tiny0"] * 5 + ["tiny1"] * 5, "rows must be grouped by model, in the dict's order"
    assert list(df["image"]) == [0, 1, 2, 3, 4] * 2, "image must be the index of the image in the batch"


@check("confidence is the top-1 softmax probability; class_index its class; class_name its ImageNet name")
def probe_values(fn):
    from labkit.models import imagenet_classes

    models, x = _probe_inputs()
    df = fn(models, x, batch_size=2)
    for name, model in models.items():
        rows = df[df["model"] == name]
        probs = model(x).softmax(-1)
        conf, idx = probs.max(-1)
        assert np.allclose(rows["confidence"].to_numpy(dtype=float), conf.numpy(), atol=1e-5), f"{name}: confidences differ from max softmax"
        assert rows["class_index"].tolist() == idx.tolist(), f"{name}: class_index differs from argmax"
        assert rows["class_name"].tolist() == [imagenet_classes()[i] for i in idx.tolist()], f"{name}: class_name is not the ImageNet name"


@check("runs in batches of batch_size under torch.inference_mode()", hint="with torch.inference_mode(): ... images[i:i+batch_size]")
def probe_batches(fn):
    model = _Recorder(seed=2)
    x = torch.rand(7, 3, 8, 8)
    a = fn({"m": model}, x, batch_size=3)
    assert [n for n, _ in model.calls] == [3, 3, 1], f"expected batches of 3, 3, 1; the model saw {[n for n, _ in model.calls]}"
    assert all(mode for _, mode in model.calls), "the forward passes did not run under torch.inference_mode()"
    b = fn({"m": model}, x, batch_size=64)
    assert np.allclose(a["confidence"], b["confidence"], atol=1e-6), "results depend on batch_size"


@check("an empty models dict or images that are not (N,3,H,W) in [0,1] raise a clear error")
def probe_bad_input(fn):
    models, x = _probe_inputs()
    assert len(fn(models, x)) == 10
    _raises(ValueError, fn, {}, x)
    _raises(ValueError, fn, models, x.permute(0, 2, 3, 1))
    _raises(ValueError, fn, models, x * 255)


probe = Exercise("noise", "probe", [probe_layout, probe_values, probe_batches, probe_bad_input])


# --------------------------------------------------------------------------- summarize
@check("rows count, mean, std, min, 25%, 50%, 75%, max; one column per model (in order)")
def summarize_layout(fn):
    table = fn(_probe_frame())
    assert isinstance(table, pd.DataFrame), f"expected a DataFrame, got {type(table).__name__}"
    assert list(table.index) == ["count", "mean", "std", "min", "25%", "50%", "75%", "max"], f"rows are {list(table.index)}"
    assert list(table.columns) == ["a", "b"], f"columns are {list(table.columns)}"


@check("the values are pandas' describe() of each model's confidence", hint="df.groupby('model')['confidence'].describe()")
def summarize_values(fn):
    df = _probe_frame()
    table = fn(df)
    for name in ("a", "b"):
        expected = df.loc[df["model"] == name, "confidence"].describe()
        assert np.allclose(table[name].to_numpy(dtype=float), expected.to_numpy()), f"column {name!r} differs from describe()"


summarize = Exercise("noise", "summarize", [summarize_layout, summarize_values])


# --------------------------------------------------------------------------- class_counts
@check("columns model, class_index, class_name, count; most frequent first, ties by class index")
def counts_values(fn):
    table = fn(_probe_frame())
    assert isinstance(table, pd.DataFrame), f"expected a DataFrame, got {type(table).__name__}"
    assert list(table.columns) == ["model", "class_index", "class_name", "count"], f"columns are {list(table.columns)}"
    got = list(zip(table["model"], table["class_index"], table["count"]))
    expected = [("a", 5, 3), ("a", 2, 1), ("a", 8, 1), ("b", 3, 2), ("b", 7, 2), ("b", 1, 1)]
    assert got == expected, f"expected {expected}, got {got}"
    assert list(table.index) == list(range(len(table))), "reset the index to 0, 1, 2, ..."


@check("keeps at most `top` classes per model")
def counts_top(fn):
    table = fn(_probe_frame(), top=1)
    got = list(zip(table["model"], table["class_index"], table["count"]))
    assert got == [("a", 5, 3), ("b", 3, 2)], f"with top=1 expected [('a', 5, 3), ('b', 3, 2)], got {got}"


class_counts = Exercise("noise", "class_counts", [counts_values, counts_top])


# --------------------------------------------------------------------------- maximize_confidence
@check("one step is one Adam step on -log_softmax[target]: x - lr * g / (|g| + 1e-8), clamped",
       hint="Adam on x, loss = -log_softmax(...)[target] summed, clamp after each step")
def maximize_first_step(fn):
    model = TinyNet(seed=3, scale=1.0)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 4, 9])
    got_x, got_c = fn(model, x, target=target, steps=1, lr=0.05)
    assert tuple(got_x.shape) == tuple(x.shape), f"images: expected shape {tuple(x.shape)}, got {tuple(got_x.shape)}"
    assert tuple(got_c.shape) == (3,), f"confidences: expected shape (3,), got {tuple(got_c.shape)}"
    # Adam's first step: the bias-corrected moments are g and g**2, so it moves by lr * g / (|g| + eps)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(-F.log_softmax(model(xg), -1)[torch.arange(3), target].sum(), xg)
    expected = (x - 0.05 * g / (g.abs() + 1e-8)).clamp(0, 1)
    assert torch.allclose(got_x, expected, atol=1e-5), f"images differ from one Adam step, max |diff| {float((got_x - expected).abs().max()):.3g}"


@check("the confidences are the target's softmax probability at the returned images; more steps, more confidence")
def maximize_confidences(fn):
    model = TinyNet(seed=6, scale=1.0)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([0, 2, 7])
    confidences = []
    for steps in (2, 8):
        got_x, got_c = fn(model, x, target=target, steps=steps, lr=0.05)
        expected = model(got_x).softmax(-1)[torch.arange(3), target]
        assert torch.allclose(got_c, expected, atol=1e-5), f"confidences {got_c.tolist()}; the target's softmax at the returned images is {expected.tolist()}"
        confidences.append(got_c)
    assert bool((confidences[1] > confidences[0]).all()), f"8 steps gave less confidence than 2: {confidences[0].tolist()} -> {confidences[1].tolist()}"


@check("target=None keeps the current top class; confidence rises; images stay in [0,1]; input untouched")
def maximize_default_target(fn):
    model = TinyNet(seed=4, scale=1.0)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    before = x.clone()
    top = model(x).argmax(-1)
    start = model(x).softmax(-1).max(-1).values
    got_x, got_c = fn(model, x, steps=20, lr=0.05)
    assert torch.equal(x, before), "the input images were modified in place: work on a clone"
    assert not got_x.requires_grad and not got_c.requires_grad, "return detached tensors"
    assert float(got_x.min()) >= 0 and float(got_x.max()) <= 1, "images left [0,1]: clamp after each step"
    assert torch.equal(model(got_x).argmax(-1), top), "with target=None, keep the model's current top class"
    assert bool((got_c > start).all()), f"confidence did not rise: {start.tolist()} -> {got_c.tolist()}"


@check("a target of the wrong length raises ValueError")
def maximize_bad_input(fn):
    model = TinyNet(seed=5)
    x = torch.rand(2, 3, 8, 8)
    assert fn(model, x, target=1, steps=1)[0].shape == x.shape
    _raises(ValueError, fn, model, x, target=torch.tensor([1, 2, 3]), steps=1)


maximize_confidence = Exercise("noise", "maximize_confidence", [maximize_first_step, maximize_confidences, maximize_default_target,
                                                                      maximize_bad_input])


# --------------------------------------------------------------------------- confidence_auroc
@check("equals sklearn.metrics.roc_auc_score (photos are the positives), ties included")
def auroc_matches_sklearn(fn):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    real, noise = rng.random(30).round(1), rng.random(40).round(1) * 0.8  # many ties
    got = fn(real, noise)
    assert isinstance(got, float), f"return a float, got {type(got).__name__}"
    expected = roc_auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[real, noise])
    assert abs(got - expected) < 1e-12, f"expected {expected:.6f}, got {got:.6f}"


@check("perfect separation gives 1.0, reversed gives 0.0, identical gives 0.5; tensors work too")
def auroc_extremes(fn):
    assert fn([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert fn(torch.tensor([0.1]), torch.tensor([0.5, 0.6])) == 0.0
    assert fn([0.5, 0.5], [0.5]) == 0.5


@check("empty or non-1-D confidences raise ValueError")
def auroc_bad_input(fn):
    assert fn([0.9], [0.1]) == 1.0
    _raises(ValueError, fn, [], [0.1])
    _raises(ValueError, fn, np.ones((2, 2)), [0.1])


confidence_auroc = Exercise("noise", "confidence_auroc", [auroc_matches_sklearn, auroc_extremes, auroc_bad_input])


#: Every exercise of the lab, in notebook order.
EXERCISES = [noise_images, probe, summarize, class_counts, maximize_confidence, confidence_auroc]
