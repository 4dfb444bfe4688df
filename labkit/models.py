"""The course's models: pretrained ImageNet classifiers (:func:`load_model`), their class names and
predictions (:func:`imagenet_classes`, :func:`predict`, :func:`describe`), the layer groups of the
cascading randomization test, and Lab 5's small trainable networks (:func:`small_cnn`,
:func:`resnet9`, :class:`Ensemble`). The EfficientNet-Lite network itself is in
:mod:`labkit.efficientnet_lite`; the network switch, threads and memory in :mod:`labkit.runtime`.

Every ImageNet model :func:`load_model` returns:

* takes float images (N, 3, H, W) in [0, 1] and normalizes them itself;
* returns logits (N, 1000);
* is in eval mode with frozen parameters (``requires_grad=False``), so
  attribution and attack code must ask for gradients on the *input*.

Offline models (weights ship inside pip packages, Apache-2.0):
``efficientnet_lite0`` (the default), ``efficientnet_lite1``, ``efficientnet_lite2``.

Online-only models (torchvision downloads the weights on first use):
``squeezenet1_1``, ``resnet18``, ``vgg16``, ``alexnet``, ``densenet121``, ``googlenet``.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from labkit import efficientnet_lite, validate
from labkit.runtime import NetworkRequired, offline

OFFLINE_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
TORCHVISION_MODELS = {
    "squeezenet1_1": "SqueezeNet1_1_Weights",
    "resnet18": "ResNet18_Weights",
    "vgg16": "VGG16_Weights",
    "alexnet": "AlexNet_Weights",
    "densenet121": "DenseNet121_Weights",
    "googlenet": "GoogLeNet_Weights",
}
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageClassifier(nn.Module):
    """A classifier that takes [0,1] images and normalizes them inside.

    Attributes:
        net: the underlying network (expects normalized input).
        name: the model's name in :func:`load_model`.
        num_classes: the number of logits.
        input_size: the resolution the network was trained at.
        cam_layer: the module whose output Grad-CAM uses by default (the last
            convolutional feature map, after its activation).
    """

    def __init__(self, net: nn.Module, mean, std, *, name: str, num_classes: int, input_size: int, cam_layer: str):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.name, self.num_classes, self.input_size = name, num_classes, input_size
        self._cam_layer = cam_layer

    @property
    def cam_layer(self) -> nn.Module:
        return self.get_submodule(self._cam_layer)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [0,1] -> logits (N, num_classes)."""
        return self.net((images - self.mean) / self.std)

    def __repr__(self) -> str:
        return f"ImageClassifier({self.name!r}, input_size={self.input_size}, num_classes={self.num_classes})"


