"""labkit.models: the offline EfficientNets, the online-only torchvision models, class names; runtime threads."""

import re
import sys
import urllib.error

import pytest
import torch

from labkit import models, runtime
from labkit.check.toys import assert_close, images, record_forwards, tiny_linear
from labkit.data import sample_image


def test_default_model_follows_the_course_convention(model):
    assert isinstance(model, models.ImageClassifier) and model.name == "efficientnet_lite0"
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 96, 96)
    assert model(x).shape == (2, 1000)


@pytest.mark.parametrize("photo, classes", [("cat", range(281, 286)), ("coffee", [967])])
def test_weight_mapping_and_preprocessing_give_the_right_classes(model, photo, classes):
    """The checkpoint is mapped by position onto timm's architecture: the photos prove it."""
    probs, idx = models.predict(model, sample_image(photo), k=1)
    assert idx.item() in classes
    assert probs.item() > 0.35


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_other_offline_models_load_and_predict(name):
    other = models.load_model(name)
    assert other.input_size > 224 and not other.training
    assert models.predict(other, sample_image("coffee"))[1].item() == 967


def test_torchvision_models_say_they_need_the_network(monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(runtime.NetworkRequired, match="network.*efficientnet_lite0"):
        models.load_model("resnet18")


def test_a_failed_download_becomes_a_clear_error(monkeypatch):
    """Online mode, but the download fails (as on this machine): the error names the offline models."""
    import torchvision.models as tvm

    monkeypatch.delenv("LABKIT_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(tvm, "squeezenet1_1", no_network)
    with pytest.raises(runtime.NetworkRequired, match="squeezenet1_1 downloads its weights.*efficientnet_lite0"):
        models.load_model("squeezenet1_1")


def test_torchvision_wrapper_on_a_cached_model(monkeypatch):
    """The online path itself, with torchvision's constructor returning an untrained network."""
    import torchvision.models as tvm

    monkeypatch.delenv("LABKIT_OFFLINE", raising=False)
    real = tvm.squeezenet1_1
    monkeypatch.setattr(tvm, "squeezenet1_1", lambda weights: real(weights=None))
    m = models.load_model("squeezenet1_1")
    assert m.name == "squeezenet1_1" and not any(p.requires_grad for p in m.parameters())
    assert m(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert m.cam_layer is m.net.features


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet1000'.*efficientnet_lite0"):
        models.load_model("resnet1000")


def test_class_names_offline():
    names = models.imagenet_classes()
    assert len(names) == 1000 and names[967] == "espresso"
    assert models.class_index("Espresso") == 967
    with pytest.raises(ValueError, match="did you mean"):
        models.class_index("espress")


def test_describe_and_predict(model):
    x = sample_image("coffee")
    assert models.describe(model, x)[0].startswith("espresso (")
    probs, idx = models.predict(model, x, k=5)
    assert probs.shape == idx.shape == (1, 5) and torch.all(probs[:, :-1] >= probs[:, 1:])


@pytest.mark.parametrize("n, batch_size, calls", [(7, 4, 2), (8, 4, 2), (1, 4, 1), (0, 4, 1), (5, 1, 5)])
def test_predict_runs_the_model_in_batches_and_equals_one_pass(n, batch_size, calls):
    """Memory: the model sees at most ``batch_size`` images a call; the answer is the one-pass answer."""
    model = tiny_linear(num_classes=6, size=4, seed=0)
    x = images(n, 4, seed=1)
    forwards = record_forwards(model)
    probs, idx = models.predict(model, x, k=2, batch_size=batch_size)
    assert len(forwards) == calls and all(len(f.input) <= batch_size for f in forwards)
    assert torch.equal(torch.cat([f.input for f in forwards]), x)
    expected = model(x).softmax(-1).topk(2, dim=-1)
    assert_close(probs, expected.values, "predict's probabilities", rtol=0, atol=1e-7)
    assert torch.equal(idx, expected.indices)
    with pytest.raises(ValueError, match="batch_size"):
        models.predict(model, x, batch_size=0)


def test_randomization_groups_go_top_down(model):
    names = [n for n, _ in models.randomization_groups(model)]
    assert names[:3] == ["classifier", "conv_head", "blocks.6"] and names[-2:] == ["blocks.0", "conv_stem"]


def test_set_threads_obeys_the_autograders_cap(monkeypatch):
    from threadpoolctl import threadpool_info

    saved = torch.get_num_threads()
    try:
        monkeypatch.delenv("LABKIT_THREADS", raising=False)
        assert runtime.set_threads(2) == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("LABKIT_THREADS", "1")
        assert runtime.set_threads(2) == 1 and torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="positive int"):
                runtime.set_threads(bad)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("builder,size", [(models.small_cnn, 8), (models.small_cnn, 32), (models.resnet9, 32)])
def test_small_models_follow_the_convention(builder, size):
    model = builder(num_classes=7, width=4, seed=0).eval()
    assert model.num_classes == 7
    assert model(torch.rand(2, 3, size, size)).shape == (2, 7)
    assert any(p.requires_grad for p in model.parameters())  # trainable, unlike load_model()
    a, b = builder(num_classes=7, width=4, seed=3), builder(num_classes=7, width=4, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_ensemble_is_the_mean_of_its_members_logits():
    members = [tiny_linear(num_classes=3, size=4, seed=k) for k in range(3)]
    ensemble = models.Ensemble(members)
    x = images(5, size=4)
    expected = sum(m[1](x.flatten(1)) for m in members) / 3  # closed form: mean of x W_k^T + b_k
    assert_close(ensemble(x), expected, "the ensemble's logits", rtol=1e-6, atol=1e-6)
    assert ensemble.num_classes == 3 and "3" in ensemble.name
    ensemble.eval()
    assert not any(m.training for m in members)  # eval() reaches every member
    seen = record_forwards(members[1])
    ensemble(x)
    assert len(seen) == 1  # one pass per member and call


def test_ensemble_bad_input():
    with pytest.raises(TypeError, match="members"):
        models.Ensemble([])
    with pytest.raises(TypeError, match="members"):
        models.Ensemble([lambda x: x])
    with pytest.raises(ValueError, match="differ in shape"):
        models.Ensemble([tiny_linear(3), tiny_linear(4)])(images(2, size=4))


class _BrokenTorchvision:
    """A meta-path finder whose torchvision fails as PyPI's does beside a CPU-only torch."""

    def __init__(self, error):
        self.error = error

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            raise self.error
        return None


@pytest.mark.parametrize(
    "error", [RuntimeError("operator torchvision::nms does not exist"), ImportError("No module named 'torchvision'")]
)
def test_a_torchvision_that_does_not_load_becomes_a_clear_error(monkeypatch, error):
    """Online, but torchvision's import fails: a labkit error (an ImportError) that says why and names the
    offline models, which still load; offline, the network error comes first and torchvision is never imported."""
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchvision(error), *sys.meta_path])
    monkeypatch.delenv("LABKIT_OFFLINE", raising=False)
    said = f"squeezenet1_1 needs torchvision.*{re.escape(str(error))}.*lite0"
    with pytest.raises(models.TorchvisionUnavailable, match=said) as info:
        models.load_model("squeezenet1_1")
    assert isinstance(info.value, ImportError) and info.value.__cause__ is error
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(runtime.NetworkRequired, match="LABKIT_OFFLINE"):
        models.load_model("squeezenet1_1")
    assert models.load_model("efficientnet_lite0").name == "efficientnet_lite0"
