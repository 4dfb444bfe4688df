"""labkit.viz: every plot returns a figure with the expected panels and sane values."""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labkit import viz  # noqa: E402


def test_normalize_map_reduces_channels_and_clips():
    m = viz.normalize_map(torch.randn(2, 3, 8, 8))
    assert m.shape == (2, 8, 8) and m.min() >= 0 and m.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="N,H,W"):
        viz.normalize_map(torch.rand(8))


def test_show_images_titles_predictions(model):
    fig = viz.show_images(torch.rand(3, 3, 32, 32), titles=["a", "b", "c"], model=model)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 and all("%" in t for t in titles)


def test_show_maps_panel_layout():
    x = torch.rand(2, 3, 16, 16)
    fig = viz.show_maps(x, {"a": torch.rand(2, 16, 16), "b": torch.randn(2, 3, 16, 16)}, row_titles=["x", "y"])
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="3 maps for 2 images"):
        viz.show_maps(x, {"a": torch.rand(3, 16, 16)})
    with pytest.raises(ValueError, match="mode"):
        viz.show_maps(x, {"a": torch.rand(2, 16, 16)}, mode="3d")


def test_overlay_and_amplify_ranges():
    rgb = viz.overlay(torch.rand(3, 8, 8), np.random.rand(8, 8))
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    amp = viz.amplify(torch.tensor([[-0.01, 0.0, 0.02]]).view(1, 3, 1, 1))
    assert amp.flatten().tolist() == pytest.approx([0.25, 0.5, 1.0])


def test_plot_curves():
    fig = viz.plot_curves([4, 8, 16], {"a": [1, 2, 3], "b": [3, 2, 1]}, "x", "y", title="t", logx=True, logy=True)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16"]