def freeze(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and turn off gradients for its parameters (in place)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _efficientnet_lite(name: str) -> ImageClassifier:
    net = efficientnet_lite.pretrained(name)
    return ImageClassifier(
        net,
        efficientnet_lite.MEAN,
        efficientnet_lite.STD,
        name=name,
        num_classes=1000,
        input_size=efficientnet_lite.INPUT_SIZE[name],
        cam_layer="net.bn2",
    )


_TV_CAM_LAYERS = {
    "squeezenet1_1": "net.features",
    "resnet18": "net.layer4",
    "vgg16": "net.features.29",
    "alexnet": "net.features.11",
    "densenet121": "net.features",
    "googlenet": "net.inception5b",
}


class TorchvisionUnavailable(ImportError):
    """Raised when an online-only model needs torchvision and torchvision can't be imported: it is absent, or
    built for another torch (PyPI's torchvision beside a CPU-only torch fails to load its compiled ops)."""


def _torchvision(name: str) -> ImageClassifier:
    need = (
        f"{name} downloads its weights from the internet on first use, and the network is not "
        f"available. Offline models: {', '.join(OFFLINE_MODELS)}."
    )
    if offline():  # before importing torchvision: offline, its import would only cost time and memory
        raise NetworkRequired(need + " (LABKIT_OFFLINE is set)")
    try:
        import torchvision
    except (ImportError, RuntimeError) as exc:  # RuntimeError: "operator torchvision::nms does not exist"
        raise TorchvisionUnavailable(
            f"{name} needs torchvision, which does not load beside torch {torch.__version__} "
            f"({type(exc).__name__}: {exc}). Install the torchvision built for this torch, or use an offline "
            f"model: {', '.join(OFFLINE_MODELS)}."
        ) from exc

    weights = getattr(torchvision.models, TORCHVISION_MODELS[name]).DEFAULT
    try:
        net = getattr(torchvision.models, name)(weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; torch.hub wraps some in RuntimeError
        raise NetworkRequired(f"{need} ({type(exc).__name__}: {exc})") from exc
    return ImageClassifier(
        net, _IMAGENET_MEAN, _IMAGENET_STD, name=name, num_classes=1000, input_size=224, cam_layer=_TV_CAM_LAYERS[name]
    )


def available_models() -> list[str]:
    """Every name :func:`load_model` accepts, offline ones first."""
    return [*OFFLINE_MODELS, *TORCHVISION_MODELS]


def load_model(name: str = "efficientnet_lite0") -> ImageClassifier:
    """Load a pretrained ImageNet classifier that follows the course convention.

    Args:
        name: one of :func:`available_models`. The EfficientNet-Lite models work
            offline; torchvision models need the network once to download weights.

    Returns:
        An :class:`ImageClassifier` in eval mode with frozen parameters, mapping
        (N,3,H,W) images in [0,1] to (N,1000) logits.

    Raises:
        ValueError: unknown name.
        NetworkRequired: a torchvision model whose weights can't be downloaded.
        TorchvisionUnavailable: a torchvision model, and torchvision can't be imported.
    """
    if name in OFFLINE_MODELS:
        model = _efficientnet_lite(name)
    elif name in TORCHVISION_MODELS:
        model = _torchvision(name)
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(available_models())}")
    return freeze(model)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names, in index order (torchvision's names, shipped in labkit so that
    the offline labs never import torchvision)."""
    from pathlib import Path

    names = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8").splitlines()
    assert len(names) == 1000, "labkit/imagenet_classes.txt must hold 1000 class names"
    return tuple(names)


def class_index(name: str) -> int:
    """The ImageNet index of a class name (case-insensitive, exact match)."""
    lowered = [c.lower() for c in imagenet_classes()]
    try:
        return lowered.index(name.lower())
    except ValueError:
        close = [c for c in imagenet_classes() if name.lower() in c.lower()][:5]
        raise ValueError(f"no ImageNet class named {name!r}" + (f"; did you mean {close}?" if close else "")) from None


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, k: int = 1, batch_size: int = 4):
    """Top-``k`` softmax probabilities and class indices of (N,3,H,W) images: two tensors of shape (N, k).

    The model sees ``batch_size`` images at a time: a forward pass of 20 images at 224 px holds
    about 420 MB of activations at its peak, 4 images about 100 MB (Binder guarantees 1 GB).
    """
    batch_size = validate.positive_int(batch_size, "batch_size")
    logits = torch.cat([model(images[i : i + batch_size]) for i in range(0, max(len(images), 1), batch_size)])
    return logits.softmax(-1).topk(k, dim=-1)


def describe(model: nn.Module, images: torch.Tensor) -> list[str]:
    """One "class name (confidence%)" string per image, for titles."""
    probs, idx = predict(model, images)
    names = imagenet_classes()
    return [f"{names[i]} ({p:.0%})" for p, i in zip(probs[:, 0].tolist(), idx[:, 0].tolist())]


def randomization_groups(model: ImageClassifier) -> list[tuple[str, nn.Module]]:
    """The model's layers from the top (logits) down, for the cascading randomization test.

    EfficientNets give the classifier, the head convolution, then each stage of
    blocks from last to first, then the stem. Other models give their top-level
    children that hold parameters, last first.
    """
    net = getattr(model, "net", model)
    if hasattr(net, "blocks") and hasattr(net, "conv_head"):
        groups = [("classifier", net.classifier), ("conv_head", nn.ModuleList([net.conv_head, net.bn2]))]
        groups += [(f"blocks.{i}", block) for i, block in reversed(list(enumerate(net.blocks)))]
        groups.append(("conv_stem", nn.ModuleList([net.conv_stem, net.bn1])))
        return groups
    return [(n, m) for n, m in reversed(list(net.named_children())) if any(True for _ in m.parameters())]


# --------------------------------------------------------------------------
# Small trainable networks for small images (Lab 5)
# --------------------------------------------------------------------------
class SmallImageNet(nn.Module):
    """A trainable classifier for small images that follows the course convention.

    Takes (N,3,H,W) images in [0,1], normalizes them with ``mean``/``std`` inside and
    returns logits (N, num_classes). Unlike :func:`load_model`, its parameters are
    trainable and it starts in train mode.
    """

    def __init__(self, net: nn.Module, mean, std, *, name: str, num_classes: int):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.name, self.num_classes = name, num_classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.mean) / self.std)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"SmallImageNet({self.name!r}, num_classes={self.num_classes}, params={n:,})"


def small_cnn(num_classes: int = 10, width: int = 32, seed: int | None = None) -> SmallImageNet:
    """A small CNN for tiny images (8x8 digits upwards): 3 conv layers + global average pooling.

    ``width`` channels, then 2*width twice (one 2x2 max-pool), ReLU everywhere, then a linear
    layer. Works at any input size >= 4 px. ``seed`` makes the initialization reproducible.
    """
    if seed is not None:
        torch.manual_seed(seed)
    w = width
    net = nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * w, num_classes),
    )
    return SmallImageNet(net, (0.5,) * 3, (0.5,) * 3, name="small_cnn", num_classes=num_classes)


class _Residual(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


def _conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _Scale(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def resnet9(num_classes: int = 10, width: int = 64, seed: int | None = None) -> SmallImageNet:
    """ResNet-9 (Myrtle.ai / airbench style) for 32x32 images: reaches ~94% on CIFAR-10 in minutes on a GPU.

    prep conv(width) -> conv(2w)+pool+residual -> conv(4w)+pool -> conv(8w)+pool+residual
    -> global max pool -> linear (logits scaled by 0.125). BatchNorm after every conv;
    CIFAR-10 normalization inside. ``width=8`` gives a tiny version for tests.
    """
    if seed is not None:
        torch.manual_seed(seed)
    w = width
    net = nn.Sequential(
        _conv_bn(3, w),
        _conv_bn(w, 2 * w, pool=True),
        _Residual(nn.Sequential(_conv_bn(2 * w, 2 * w), _conv_bn(2 * w, 2 * w))),
        _conv_bn(2 * w, 4 * w, pool=True),
        _conv_bn(4 * w, 8 * w, pool=True),
        _Residual(nn.Sequential(_conv_bn(8 * w, 8 * w), _conv_bn(8 * w, 8 * w))),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, num_classes, bias=False),
        _Scale(0.125),
    )
    return SmallImageNet(
        net, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), name="resnet9", num_classes=num_classes
    )


class Ensemble(nn.Module):
    """Several classifiers as one: ``forward(x)`` is the mean of their logits.

    An attack on an ensemble has to move every member at once, so it keeps the directions the
    members share and drops each one's quirks; its adversarial examples transfer better to models
    it has never seen (Liu et al., *Delving into Transferable Adversarial Examples*, ICLR 2017).
    Lab 5 attacks an ensemble of briefly trained source models.

    Args:
        members: one or more classifiers taking the same (N,3,H,W) images in [0,1] and returning
            logits (N,C) with the same C.

    ``forward`` returns (N,C) logits; ``train()``/``eval()`` reach every member (they are submodules).
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, nn.Module) for m in members):
            raise TypeError(f"members must be one or more torch.nn.Module classifiers; got {members!r}"[:200])
        self.members = nn.ModuleList(members)
        self.name = f"ensemble of {len(members)}"
        self.num_classes = getattr(members[0], "num_classes", None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = [m(images) for m in self.members]
        if len({tuple(z.shape) for z in logits}) > 1:
            raise ValueError(f"the members' logits differ in shape: {[tuple(z.shape) for z in logits]}")
        return torch.stack(logits).mean(0)

    def __repr__(self) -> str:
        return f"Ensemble({', '.join(repr(m) for m in self.members)})"
