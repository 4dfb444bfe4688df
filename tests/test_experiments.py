"""Lab 5's experiment pipeline (labkit.experiments, not an exercise): data, models, the judge, the whole run.

The pipeline always runs on the *reference* exercises (and Lab 2's reference pgd) here: these
tests check the machinery, whatever the student's file holds. Tiny images and models, seconds.
"""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit import data, experiments, models, relabel
from labkit.runtime import NetworkRequired
from labkit_course.repo import load_reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(reference_pgd):
    """Lab 5's reference exercises, wired to Lab 2's reference pgd."""
    rf = load_reference("robust_features")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rf, "lab2_pgd", lambda: reference_pgd)
        yield rf


# --------------------------------------------------------------------------
# Statistics: the Wilson bound of the judges, the t interval over seeds
# --------------------------------------------------------------------------
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (5, 10, 0.2365931, 0.7634069),  # the textbook example
        (0, 10, 0.0, Z95**2 / (10 + Z95**2)),  # closed form at k = 0: no empty interval, unlike p +- z se
        (10, 10, 10 / (10 + Z95**2), 1.0),
        (15, 1000, 0.0091110, 0.0246010),
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    assert experiments.wilson_interval(k, n) == pytest.approx((low, high), abs=1e-7)


def test_wilson_interval_bad_input():
    with pytest.raises(ValueError, match="successes"):
        experiments.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n"):
        experiments.wilson_interval(0, 0)
    with pytest.raises(ValueError, match="confidence"):
        experiments.wilson_interval(1, 10, confidence=1.0)


def test_mean_interval_is_the_t_interval():
    """1..5: mean 3, sd sqrt(2.5), se sqrt(0.5); Student's t(4) 97.5% quantile 2.7764451."""
    r = experiments.mean_interval([1, 2, 3, 4, 5])
    half = 2.7764451052 * 0.5**0.5
    assert r == pytest.approx(dict(n=5, mean=3.0, se=0.5**0.5, low=3 - half, high=3 + half), abs=1e-9)
    one = experiments.mean_interval([0.3])
    assert one["mean"] == 0.3 and all(np.isnan(one[k]) for k in ("se", "low", "high"))
    with pytest.raises(ValueError, match="finite"):
        experiments.mean_interval([])
    with pytest.raises(ValueError, match="finite"):
        experiments.mean_interval([0.1, float("nan")])


# --------------------------------------------------------------------------
# The perceptibility judges
# --------------------------------------------------------------------------
def _flat(levels, size=4):
    return torch.as_tensor(levels, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, size, size).clone()


@pytest.mark.parametrize("kind", experiments.JUDGE_KINDS)
def test_judge_on_two_flat_classes_is_exact(kind):
    """Dark images are class 0, bright ones class 1: a small brightening is invisible, a swap is not."""
    judge = experiments.PerceptibilityJudge(
        _flat([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), torch.tensor([0, 0, 0, 1, 1, 1]), kind=kind
    )
    n = 1000  # enough images for the Wilson bound to certify a 0% target rate (upper bound 0.38%)
    originals, labels, targets = _flat([0.2] * n), torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)
    small = judge.report(originals, originals + 0.1, labels, targets)
    upper = Z95**2 / (n + Z95**2)
    assert small == dict(
        clean_acc=1.0,
        keep=1.0,
        keep_ratio=1.0,
        target=0.0,
        clean_target=0.0,
        target_upper=pytest.approx(upper),
        target_excess=pytest.approx(upper),
        rel_norm=pytest.approx(0.5),  # |0.1| / |0.2| per pixel
        imperceptible=True,
    )
    swapped = judge.report(originals, _flat([0.8] * n), labels, targets)
    assert (swapped["keep"], swapped["target"], swapped["imperceptible"]) == (0.0, 1.0, False)
    assert swapped["rel_norm"] == pytest.approx(3.0)
    few = judge.report(originals[:10], originals[:10] + 0.1, labels[:10], targets[:10])
    assert not few["imperceptible"]  # 0 of 10 does not bound the target rate under 2 points (27.8%)


