"""Hidden tests of Lab 4 (noise probing): random inputs; the reference gives the answers.

Each function takes a ``random.Random`` (drawn from the per-student seed) and returns the cases
of one exercise. See :mod:`labkit_course.judge` for what a case is and how it is judged. The
models are the public checks' :class:`labkit.check.toys.PooledLinear` (no ImageNet network), and the
tables that ``summarize``/``class_counts`` read are random ``probe()``-shaped DataFrames.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import torch

from labkit_course.judge import Call, Case, Toy

EXERCISES = ("noise_images", "probe", "summarize", "class_counts", "maximize_confidence", "confidence_auroc")
TINY = "labkit.check.toys:PooledLinear"


def _gen(rng: random.Random) -> torch.Generator:
    return torch.Generator().manual_seed(rng.getrandbits(62))


def _np(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.getrandbits(62))


def noise_images(rng: random.Random) -> list[Case]:
    cases = []
    for kind in ("seed000", "uniform", "gaussian"):
        n, size, seed = rng.randint(1, 3), rng.randint(4, 23), rng.randrange(2**31)
        cases.append(
            Case(
                [Call.of(n, size, kind, seed)], atol=1e-6, rtol=0, describe=f'{n} images {size}x{size} of kind "{kind}"'
            )
        )
    size, seed = rng.randint(4, 12), rng.randrange(2**31)
    cases.append(
        Case(
            [Call.of(2, size, kind="seed000", seed=seed), Call.of(3, size, kind="seed000", seed=seed)],
            atol=1e-6,
            rtol=0,
            describe=f'"seed000" images {size}x{size}, 2 then 3 with the same seed',
        )
    )
    cases.append(
        Case(
            [Call.of(n=0, size=8, kind="uniform"), Call.of(n=2, size=8, kind="brown")],
            describe="n = 0, then an unknown kind (both should raise ValueError)",
        )
    )
    return cases


def probe(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for _ in range(3):
        models = {
            f"m{i}": Toy(TINY, num_classes=rng.randint(2, 49), seed=rng.randrange(1000), scale=0.5 + 4 * rng.random())
            for i in range(rng.randint(1, 3))
        }
        n = rng.randint(1, 11)
        x = torch.rand(n, 3, 8, 8, generator=g)
        cases.append(
            Case(
                [Call.of(models, x, batch_size=rng.randint(1, 4))],
                atol=1e-5,
                rtol=1e-4,
                describe=f"{len(models)} small models, {n} images 8x8",
            )
        )
    x = torch.rand(2, 3, 8, 8, generator=g)
    cases.append(Case([Call.of({}, x)], describe="an empty models dict (should raise ValueError)"))
    return cases


def _probe_frame(rng: random.Random, n_models: int, n_images: int, n_classes: int) -> pd.DataFrame:
    gen = _np(rng)
    models = [f"net{i}" for i in rng.sample(range(10), n_models)]  # not in sorted order
    df = pd.DataFrame(
        {
            "model": np.repeat(models, n_images),
            "image": np.tile(np.arange(n_images), n_models),
            "class_index": gen.integers(0, n_classes, n_images * n_models),
            "confidence": gen.random(n_images * n_models),
        }
    )
    df["class_name"] = "c" + df["class_index"].map(str)
    return df


def summarize(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(3):
        m, n = rng.randint(1, 4), rng.randint(2, 29)
        cases.append(
            Case(
                [Call.of(_probe_frame(rng, m, n, 5))],
                atol=1e-9,
                rtol=1e-9,
                describe=f"a probe() table of {m} models x {n} images",
            )
        )
    return cases


def class_counts(rng: random.Random) -> list[Case]:
    cases = []
    for _ in range(3):
        m, n, top = rng.randint(1, 3), rng.randint(5, 59), rng.randint(1, 5)
        cases.append(
            Case(
                [Call.of(_probe_frame(rng, m, n, 8), top=top)],
                describe=f"a probe() table of {m} models x {n} images, top={top}",
            )
        )
    m, n = rng.randint(1, 3), rng.randint(5, 30)
    cases.append(
        Case([Call.of(_probe_frame(rng, m, n, 4))], describe=f"a probe() table of {m} models x {n} images, default top")
    )
    return cases


def maximize_confidence(rng: random.Random) -> list[Case]:
    g = _gen(rng)
    cases = []
    for default_target in (False, False, True):
        c = rng.randint(3, 29)
        model = Toy(TINY, num_classes=c, seed=rng.randrange(1000), scale=1.0)
        n = rng.randint(1, 3)
        x = torch.rand(n, 3, 8, 8, generator=g)
        kw = dict(steps=rng.randint(1, 11), lr=rng.uniform(0.005, 0.1))
        if not default_target:
            kw["target"] = torch.randint(0, c, (n,), generator=g)
        cases.append(
            Case(
                [Call.of(model, x, **kw)],
                atol=1e-5,
                rtol=1e-4,
                describe=f"a small model, {n} images, {kw['steps']} steps"
                + (", the default target" if default_target else ""),
            )
        )
    model = Toy(TINY, num_classes=5, seed=rng.randrange(1000))
    cases.append(
        Case(
            [Call.of(model, torch.rand(2, 3, 8, 8, generator=g), target=torch.tensor([1, 2, 3]), steps=1)],
            describe="3 targets for 2 images (should raise ValueError)",
        )
    )
    return cases


def confidence_auroc(rng: random.Random) -> list[Case]:
    gen = _np(rng)
    cases = []
    for k in range(5):
        a, b = rng.randint(1, 39), rng.randint(1, 39)
        real, noise = gen.random(a).round(rng.randint(1, 2)), gen.random(b).round(rng.randint(1, 2))
        if k == 3:
            real, noise = real.tolist(), noise.tolist()
        elif k == 4:
            real, noise = torch.from_numpy(real), torch.from_numpy(noise)
        cases.append(
            Case(
                [Call.of(real, noise)],
                atol=1e-12,
                rtol=0,
                describe=f"{a} photos and {b} noise images, with ties"
                + (" (lists)" if k == 3 else " (tensors)" if k == 4 else ""),
            )
        )
    cases.append(Case([Call.of([], [0.1])], describe="no photos (should raise ValueError)"))
    return cases
