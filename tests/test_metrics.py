"""labkit.metrics: rank correlation, cascading randomization, deletion curves."""

import numpy as np
import pytest
import torch

from labkit import metrics
from labkit.check.toys import LinearClassifier, images, tiny_cnn


def test_rank_correlation_known_values():
    a = torch.arange(16.0).view(1, 4, 4)
    assert metrics.rank_correlation(a, a)[0] == pytest.approx(1)
    assert metrics.rank_correlation(a, 15 - a)[0] == pytest.approx(-1)
    assert metrics.rank_correlation(a, torch.zeros_like(a))[0] == 0
    with pytest.raises(ValueError, match="same shape"):
        metrics.rank_correlation(a, a[:, :2])


def _gradient(model, x, t):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).gather(1, t[:, None]).sum(), x)
    return g.abs().amax(1)


def test_cascading_randomization_leaves_the_model_alone_and_detects_change():
    model = tiny_cnn()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = images(2, 12)
    table = metrics.cascading_randomization(model, {"gradient": _gradient, "input": lambda m, x, t: x}, x, 1)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert list(table["layer"].unique()) == ["(trained)", "fc", "conv2", "conv1"]
    last = table[table.step == 3].set_index("method")["spearman"]
    assert last["input"] == pytest.approx(1), "a map that ignores the model must not change"
    assert last["gradient"] < 0.9
    with pytest.raises(ValueError, match="unknown layer groups"):
        metrics.cascading_randomization(model, {"g": _gradient}, x, 1, groups=["nope"])


def test_deletion_curve_on_a_linear_model():
    """Deleting the pixels with the largest positive contribution first makes the logit fall fastest."""
    model = LinearClassifier(size=4, num_classes=2)
    with torch.no_grad():
        model.weight[1] = -model.weight[0]
        model.bias.zero_()
    x = images(1, 4)
    contribution = (model.weight[0] * x[0]).sum(0, keepdim=True)  # (1,4,4)
    fractions, best = metrics.deletion_curve(model, x, 0, contribution.clamp_min(0) + 1e-6 * contribution, steps=16)
    _, worst = metrics.deletion_curve(model, x, 0, -contribution, steps=16)
    assert fractions.tolist() == pytest.approx(np.linspace(0, 1, 17).tolist())
    assert best[0, 0] == pytest.approx(worst[0, 0]) and best[0, -1] == pytest.approx(0.5)
    assert metrics.deletion_auc(fractions, best)[0] < metrics.deletion_auc(fractions, worst)[0]
    with pytest.raises(ValueError, match="maps must match"):
        metrics.deletion_curve(model, x, 0, torch.zeros(1, 5, 5))


def test_deletion_auc_is_the_trapezoid_area():
    f = np.linspace(0, 1, 5)
    assert metrics.deletion_auc(f, np.ones((2, 5))).tolist() == pytest.approx([1, 1])
    assert metrics.deletion_auc(f, f[None])[0] == pytest.approx(0.5)