def test_judge_target_test_is_relative_and_bounded():
    """1000 dark "0" images, 5 of them already bright (the judge reads them as the target "1": a 0.5%
    baseline). Moving 10 more gives 15 target reads, Wilson upper bound 2.46%, excess 1.96 points:
    imperceptible. Moving 11 gives 16 reads, upper bound 2.58%, excess 2.08 points: visible."""
    judge = experiments.PerceptibilityJudge(_flat([0.2, 0.8]), torch.tensor([0, 1]), kind="knn")
    originals = _flat([0.8] * 5 + [0.2] * 995)
    labels, targets = torch.zeros(1000, dtype=torch.long), torch.ones(1000, dtype=torch.long)
    for moved, upper, ok in ((10, 0.0246010, True), (11, 0.0258321, False)):
        perturbed = originals.clone()
        perturbed[5 : 5 + moved] = 0.8
        r = judge.report(originals, perturbed, labels, targets)
        assert (r["clean_acc"], r["clean_target"], r["target"]) == pytest.approx((0.995, 0.005, (5 + moved) / 1000))
        assert r["target_upper"] == pytest.approx(upper, abs=1e-7)
        assert r["target_excess"] == pytest.approx(upper - 0.005, abs=1e-7)
        assert r["keep_ratio"] == pytest.approx((995 - moved) / 995)
        assert r["imperceptible"] is ok
    assert (experiments.JUDGE_MIN_KEEP, experiments.JUDGE_MAX_EXCESS) == (0.95, 0.02)


def test_judge_keep_test_is_inclusive():
    """Three flat classes; images of class 0 moved to class 2 (not the target 1): keeping 95.0% passes,
    94.9% fails, and the target test is untouched (no target reads)."""
    judge = experiments.PerceptibilityJudge(_flat([0.1, 0.5, 0.9]), torch.tensor([0, 1, 2]), kind="knn")
    originals = _flat([0.1] * 1000)
    labels, targets = torch.zeros(1000, dtype=torch.long), torch.ones(1000, dtype=torch.long)
    for moved, ok in ((50, True), (51, False)):
        perturbed = originals.clone()
        perturbed[:moved] = 0.9
        r = judge.report(originals, perturbed, labels, targets)
        assert (r["keep_ratio"], r["target"], r["imperceptible"]) == (pytest.approx(1 - moved / 1000), 0.0, ok)


def test_judge_keep_ratio_is_relative_to_its_clean_accuracy():
    """The judge gets 3 of 4 originals right; the perturbation changes nothing: keep 75%, ratio 1."""
    judge = experiments.PerceptibilityJudge(_flat([0.2, 0.8]), torch.tensor([0, 1]), kind="knn")
    originals, labels = _flat([0.1, 0.3, 0.9, 0.4]), torch.tensor([0, 0, 1, 1])  # 0.4 looks dark: wrong
    r = judge.report(originals, originals, labels, (labels + 1) % 2)
    assert (r["clean_acc"], r["keep"], r["keep_ratio"], r["rel_norm"]) == (0.75, 0.75, 1.0, 0.0)
    assert r["target"] == r["clean_target"] == 0.25  # the misread image is read as its (wrong) target


def test_both_judges_must_pass():
    """A perturbation that moves only the 1-NN judge: a clean "1" sits at brightness 0.3 among the "0"s
    (0-0.4); logistic regression draws one boundary near 0.45 and still reads 0.3 as a "0", but the
    nearest clean image of a digit pushed to 0.3 is that "1", so the set is visible."""
    fit = _flat([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.4, 0.3, 0.6, 0.7, 0.8, 0.9, 1.0])
    fit_labels = torch.tensor([0] * 8 + [1] * 6)
    originals = _flat([0.1] * 1000)
    labels, targets = torch.zeros(1000, dtype=torch.long), torch.ones(1000, dtype=torch.long)
    perturbed = originals.clone()
    perturbed[:100] = 0.3
    judged = experiments.judge_perturbations(originals, perturbed, labels, targets, fit, fit_labels)
    assert set(judged) == set(experiments.JUDGE_KINDS)
    assert judged["logistic"]["target"] == 0.0 and judged["logistic"]["imperceptible"]
    assert judged["knn"]["target"] == 0.1 and not judged["knn"]["imperceptible"]
    assert experiments.imperceptible(judged) is False
    assert experiments.imperceptible({k: dict(r, imperceptible=True) for k, r in judged.items()}) is True


