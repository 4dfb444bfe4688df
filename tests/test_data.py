"""labkit.data: conversions into the course convention, offline photos, your own pictures."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from labkit import data
from labkit.models import predict
from labkit.runtime import NetworkRequired


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_to_tensor_accepts_every_common_form(rgb):
    expected = torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255
    for given in [
        rgb,
        rgb.astype(np.float32),
        Image.fromarray(rgb),
        torch.tensor(rgb).permute(2, 0, 1),
        expected[0],
        np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], -1),
    ]:
        x = data.to_tensor(given)
        assert x.shape == (1, 3, 20, 30) and x.dtype == torch.float32
        assert torch.allclose(x, expected, atol=1e-6)


def test_to_tensor_gray_and_resize(rgb):
    gray = rgb[..., 0]
    x = data.to_tensor(gray, size=16)
    assert x.shape == (1, 3, 16, 16) and torch.equal(x[:, 0], x[:, 1])
    assert 0 <= x.min() and x.max() <= 1


def test_to_tensor_refuses_nonsense():
    with pytest.raises(TypeError, match="cannot convert a str"):
        data.to_tensor("cat.jpg")
    with pytest.raises(ValueError, match="HWC"):
        data.to_tensor(np.zeros((4, 4, 7)))


def test_sample_photos_are_offline_and_labelled(model):
    images, labels = data.sample_batch()
    assert images.shape == (len(data.PHOTOS), 3, 224, 224) and labels.dtype == torch.long
    assert 0 <= images.min() and images.max() <= 1
    for photo, label in zip(data.PHOTOS.values(), labels):
        assert label.item() == photo.label and photo.label in photo.accepted
    top5 = predict(model, images, k=5)[1]
    recognized = [p.name for p, t in zip(data.PHOTOS.values(), top5) if set(t.tolist()) & set(p.accepted)]
    assert len(recognized) >= len(data.PHOTOS) - 1, f"only {recognized} recognized"


def test_unknown_sample_photo():
    with pytest.raises(ValueError, match="unknown sample photo 'dog'.*cat"):
        data.sample_image("dog")


def test_load_image_from_a_file_and_errors(tmp_path, rgb, monkeypatch):
    path = tmp_path / "mine.png"
    Image.fromarray(rgb).save(path)
    assert data.load_image(path, size=16).shape == (1, 3, 16, 16)
    assert data.load_image(str(path), size=None).shape == (1, 3, 20, 30)
    with pytest.raises(FileNotFoundError):
        data.load_image(tmp_path / "missing.png")
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(NetworkRequired, match="needs the network"):
        data.load_image("https://example.org/cat.jpg")


def test_to_numpy_image_round_trip():
    x = torch.rand(1, 3, 5, 6)
    assert data.to_numpy_image(x).shape == (5, 6, 3)
    with pytest.raises(ValueError, match="one image"):
        data.to_numpy_image(torch.rand(2, 3, 5, 6))


def test_load_digits_split():
    x_train, y_train = data.load_digits("train")
    x_test, y_test = data.load_digits("test")
    assert x_train.shape == (1347, 3, 8, 8) and x_test.shape == (450, 3, 8, 8)
    assert float(x_train.min()) == 0.0 and float(x_train.max()) == 1.0
    assert torch.equal(torch.bincount(torch.cat([y_train, y_test])), torch.bincount(data.load_digits("all")[1]))
    assert data.load_digits("train", size=16)[0].shape == (1347, 3, 16, 16)
    with pytest.raises(ValueError, match="split"):
        data.load_digits("validation")


def test_load_cifar10_offline_raises_network_required(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(NetworkRequired, match="CIFAR-10"):
        data.load_cifar10("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        data.load_cifar10("val", root=tmp_path)


def test_augment_is_a_seeded_shift_of_the_padded_image_possibly_mirrored():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 16, 16, generator=gen)
    out = data.augment(images, torch.Generator().manual_seed(5))
    assert torch.equal(out, data.augment(images, torch.Generator().manual_seed(5)))
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")  # pad = 16 // 8
    for x, y in zip(padded, out):
        crops = [x[:, i : i + 16, j : j + 16] for i in range(5) for j in range(5)]
        assert any(torch.equal(y, c) or torch.equal(y, c.flip(-1)) for c in crops)
