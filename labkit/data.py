"""Images in the course convention: float tensors (N, 3, H, W) with values in [0, 1].

* Offline sample photos: the photos that ship inside scikit-image and
  scikit-learn, each with the ImageNet class a person would expect.
* :func:`load_image` for your own pictures (a path or a URL).
* :func:`to_tensor` converts PIL images, numpy HWC arrays (uint8 or 0-255
  floats) and CHW tensors.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from labkit.runtime import NetworkRequired, offline


def _package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


# The sample photos are read straight from the files scikit-image and scikit-learn ship, with PIL (as
# both libraries do): importing them would cost a kernel some 100 MB (scipy, imageio) for 7 pictures.
def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load():
        for ext in ("png", "jpg"):
            path = _package_file("skimage", f"data/{name}.{ext}")
            if path is not None:
                return _read_image(path)
        from skimage import data

        return getattr(data, name)()

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load():
        path = _package_file("sklearn", f"datasets/images/{filename}")
        if path is not None:
            return _read_image(path)
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


@dataclass(frozen=True)
class Photo:
    """An offline sample photo.

    Attributes:
        name: short name, e.g. ``"cat"``.
        source: where the pixels come from.
        label: the ImageNet class a person would expect.
        accepted: every ImageNet class that counts as right (e.g. all cat breeds).
    """

    name: str
    source: str
    label: int
    accepted: tuple[int, ...]
    load: Callable[[], np.ndarray]


PHOTOS: dict[str, Photo] = {
    p.name: p
    for p in [
        Photo("cat", "skimage.data.chelsea()", 281, (281, 282, 283, 284, 285), _skimage("chelsea")),
        Photo("coffee", "skimage.data.coffee()", 967, (967, 968), _skimage("coffee")),
        Photo("rocket", "skimage.data.rocket()", 657, (657, 744, 812), _skimage("rocket")),
        Photo("temple", "sklearn load_sample_image('china.jpg')", 698, (698, 442, 663, 832), _sklearn("china.jpg")),
        Photo("flower", "sklearn load_sample_image('flower.jpg')", 985, (985,), _sklearn("flower.jpg")),
        Photo("camera", "skimage.data.camera() (a cameraman behind a tripod)", 872, (872, 759), _skimage("camera")),
        Photo(
            "astronaut",
            "skimage.data.astronaut() (Eileen Collins in a flight suit)",
            652,
            (652, 834),
            _skimage("astronaut"),
        ),
    ]
}


def to_tensor(image, size: int | None = None) -> torch.Tensor:
    """Convert an image (or a batch) to a float tensor (N,3,H,W) in [0,1].

    Accepts a PIL image; a numpy array HW (gray), HWC or NHWC, uint8 or float
    (floats above 1 are taken as 0-255); a torch tensor CHW or NCHW (uint8 is
    divided by 255). Gray images are repeated to 3 channels, RGBA loses alpha.
    With ``size``, the short side is resized to ``size`` and the center cropped
    to ``size`` x ``size``.
    """
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL, without importing it
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
            raise ValueError(f"expected a numpy image HW, HWC or NHWC with 1, 3 or 4 channels; got shape {image.shape}")
        if arr.shape[-1] == 1:
            arr = np.repeat(arr, 3, axis=-1)
        x = torch.tensor(arr[..., :3]).permute(0, 3, 1, 2)  # a copy: sample arrays are read-only
    elif isinstance(image, torch.Tensor):
        x = image.detach()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected a tensor CHW or NCHW with 1 or 3 channels; got shape {tuple(image.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
    else:
        raise TypeError(
            f"cannot convert a {type(image).__name__} to an image tensor; "
            "give a PIL image, a numpy array or a torch tensor"
        )
    if x.dtype == torch.uint8:
        x = x.float() / 255
    elif x.is_floating_point():
        x = x.float()
        if x.numel() and float(x.max()) > 1.0:
            x = x / 255
    elif x.dtype == torch.bool:
        x = x.float()
    else:
        x = x.float() / 255
    x = x.clamp(0, 1)
    return resize_center_crop(x, size) if size is not None else x.contiguous()


def resize_center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (antialiased bilinear) so the short side is ``size``, then center-crop to a square."""
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(images, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[..., top : top + size, left : left + size].clamp(0, 1).contiguous()


def sample_image(name: str, size: int = 224) -> torch.Tensor:
    """One offline sample photo (see :data:`PHOTOS`) as a (1,3,size,size) tensor in [0,1]."""
    if name not in PHOTOS:
        raise ValueError(f"unknown sample photo {name!r}; choose one of {', '.join(PHOTOS)}")
    return to_tensor(PHOTOS[name].load(), size=size)


def sample_batch(names=None, size: int = 224) -> tuple[torch.Tensor, torch.Tensor]:
    """Offline sample photos and their expected ImageNet labels.

    Returns:
        images (N,3,size,size) in [0,1] and labels, a LongTensor (N,). ``names``
        defaults to every photo in :data:`PHOTOS`, in order.
    """
    names = list(PHOTOS) if names is None else list(names)
    images = torch.cat([sample_image(n, size) for n in names])
    return images, torch.tensor([PHOTOS[n].label for n in names], dtype=torch.long)


def load_image(path_or_url, size: int | None = 224) -> torch.Tensor:
    """Load your own picture from a file path or an http(s) URL as (1,3,size,size) in [0,1].

    Raises:
        FileNotFoundError: no such file.
        NetworkRequired: a URL that can't be fetched.
    """
    from PIL import Image

    text = str(path_or_url)
    if text.startswith(("http://", "https://")):
        if offline():
            raise NetworkRequired(
                f"fetching {text} needs the network (LABKIT_OFFLINE is set); "
                "download the file and pass its path, or use labkit.data.sample_image()"
            )
        import urllib.request

        try:
            with urllib.request.urlopen(text, timeout=20) as response:
                blob = response.read()
        except OSError as exc:
            raise NetworkRequired(
                f"could not download {text} ({exc}); download it yourself and pass "
                "the path, or use labkit.data.sample_image()"
            ) from exc
        image = Image.open(io.BytesIO(blob))
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no image at {path}")
        image = Image.open(path)
    return to_tensor(image, size=size)


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """A (3,H,W) or (1,3,H,W) tensor in [0,1] as an HWC float numpy array, for matplotlib."""
    x = image.detach().cpu()
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image; got a batch of {x.shape[0]}")
        x = x[0]
    return x.permute(1, 2, 0).clamp(0, 1).numpy()


# --------------------------------------------------------------------------
# Small labelled datasets (Lab 5): handwritten digits offline, CIFAR-10 online
# --------------------------------------------------------------------------
#: Class names of scikit-learn's digits and of CIFAR-10, in label order.
DIGIT_CLASSES = tuple(str(i) for i in range(10))
CIFAR10_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def load_digits(
    split: str = "train", size: int = 8, test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's handwritten digits (1797 real 8x8 scans, offline) in the course convention.

    The split is stratified and fixed by ``seed`` (train 1347 / test 450 images by default).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: side in pixels (8 is the native resolution; larger sizes are bilinear upsamplings).

    Returns:
        images (N,3,size,size) in [0,1] (gray repeated on 3 channels) and labels, a LongTensor (N,).
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be one of ['all', 'test', 'train']; got {split!r}")
    bunch = _sk_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # pixel values are 0..16
    y = torch.tensor(bunch.target, dtype=torch.long)
    if split != "all":
        idx = np.arange(len(y))
        train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=bunch.target)
        keep = torch.as_tensor(np.sort(train_idx if split == "train" else test_idx))
        x, y = x[keep], y[keep]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous(), y


def load_cifar10(
    split: str = "train", root="~/.cache/labkit/cifar10", limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 (downloaded once by torchvision into ``root``) as tensors in the course convention.

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        root: download/cache directory.
        limit: keep only the first ``limit`` images (quick runs).

    Returns:
        images (N,3,32,32) in [0,1] and labels, a LongTensor (N,).

    Raises:
        NetworkRequired: CIFAR-10 is not in ``root`` and can't be downloaded
            (no network, or ``LABKIT_OFFLINE=1``).
    """
    import torchvision

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    root = Path(root).expanduser()
    train = split == "train"
    try:  # already downloaded: no network needed
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
    except RuntimeError:
        need = (
            f"CIFAR-10 is not in {root} and must be downloaded (~170 MB) from the internet; "
            "the digits version of the lab (labkit.data.load_digits) works offline"
        )
        if offline():
            raise NetworkRequired(need + " (LABKIT_OFFLINE is set)") from None
        try:
            ds = torchvision.datasets.CIFAR10(str(root), train=train, download=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise NetworkRequired(f"{need} ({type(exc).__name__}: {exc})") from exc
    data, targets = ds.data, ds.targets
    if limit is not None:
        data, targets = data[:limit], targets[:limit]
    x = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(), torch.tensor(targets, dtype=torch.long)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """CIFAR-style augmentation of a batch: a random translation and a random horizontal flip.

    Each image (N,3,H,W) in [0,1] is reflection-padded by ``max(1, H // 8)`` pixels, cropped
    back to H x W at a random offset (up to that many pixels each way), and mirrored left-right
    with probability 1/2. All draws come from ``generator``, in that order (row offsets, column
    offsets, flips), so a seeded generator gives the same batch. Not for digits: a flipped 2 is
    not a 2.
    """
    n, _, h, w = images.shape
    pad = max(1, h // 8)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = dy.view(n, 1) + torch.arange(h).view(1, h)  # (n, h)
    cols = dx.view(n, 1) + torch.arange(w).view(1, w)  # (n, w)
    out = padded[
        torch.arange(n).view(n, 1, 1, 1),
        torch.arange(images.shape[1]).view(1, -1, 1, 1),
        rows.view(n, 1, h, 1),
        cols.view(n, 1, 1, w),
    ]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out
