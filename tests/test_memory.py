"""What keeps the labs within Binder's memory: the offline labs never import torchvision, timm,
scikit-learn or scipy just to build a model or read a sample photo, and the model labkit builds
without timm is timm's EfficientNet-Lite exactly (the peaks themselves are measured by the benchmarks)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from labkit import models

HEAVY = ("torchvision", "timm", "sklearn", "scipy", "imageio", "skimage")


def test_models_photos_and_class_names_import_nothing_heavy():
    code = (
        "import json, sys\n"
        "from labkit import data, models\n"
        "model = models.load_model()\n"
        "images, labels = data.sample_batch()\n"
        "names = models.imagenet_classes()\n"
        "assert models.predict(model, images[:1])[1].item() in data.PHOTOS['cat'].accepted\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_imagenet_class_names_are_torchvision_s():
    pytest.importorskip("torchvision", reason="torchvision is needed to compare the class names")
    from torchvision.models import ResNet18_Weights

    assert models.imagenet_classes() == tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


@pytest.mark.parametrize(
    "name, size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_efficientnet_lite_is_timm_s(name, size):
    """Same module names, same tensors in the same order, the same logits and input gradients."""
    timm = pytest.importorskip("timm", reason="timm (a test dependency) is needed for the comparison")
    ours = models.load_model(name)
    theirs = models.freeze(timm.create_model(f"tf_{name}", pretrained=False))
    assert [n for n, _ in theirs.named_modules()] == [n for n, _ in ours.net.named_modules()]
    assert list(theirs.state_dict()) == list(ours.net.state_dict())
    theirs.load_state_dict(ours.net.state_dict())
    x = torch.rand(2, 3, size + 3, size - 5, requires_grad=True)  # odd sizes: TensorFlow's SAME padding
    a, b = ours.net(x), theirs(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    (ga,) = torch.autograd.grad(a[:, 7].sum(), x)
    (gb,) = torch.autograd.grad(b[:, 7].sum(), x)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-6)


def test_trim_memory_after_each_cell_registers_once():
    """Re-running a set-up cell keeps one hook; each cell's end hands freed memory back (glibc)."""
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from labkit import runtime\n"
        "shell = InteractiveShell.instance()\n"
        "for _ in range(3):\n"
        "    shell.run_cell('from labkit.runtime import trim_memory_after_each_cell; trim_memory_after_each_cell()')\n"
        "hooks = [c for c in shell.events.callbacks['post_run_cell'] if c.__name__ == '_labkit_trim_memory']\n"
        "assert len(hooks) == 1, hooks\n"
        "assert shell.run_cell('x = [bytearray(1 << 20) for _ in range(50)]; del x').success\n"
        "print(runtime.trim_memory())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(sys.platform == "linux")