def test_linear_leakage_reads_visible_label_evidence():
    """Labels that follow the brightness are learned (100% on clean test images); the same images with
    "dark means 1" labels teach the opposite (0%)."""
    images, test = _flat([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), _flat([0.15, 0.25, 0.75, 0.85])
    y, y_test = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 1, 1])
    assert experiments.linear_leakage(images, y, test, y_test) == 1.0
    assert experiments.linear_leakage(images, 1 - y, test, y_test) == 0.0
    with pytest.raises(ValueError, match="differ"):
        experiments.linear_leakage(images, y, _flat([0.1], size=8), torch.tensor([0]))


def test_knn_judge_is_the_nearest_clean_image():
    gen = torch.Generator().manual_seed(0)
    fit, labels = torch.rand(30, 3, 4, 4, generator=gen), torch.randint(0, 5, (30,), generator=gen)
    queries = torch.rand(20, 3, 4, 4, generator=gen)
    nearest = torch.cdist(queries.flatten(1), fit.flatten(1)).argmin(1)
    assert torch.equal(experiments.PerceptibilityJudge(fit, labels, kind="knn").predict(queries), labels[nearest])


def test_judge_bad_input():
    judge = experiments.PerceptibilityJudge(_flat([0.2, 0.8]), torch.tensor([0, 1]))
    judge.report(_flat([0.2]), _flat([0.3]), torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="kind"):
        experiments.PerceptibilityJudge(_flat([0.2, 0.8]), torch.tensor([0, 1]), kind="svm")
    with pytest.raises(ValueError, match="fit on images of shape"):
        judge.predict(_flat([0.2], size=8))
    with pytest.raises(ValueError, match="differ in shape"):
        judge.report(_flat([0.2, 0.3]), _flat([0.3]), torch.tensor([0, 0]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        judge.predict(_flat([2.0]))


# --------------------------------------------------------------------------
# Data, models, Lab 2's pgd
# --------------------------------------------------------------------------
def test_load_dataset_digits_at_the_default_size():
    (x_train, y_train), (x_test, y_test), names = experiments.load_dataset("digits", size=16, test_limit=50)
    assert x_train.shape == (1347, 3, 16, 16) and x_test.shape == (50, 3, 16, 16) and names == data.DIGIT_CLASSES
    assert torch.equal(y_train, data.load_digits("train")[1])
    assert float(x_train.min()) >= 0 and float(x_train.max()) <= 1
    with pytest.raises(ValueError, match="dataset"):
        experiments.load_dataset("mnist")


def test_cifar10_offline_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(NetworkRequired, match="CIFAR-10"):
        experiments.run_experiment("cifar10", "det", root=str(tmp_path), verbose=False)


def test_make_model_is_seeded():
    a, b = (
        experiments.make_model("small_cnn", 7, width=4, seed=3),
        experiments.make_model("small_cnn", 7, width=4, seed=3),
    )
    assert a.num_classes == 7 and all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert experiments.make_model("resnet9", 10, width=4).name == "resnet9"
    with pytest.raises(ValueError, match="model"):
        experiments.make_model("vgg", 10)
    with pytest.raises(TypeError, match="seed"):
        experiments.make_model("small_cnn", 10, seed=1.5)


def test_missing_lab2_gives_a_clear_error(monkeypatch):
    """With Lab 2's pgd still a stub, Lab 5 says so instead of blaming itself."""
    import labkit.adversarial

    def stub(*args, **kwargs):
        raise NotImplementedError("pgd() is not implemented yet")

    monkeypatch.setattr(labkit.adversarial, "pgd", stub)
    with pytest.raises(RuntimeError, match="Lab 2"):
        relabel.lab2_pgd()(torch.nn.Identity(), torch.rand(2, 3, 4, 4), 0, eps=0.1, step_size=0.1, steps=1)


@pytest.mark.parametrize(
    "path", ["solutions/labkit/robust_features.py", "labkit/robust_features.py", "labkit/relabel.py"]
)
def test_no_import_cycle(path):
    """The pipeline imports the exercise module at call time; nothing it imports may import the pipeline back."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {
        f"labkit.{a.name}"
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module == "labkit"
        for a in n.names
    }
    assert "labkit.experiments" not in imported


# --------------------------------------------------------------------------
# The whole experiment: digits, the leakage control, the CIFAR-10 path on CIFAR-shaped data
# --------------------------------------------------------------------------
TINY = dict(train_limit=120, test_limit=60, epochs=2, steps=3, width=4)


def test_run_experiment_digits_is_deterministic_and_judged(reference):
    a = experiments.run_experiment("digits", "det", seed=0, verbose=False, exercises=reference, **TINY)
    b = experiments.run_experiment("digits", "det", seed=0, verbose=False, exercises=reference, **TINY)
    for key in ("clean_acc", "attack_success", "transfer_acc"):
        assert 0.0 <= a[key] <= 1.0
        assert a[key] == b[key], key
    assert a["judge"] == b["judge"]
    assert a["chance"] == pytest.approx(0.1)
    assert a["adv_images"].shape == (120, 3, 16, 16)
    assert torch.equal(a["adv_labels"], (a["train"][1] + 1) % 10)
    delta = a["adv_images"] - a["train"][0]
    assert float(delta.flatten(1).norm(dim=1).max()) <= a["config"]["eps"] + 1e-4
    rel = delta.flatten(1).norm(dim=1) / a["train"][0].flatten(1).norm(dim=1)
    assert a["judge"]["logistic"]["rel_norm"] == pytest.approx(float(rel.median()), rel=1e-5)
    for kind in experiments.JUDGE_KINDS:  # both judges, fit on the clean test split, judge the training images
        judge = experiments.PerceptibilityJudge(*a["test"], kind=kind)
        assert a["judge"][kind] == judge.report(a["train"][0], a["adv_images"], a["train"][1], a["adv_labels"])
    assert a["imperceptible"] == experiments.imperceptible(a["judge"])
    assert a["linear_acc"] == experiments.linear_leakage(a["adv_images"], a["adv_labels"], *a["test"])
    assert not a["transfer_model"].training and not a["source_model"].training
    reused = experiments.run_experiment(
        "digits", "rand", seed=0, verbose=False, exercises=reference, source=a["source_model"], **TINY
    )
    fresh = experiments.run_experiment("digits", "rand", seed=0, verbose=False, exercises=reference, **TINY)
    assert reused["source_model"] is a["source_model"]
    assert (reused["clean_acc"], reused["transfer_acc"]) == (fresh["clean_acc"], fresh["transfer_acc"])


def test_the_fresh_model_has_its_own_recipe(reference, monkeypatch):
    """The source trains with (epochs, lr, batch_size), the model trained on D_det with their ``transfer_``
    twins; overriding ``epochs`` alone sets it for both trainings (so quick runs stay quick)."""
    recipes, train = [], reference.train_classifier

    def spy(model, x, y, **kwargs):
        recipes.append({k: kwargs[k] for k in ("epochs", "lr", "batch_size")})
        return train(model, x, y, **kwargs)

    monkeypatch.setattr(reference, "train_classifier", spy)
    tiny = dict(TINY, epochs=1)
    run = dict(verbose=False, exercises=reference)
    fresh = dict(transfer_epochs=2, transfer_lr=0.01, transfer_batch_size=16)
    ensemble = experiments.run_experiment("digits", "det", sources=2, **fresh, **run, **tiny)
    d = experiments.DEFAULTS["digits"]
    source = dict(epochs=1, lr=d["lr"], batch_size=d["batch_size"])
    assert recipes == [source] * 2 + [dict(epochs=2, lr=0.01, batch_size=16)]
    assert isinstance(ensemble["source_model"], models.Ensemble)  # the whole pipeline runs on an ensemble too
    recipes.clear()
    experiments.run_experiment("digits", "det", **run, **tiny)
    transfer = dict(epochs=1, lr=d["transfer_lr"], batch_size=d["transfer_batch_size"])
    assert recipes == [source] * d["sources"] + [transfer]


@pytest.mark.parametrize("sources", [1, 3])
def test_train_source_trains_seeded_members_and_averages_them(sources, monkeypatch):
    """``sources`` models from seeds seed, seed+100, ...; one is returned as is, several as their Ensemble."""
    calls = []

    class Exercises:  # a stand-in that records and does not train
        @staticmethod
        def train_classifier(model, x, y, **kwargs):
            calls.append((kwargs["seed"], kwargs["epochs"], model.name))
            return model.eval()

    x, y = torch.rand(6, 3, 8, 8), torch.arange(6) % 3
    cfg = dict(experiments.DEFAULTS["digits"], sources=sources, width=4, device="cpu")
    source = experiments.train_source(x, y, cfg, num_classes=3, seed=7, exercises=Exercises)
    assert calls == [(7 + 100 * k, cfg["epochs"], "small_cnn") for k in range(sources)]
    if sources == 1:
        assert source.name == "small_cnn"
        assert torch.equal(source.net[0].weight, experiments.make_model("small_cnn", 3, 4, seed=7).net[0].weight)
    else:
        assert isinstance(source, models.Ensemble) and len(source.members) == sources and not source.training
        first = source.members[0].net[0].weight
        assert torch.equal(first, experiments.make_model("small_cnn", 3, 4, seed=7).net[0].weight)
        assert not torch.equal(first, source.members[1].net[0].weight)
    with pytest.raises(ValueError, match="sources"):
        experiments.train_source(x, y, dict(cfg, sources=0), num_classes=3, exercises=Exercises)


def test_training_recipe_falls_back_to_the_source_s():
    cfg = dict(epochs=10, lr=0.1, batch_size=32, transfer_epochs=60, transfer_lr=None, transfer_batch_size=64)
    assert experiments.training_recipe(cfg) == dict(epochs=10, lr=0.1, batch_size=32)
    assert experiments.training_recipe(cfg, "transfer") == dict(epochs=60, lr=0.1, batch_size=64)
    with pytest.raises(ValueError, match="source"):
        experiments.training_recipe(cfg, "fresh")


def test_run_seeds_reuses_each_seed_s_source_and_summarizes(reference):
    """Two seeds, both modes: the same numbers as run_experiment, each seed's source trained once,
    and the summary is mean_interval over the seeds."""
    trained = []
    train_source = experiments.train_source

    def spy(*args, **kwargs):
        trained.append(kwargs.get("seed", args[4] if len(args) > 4 else None))
        return train_source(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "train_source", spy)
        out = experiments.run_seeds("digits", seeds=[0, 3], exercises=reference, **TINY)
    assert trained == [0, 3]
    assert [(r["seed"], r["mode"]) for r in out["runs"]] == [(0, "det"), (0, "rand"), (3, "det"), (3, "rand")]
    alone = experiments.run_experiment("digits", "rand", seed=3, verbose=False, exercises=reference, **TINY)
    last = out["runs"][-1]
    assert {k: last[k] for k in ("transfer_acc", "linear_acc", "judge", "imperceptible")} == {
        k: alone[k] for k in ("transfer_acc", "linear_acc", "judge", "imperceptible")
    }
    for mode in experiments.MODES:
        mine = [r for r in out["runs"] if r["mode"] == mode]
        summary = out["summary"][mode]
        assert {k: summary[k] for k in ("n", "mean", "se", "low", "high")} == experiments.mean_interval(
            r["transfer_acc"] for r in mine
        )
        assert summary["linear"] == experiments.mean_interval(r["linear_acc"] for r in mine)
        assert summary["imperceptible"] == sum(r["imperceptible"] for r in mine)
    with pytest.raises(ValueError, match="distinct"):
        experiments.run_seeds("digits", seeds=[1, 1], exercises=reference, **TINY)


def test_run_seeds_in_threads_gives_the_same_runs_and_reuses_known_ones(reference):
    """workers=2 changes the time, not the numbers; a known run is kept as it is and not run again."""
    numbers = ("seed", "mode", "clean_acc", "attack_success", "transfer_acc", "linear_acc", "judge", "imperceptible")
    alone = experiments.run_seeds("digits", seeds=[0, 3, 5], exercises=reference, **TINY)
    known = dict(alone["runs"][2])  # seed 3, det
    ran = []
    run_experiment = experiments.run_experiment

    def spy(dataset, mode, seed, *args, **kwargs):
        ran.append((seed, mode))
        return run_experiment(dataset, mode, seed, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "run_experiment", spy)
        both = experiments.run_seeds(
            "digits", seeds=[0, 3, 5], exercises=reference, known_runs=[known], workers=2, **TINY
        )
    assert sorted(ran) == [(0, "det"), (0, "rand"), (3, "rand"), (5, "det"), (5, "rand")]
    assert both["runs"][2] is known
    assert [{k: r[k] for k in numbers} for r in both["runs"]] == [{k: r[k] for k in numbers} for r in alone["runs"]]
    assert both["summary"] == alone["summary"]
    with pytest.raises(ValueError, match="known run"):
        experiments.run_seeds("digits", seeds=[0], exercises=reference, known_runs=[{"seed": 0}], **TINY)


def test_concurrently_keeps_the_order():
    assert experiments.concurrently(lambda x: x * x, range(7), workers=3) == [x * x for x in range(7)]
    with pytest.raises(ValueError):
        experiments.concurrently(abs, [1], workers=0)


def test_control_keeps_the_images(reference):
    r = experiments.run_experiment("digits", "rand", seed=1, verbose=False, perturb=False, exercises=reference, **TINY)
    assert torch.equal(r["adv_images"], r["train"][0])
    assert bool((r["adv_labels"] != r["train"][1]).all())
    for report in r["judge"].values():
        assert report["rel_norm"] == 0.0 and report["keep_ratio"] == 1.0
        assert report["target"] == report["clean_target"]


def test_cifar10_path_end_to_end_on_cifar_shaped_data(reference, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    fake = {
        "train": (torch.rand(40, 3, 32, 32, generator=gen), torch.randint(0, 10, (40,), generator=gen)),
        "test": (torch.rand(20, 3, 32, 32, generator=gen), torch.randint(0, 10, (20,), generator=gen)),
    }
    calls = []

    def fake_cifar(split="train", root=None, limit=None):
        calls.append(split)
        x, y = fake[split]
        return (x[:limit], y[:limit]) if limit else (x, y)

    monkeypatch.setattr(data, "load_cifar10", fake_cifar)
    r = experiments.run_experiment(
        "cifar10",
        "rand",
        seed=0,
        verbose=False,
        exercises=reference,
        epochs=1,
        steps=2,
        width=4,
        batch_size=16,
        attack_batch_size=16,
        device="cpu",
    )
    assert sorted(calls) == ["test", "train"]
    assert r["source_model"].name == "resnet9" and r["class_names"] == data.CIFAR10_CLASSES
    assert r["adv_images"].shape == (40, 3, 32, 32)
    assert float((r["adv_images"] - fake["train"][0]).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-4
    assert 0.0 <= r["transfer_acc"] <= 1.0
    assert set(r["judge"]) == set(experiments.JUDGE_KINDS) and 0.0 <= r["linear_acc"] <= 1.0
    paper = {k: experiments.DEFAULTS["cifar10"][k] for k in ("eps", "step_size", "steps", "augment")}
    assert paper == dict(eps=0.5, step_size=0.1, steps=100, augment=True)  # Ilyas et al.'s settings


def test_run_experiment_bad_input():
    with pytest.raises(ValueError, match="dataset"):
        experiments.run_experiment("mnist")
    with pytest.raises(ValueError, match="mode"):
        experiments.run_experiment("digits", "random")
    with pytest.raises(TypeError, match="unknown override"):
        experiments.run_experiment("digits", "det", epsilon=1.0)
    with pytest.raises(TypeError, match="seed"):
        experiments.run_experiment("digits", "det", seed="0")
