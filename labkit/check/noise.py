"""Public checks for Lab 4 (noise probing): ``check.noise.<exercise>()``.

Every check uses tiny deterministic models (:class:`labkit.check.toys.PooledLinear`)
and small images, so each one runs in well under a second. The same functions run in
pytest (tests/test_noise.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from labkit.check.runner import Exercise, check
from labkit.check.toys import PooledLinear, assert_close, assert_raises, images, record_forwards

KINDS = ("gaussian", "uniform", "seed000")


def _probe_frame() -> pd.DataFrame:
    """A hand-made probe() result: model b has a tie between classes 7 and 3."""
    rows = [
        ("a", 5, 0.9),
        ("a", 5, 0.7),
        ("a", 2, 0.2),
        ("a", 5, 0.4),
        ("a", 8, 0.1),
        ("b", 7, 0.3),
        ("b", 3, 0.6),
        ("b", 7, 0.5),
        ("b", 3, 0.35),
        ("b", 1, 0.05),
    ]
    return pd.DataFrame(
        {
            "model": [r[0] for r in rows],
            "image": [0, 1, 2, 3, 4] * 2,
            "class_index": [r[1] for r in rows],
            "class_name": [f"c{r[1]}" for r in rows],
            "confidence": [r[2] for r in rows],
        }
    )


# --------------------------------------------------------------------------- noise_images
@check("returns float32 (n,3,size,size) in [0,1] for every kind", hint="see the docstring for each kind")
def noise_images_shape_range(fn):
    for kind in KINDS:
        x = fn(3, size=8, kind=kind, seed=1)
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32, (
            f"{kind}: expected a float32 tensor, got {type(x).__name__} {getattr(x, 'dtype', '')}"
        )
        assert tuple(x.shape) == (3, 3, 8, 8), f"{kind}: expected shape (3,3,8,8), got {tuple(x.shape)}"
        assert float(x.min()) >= 0 and float(x.max()) <= 1, (
            f"{kind}: values must be in [0,1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]"
        )


@check("same seed, same images; another seed, other images")
def noise_images_reproducible(fn):
    for kind in KINDS:
        a, b, c = fn(2, 8, kind, seed=5), fn(2, 8, kind, seed=5), fn(2, 8, kind, seed=6)
        assert torch.equal(a, b), f"{kind}: two calls with seed=5 differ"
        assert not torch.equal(a, c), f"{kind}: seed=5 and seed=6 give the same images"


@check(
    '"gaussian" and "uniform" draw from torch.Generator().manual_seed(seed)',
    hint="gaussian: (0.5 + 0.25 * torch.randn(..., generator=g)).clamp(0, 1); uniform: torch.rand(..., generator=g)",
)
def noise_images_torch_kinds(fn):
    g = torch.Generator().manual_seed(3)
    expected = (0.5 + 0.25 * torch.randn(2, 3, 6, 6, generator=g)).clamp(0, 1)
    assert_close(fn(2, 6, "gaussian", 3), expected, "gaussian vs 0.5 + 0.25*randn, clipped", rtol=1e-5, atol=1e-6)
    assert_close(fn(2, 6, "uniform", 3), images(2, 6, seed=3), "uniform vs torch.rand", rtol=1e-5, atol=1e-6)


@check(
    '"seed000" reproduces the seed: standard_normal * 255 cast to uint8 (it wraps!)',
    hint="np.random.default_rng(seed).standard_normal((n, size, size, 3)) * 255; "
    "truncate, wrap mod 256; channels first; / 255",
)
def noise_images_seed000(fn):
    got = fn(2, 6, "seed000", 4)
    assert isinstance(got, torch.Tensor) and tuple(got.shape) == (2, 3, 6, 6), "expected a tensor of shape (2,3,6,6)"
    levels = got.double().numpy() * 255
    assert np.abs(levels - levels.round()).max() < 1e-3, "seed000 values must be uint8 levels divided by 255"
    assert levels.min() >= 0 and levels.max() <= 255, "seed000 values must be in [0,1]"
    # each level is congruent, modulo 256, to trunc(255 z) for the seed's normal draw z (channels last)
    z = np.random.default_rng(4).standard_normal((2, 6, 6, 3)).transpose(0, 3, 1, 2)
    off = np.mod(levels.round() - np.trunc(255 * z), 256)
    assert np.all(off == 0), (
        f"{int((off != 0).sum())} of {off.size} values differ from the seed's generator "
        "(trunc(255 z) wrapped modulo 256, channels first)"
    )


@check("an unknown kind or n < 1 raises ValueError")
def noise_images_bad_input(fn):
    assert fn(1, 4, "uniform").shape == (1, 3, 4, 4)
    assert_raises(lambda: fn(2, 8, "pink"), ValueError, what='kind="pink"')
    assert_raises(lambda: fn(0, 8, "gaussian"), ValueError, what="n=0")


noise_images = Exercise(
    "noise",
    "noise_images",
    [
        noise_images_shape_range,
        noise_images_reproducible,
        noise_images_torch_kinds,
        noise_images_seed000,
        noise_images_bad_input,
    ],
)


# --------------------------------------------------------------------------- probe
def _probe_inputs():
    return {"tiny0": PooledLinear(seed=0), "tiny1": PooledLinear(seed=1)}, images(5, 8, seed=0)


@check("one row per (model, image) with the columns model, image, class_index, class_name, confidence")
def probe_layout(fn):
    models, x = _probe_inputs()
    df = fn(models, x, batch_size=2)
    assert isinstance(df, pd.DataFrame), f"expected a DataFrame, got {type(df).__name__}"
    assert list(df.columns) == ["model", "image", "class_index", "class_name", "confidence"], (
        f"columns are {list(df.columns)}"
    )
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
        assert np.allclose(rows["confidence"].to_numpy(dtype=float), conf.numpy(), atol=1e-5), (
            f"{name}: confidences differ from max softmax"
        )
        assert rows["class_index"].tolist() == idx.tolist(), f"{name}: class_index differs from argmax"
        assert rows["class_name"].tolist() == [imagenet_classes()[i] for i in idx.tolist()], (
            f"{name}: class_name is not the ImageNet name"
        )


@check(
    "runs in batches of batch_size under torch.inference_mode()",
    hint="with torch.inference_mode(): ... images[i:i+batch_size]",
)
def probe_batches(fn):
    model = PooledLinear(seed=2)
    forwards = record_forwards(model)
    x = torch.rand(7, 3, 8, 8)
    a = fn({"m": model}, x, batch_size=3)
    sizes = [len(f.input) for f in forwards]
    assert sizes == [3, 3, 1], f"expected batches of 3, 3, 1; the model saw {sizes}"
    assert all(f.inference_mode for f in forwards), "the forward passes did not run under torch.inference_mode()"
    b = fn({"m": model}, x, batch_size=64)
    assert np.allclose(a["confidence"], b["confidence"], atol=1e-6), "results depend on batch_size"


@check("an empty models dict or images that are not (N,3,H,W) in [0,1] raise a clear error")
def probe_bad_input(fn):
    models, x = _probe_inputs()
    assert len(fn(models, x)) == 10
    assert_raises(lambda: fn({}, x), ValueError, what="no models")
    assert_raises(lambda: fn(models, x.permute(0, 2, 3, 1)), ValueError, what="channels-last images")
    assert_raises(lambda: fn(models, x * 255), ValueError, what="images in [0,255]")


probe = Exercise("noise", "probe", [probe_layout, probe_values, probe_batches, probe_bad_input])


# --------------------------------------------------------------------------- summarize
@check("rows count, mean, std, min, 25%, 50%, 75%, max; one column per model (in order)")
def summarize_layout(fn):
    table = fn(_probe_frame())
    assert isinstance(table, pd.DataFrame), f"expected a DataFrame, got {type(table).__name__}"
    assert list(table.index) == ["count", "mean", "std", "min", "25%", "50%", "75%", "max"], (
        f"rows are {list(table.index)}"
    )
    assert list(table.columns) == ["a", "b"], f"columns are {list(table.columns)}"


@check(
    "the values are pandas' describe() of each model's confidence", hint="df.groupby('model')['confidence'].describe()"
)
def summarize_values(fn):
    df = _probe_frame()
    table = fn(df)
    for name in ("a", "b"):
        expected = df.loc[df["model"] == name, "confidence"].describe()
        assert np.allclose(table[name].to_numpy(dtype=float), expected.to_numpy()), (
            f"column {name!r} differs from describe()"
        )


summarize = Exercise("noise", "summarize", [summarize_layout, summarize_values])


# --------------------------------------------------------------------------- class_counts
@check("columns model, class_index, class_name, count; most frequent first, ties by class index")
def class_counts_values(fn):
    table = fn(_probe_frame())
    assert isinstance(table, pd.DataFrame), f"expected a DataFrame, got {type(table).__name__}"
    assert list(table.columns) == ["model", "class_index", "class_name", "count"], f"columns are {list(table.columns)}"
    got = list(zip(table["model"], table["class_index"], table["count"]))
    expected = [("a", 5, 3), ("a", 2, 1), ("a", 8, 1), ("b", 3, 2), ("b", 7, 2), ("b", 1, 1)]
    assert got == expected, f"expected {expected}, got {got}"
    assert list(table.index) == list(range(len(table))), "reset the index to 0, 1, 2, ..."


@check("keeps at most `top` classes per model")
def class_counts_top(fn):
    table = fn(_probe_frame(), top=1)
    got = list(zip(table["model"], table["class_index"], table["count"]))
    assert got == [("a", 5, 3), ("b", 3, 2)], f"with top=1 expected [('a', 5, 3), ('b', 3, 2)], got {got}"


class_counts = Exercise("noise", "class_counts", [class_counts_values, class_counts_top])


# --------------------------------------------------------------------------- maximize_confidence
@check(
    "one step is one Adam step on -log_softmax[target]: x - lr * g / (|g| + 1e-8), clamped",
    hint="Adam on x, loss = -log_softmax(...)[target] summed, clamp after each step",
)
def maximize_confidence_first_step(fn):
    model = PooledLinear(seed=3, scale=1.0)
    x = images(3, 8, seed=1)
    target = torch.tensor([1, 4, 9])
    got_x, got_c = fn(model, x, target=target, steps=1, lr=0.05)
    assert tuple(got_x.shape) == tuple(x.shape), f"images: expected shape {tuple(x.shape)}, got {tuple(got_x.shape)}"
    assert tuple(got_c.shape) == (3,), f"confidences: expected shape (3,), got {tuple(got_c.shape)}"
    # Adam's first step: the bias-corrected moments are g and g**2, so it moves by lr * g / (|g| + eps)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(-F.log_softmax(model(xg), -1)[torch.arange(3), target].sum(), xg)
    expected = (x - 0.05 * g / (g.abs() + 1e-8)).clamp(0, 1)
    assert_close(got_x, expected, "the images after one Adam step", rtol=1e-5, atol=1e-5)


@check("the confidences are the target's softmax probability at the returned images; more steps, more confidence")
def maximize_confidence_confidences(fn):
    model = PooledLinear(seed=6, scale=1.0)
    x = images(3, 8, seed=4)
    target = torch.tensor([0, 2, 7])
    confidences = []
    for steps in (2, 8):
        got_x, got_c = fn(model, x, target=target, steps=steps, lr=0.05)
        expected = model(got_x).softmax(-1)[torch.arange(3), target]
        what = f"the confidences vs the target's softmax at the returned images {expected.tolist()}"
        assert_close(got_c, expected, what, rtol=1e-5, atol=1e-5)
        confidences.append(got_c)
    assert bool((confidences[1] > confidences[0]).all()), (
        f"8 steps gave less confidence than 2: {confidences[0].tolist()} -> {confidences[1].tolist()}"
    )


@check("target=None keeps the current top class; confidence rises; images stay in [0,1]; input untouched")
def maximize_confidence_default_target(fn):
    model = PooledLinear(seed=4, scale=1.0)
    x = images(2, 8, seed=2)
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
def maximize_confidence_bad_input(fn):
    model = PooledLinear(seed=5)
    x = torch.rand(2, 3, 8, 8)
    assert fn(model, x, target=1, steps=1)[0].shape == x.shape
    assert_raises(
        lambda: fn(model, x, target=torch.tensor([1, 2, 3]), steps=1), ValueError, what="3 targets for 2 images"
    )


maximize_confidence = Exercise(
    "noise",
    "maximize_confidence",
    [
        maximize_confidence_first_step,
        maximize_confidence_confidences,
        maximize_confidence_default_target,
        maximize_confidence_bad_input,
    ],
)


# --------------------------------------------------------------------------- confidence_auroc
@check("equals sklearn.metrics.roc_auc_score (photos are the positives), ties included")
def confidence_auroc_matches_sklearn(fn):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    real, noise = rng.random(30).round(1), rng.random(40).round(1) * 0.8  # many ties
    got = fn(real, noise)
    assert isinstance(got, float), f"return a float, got {type(got).__name__}"
    expected = roc_auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[real, noise])
    assert abs(got - expected) < 1e-12, f"expected {expected:.6f}, got {got:.6f}"


@check("perfect separation gives 1.0, reversed gives 0.0, identical gives 0.5; tensors work too")
def confidence_auroc_extremes(fn):
    assert fn([0.9, 0.8], [0.1, 0.2, 0.3]) == 1.0
    assert fn(torch.tensor([0.1]), torch.tensor([0.5, 0.6])) == 0.0
    assert fn([0.5, 0.5], [0.5]) == 0.5


@check("empty or non-1-D confidences raise ValueError")
def confidence_auroc_bad_input(fn):
    assert fn([0.9], [0.1]) == 1.0
    assert_raises(lambda: fn([], [0.1]), ValueError, what="no photo confidences")
    assert_raises(lambda: fn(np.ones((2, 2)), [0.1]), ValueError, what="2-D photo confidences")


confidence_auroc = Exercise(
    "noise",
    "confidence_auroc",
    [
        confidence_auroc_matches_sklearn,
        confidence_auroc_extremes,
        confidence_auroc_bad_input,
    ],
)


#: Every exercise of the lab, in notebook order.
EXERCISES = [noise_images, probe, summarize, class_counts, maximize_confidence, confidence_auroc]
