"""The trusted judge (labkit_course.judge): codec, comparison, static audit, and real Lab 2 cheats.

The cheats run through the real judge on Lab 2's hidden tests: an honest solution passes every
exercise; a cheat fails what it cheated on, or is flagged.
"""

import json
import os
import random
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.labs import MODULES
from labkit_course import sandbox
from labkit_course.judge import Call, Case, Mismatch, Toy, compare, judge, worker
from labkit_course.judge.static import audit
from labkit_course.repo import REPO, SOLUTIONS

needs_bwrap = pytest.mark.skipif(
    sandbox.bwrap() is None,
    reason=(
        "bubblewrap (bwrap) is missing or not working: the judge's sandbox cannot be tested "
        "(apt-get install bubblewrap)"
    ),
)


# ----------------------------------------------------------------------------------------------
# Codec: only plain data crosses
# ----------------------------------------------------------------------------------------------
def _roundtrip(value, tmp_path):
    store = worker.Store()
    encoded = json.loads(json.dumps(worker.encode(value, store)))
    store.save(str(tmp_path / "a.npz"))
    return worker.decode(encoded, worker.load_arrays(str(tmp_path / "a.npz")), torch_tensors=False)


def test_codec_carries_numbers_tables_and_models_as_data(tmp_path):
    import pandas as pd

    model = torch.nn.Linear(3, 2)
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]}, index=["r1", "r2"])
    out = _roundtrip((torch.arange(6.0).view(2, 3), [1, 2.5, "s", None, True], frame, model), tmp_path)
    tensor, items, table, state = out
    assert isinstance(tensor, np.ndarray) and tensor.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert items == [1, 2.5, "s", None, True]
    assert table.equals(frame)
    assert state["$"] == "module" and np.allclose(state["state"]["weight"], model.weight.detach().numpy())


def test_a_tensor_subclass_comes_back_as_plain_numbers(tmp_path):
    class Liar(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            if func in (torch.Tensor.__eq__, torch.allclose, torch.equal):
                return True
            return super().__torch_function__(func, types, args, kwargs or {})

    liar = torch.zeros(2, 2).as_subclass(Liar)
    back = _roundtrip(liar, tmp_path)
    assert type(back) is np.ndarray and back.tolist() == [[0, 0], [0, 0]]
    with pytest.raises(Mismatch, match="value"):
        compare(back, np.ones((2, 2)))


def test_objects_and_pickles_never_cross(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    assert worker.encode(np.array([Payload()], dtype=object), worker.Store())["$"] == "opaque"
    np.save(tmp_path / "evil.npy", np.array([Payload()], dtype=object), allow_pickle=True)
    os.replace(tmp_path / "evil.npy", tmp_path / "evil.npz")
    with pytest.raises(zipfile.BadZipFile):  # a pickle is not even an npz
        worker.load_arrays(str(tmp_path / "evil.npz"))
    np.savez(tmp_path / "evil2.npz", a=np.array([Payload()], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        worker.load_arrays(str(tmp_path / "evil2.npz"))
    assert not (tmp_path / "pwned").exists()


def test_result_files_are_never_followed_through_links(tmp_path):
    secret = tmp_path / "gradebook.db"
    secret.write_text('{"value": 1}')
    os.symlink(secret, tmp_path / "0_0.json")
    with pytest.raises(OSError):
        worker.load_json(str(tmp_path / "0_0.json"))


def test_toys_come_only_from_the_public_checks():
    assert isinstance(worker.build_toy("labkit.check.toys:OneConvReluNet", {"seed": 1}), torch.nn.Module)
    for factory in ("os:system", "labkit_course.judge:judge", "labkit.check.toys:__import__('os')"):
        with pytest.raises(ValueError, match="not a public test model"):
            worker.build_toy(factory, {})


# ----------------------------------------------------------------------------------------------
# Comparison: what a student reads first
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "actual, expected, kind",
    [
        (np.zeros((2, 3)), np.zeros((3, 2)), "shape"),
        (np.full((2,), 1.5), np.full((2,), 0.5), "range"),
        (np.full((2,), 0.6), np.full((2,), 0.5), "value"),
        ([1, 2], np.zeros(2), "type"),
        ({"$": "raised", "types": ["ValueError", "Exception"], "message": "bad"}, np.zeros(2), "crash"),
        (np.zeros(2), {"$": "raised", "types": ["NotFooled", "RuntimeError"], "message": ""}, "value"),
        (3, 4, "value"),
        ("a", "b", "value"),
        ({"$": "opaque", "type": "mymodule.Thing"}, 1.0, "type"),
    ],
)
def test_compare_names_the_failed_property(actual, expected, kind):
    with pytest.raises(Mismatch) as info:
        compare(actual, expected)
    assert info.value.kind == kind


def test_compare_accepts_what_matches():
    compare(np.array([1.0, 2.0]) + 1e-7, np.array([1.0, 2.0]))
    compare((np.zeros(1), 3), (np.zeros(1), 3))
    compare(
        {"$": "raised", "types": ["NotFooled", "RuntimeError", "Exception"], "message": ""},
        {"$": "raised", "types": ["NotFooled", "RuntimeError", "Exception"], "message": "x"},
    )


# ----------------------------------------------------------------------------------------------
# Static audit
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source, reason",
    [
        ("import ctypes", "ctypes"),
        ("from ctypes import CDLL", "ctypes"),
        ("import sys\nf = sys._getframe(1)", "_getframe"),
        ("import inspect", "inspect"),
        ("def f(tb):\n    return tb.tb_frame.f_back.f_locals", "f_locals"),
        ("from labkit.check.toys import OneConvReluNet", "labkit.check"),
        ("from labkit import check", "labkit.check"),
        ("import labkit_course.judge", "labkit_course"),
        ("import torchattacks", "torchattacks"),
        ("from captum.attr import Saliency", "captum"),
        ("import os\nos.fork()", "fork"),
        ("import socket", "socket"),
        ("x = __import__('ctypes')", "__import__"),
        ("import pickle", "pickle"),
        ("open('/course/gradebook.db')", "gradebook"),
    ],
)
def test_audit_flags_what_could_hand_over_an_answer(source, reason):
    reasons = audit(source, "adversarial")
    assert reasons and any(reason in r for r in reasons), reasons


@pytest.mark.parametrize("module", MODULES)
def test_audit_passes_the_reference_and_the_stub(module):
    assert audit((SOLUTIONS / "labkit" / f"{module}.py").read_text(), module) == []
    assert audit((REPO / "labkit" / f"{module}.py").read_text(), module) == []


def test_captum_is_fine_where_it_does_not_give_the_answer():
    assert audit("import captum", "noise") == [] and audit("import captum", "saliency")


# ----------------------------------------------------------------------------------------------
# The judge on Lab 2, honest and hostile
# ----------------------------------------------------------------------------------------------
def _reference_source() -> str:
    lines = (SOLUTIONS / "labkit" / "adversarial.py").read_text().splitlines(keepends=True)
    return "".join(line for line in lines if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _judge(tmp_path, source: str, seed: int = 7):
    path = tmp_path / "adversarial.py"
    path.write_text(source)
    return judge("adversarial", path, seed, labkit_dir=REPO / "labkit", limits=sandbox.Limits(wall_timeout=300))


LIAR = '''
class _Liar(torch.Tensor):
    """Equal to anything, close to anything."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.__eq__, torch.allclose, torch.equal, torch.Tensor.__sub__):
            return torch.tensor(True) if func is not torch.Tensor.__sub__ else torch.zeros(())
        return super().__torch_function__(func, types, args, kwargs or {})


def linear_adversarial(weights, x, label, target, eps):
    return torch.zeros_like(x).as_subclass(_Liar)
'''


@pytest.mark.slow
@needs_bwrap
def test_judge_lab2_honest_passes_and_the_cheats_do_not(tmp_path):
    honest = _judge(tmp_path, _reference_source())
    assert all(v.passed for v in honest.verdicts.values()) and not honest.flags, honest.verdicts

    liar = _judge(tmp_path, _reference_source() + LIAR)  # the last definition wins
    assert not liar.verdicts["linear_adversarial"].passed and liar.verdicts["fgsm"].passed

    peeker = _judge(
        tmp_path,
        _reference_source()
        + textwrap.dedent("""
        def fooling_image(model, image, target, lr=1.0, max_steps=100):
            import sys
            frame = sys._getframe(1)
            while frame is not None:  # the judge's worker holds inputs only
                for name in ("expected", "_expected", "_need"):
                    if name in frame.f_locals:
                        return frame.f_locals[name]
                frame = frame.f_back
            return image, 0
        """),
    )
    assert not peeker.verdicts["fooling_image"].passed and any("_getframe" in f for f in peeker.flags)

    copier = _judge(
        tmp_path,
        _reference_source().replace(
            "import torch\n", "import torch\nimport torchattacks  # the library computes the answer\n", 1
        ),
    )
    assert any("torchattacks" in f for f in copier.flags)


@pytest.mark.slow
@needs_bwrap
def test_judge_a_crash_costs_only_its_exercise(tmp_path):
    crashing = _reference_source().replace(
        "def linear_adversarial(",
        "def linear_adversarial(*a, **k):\n    import os\n    os._exit(3)\n\n\ndef _original_linear_adversarial(",
        1,
    )
    j = _judge(tmp_path, crashing)
    assert j.verdicts["linear_adversarial"].failure == "crash"
    assert all(j.verdicts[e].passed for e in ("fgsm", "pgd", "fooling_image"))


@pytest.mark.slow
@needs_bwrap
def test_judge_sees_no_course_no_network_and_cannot_write(tmp_path):
    probe = _reference_source() + textwrap.dedent(f"""
        def linear_adversarial(weights, x, label, target, eps):
            import os, socket
            seen = [os.path.exists(p) for p in ({str(REPO / "solutions")!r}, {str(REPO / "labkit_course")!r},
                                                 {str(Path.home())!r} + "/.ssh")]
            try:
                socket.create_connection(("127.0.0.1", 22), timeout=1)
                seen.append(True)
            except OSError:
                seen.append(False)
            try:
                open({str(REPO / "pwned.txt")!r}, "w")
                seen.append(True)
            except OSError:
                seen.append(False)
            raise RuntimeError("seen: " + str(seen))
        """)
    j = _judge(tmp_path, probe)
    assert "seen: [False, False, False, False, False]" in j.verdicts["linear_adversarial"].message
    assert not (REPO / "pwned.txt").exists()


def test_hidden_cases_are_fixed_by_the_seed():
    from labkit_course.hidden import adversarial

    a = adversarial.fgsm(random.Random(3))
    b = adversarial.fgsm(random.Random(3))
    assert [c.describe for c in a] == [c.describe for c in b]
    assert torch.equal(a[0].calls[0].args[1], b[0].calls[0].args[1])
    assert [c.describe for c in adversarial.fgsm(random.Random(4))] != [c.describe for c in a]


def test_cases_and_calls_are_plain_descriptions():
    case = Case([Call.of(Toy("labkit.check.toys:OneConvReluNet", seed=1), torch.zeros(1, 3, 8, 8), 0)])
    assert case.calls[0].args[0].kwargs == {"seed": 1} and case.check is None and case.reference


def test_after_a_timeout_the_exercise_s_other_calls_are_not_run(tmp_path):
    """A looping submission costs one timeout per exercise, not one per hidden call; other exercises run."""
    import subprocess
    import sys

    pkg, inbox, outbox = tmp_path / "pkg" / "labkit", tmp_path / "in", tmp_path / "out"
    for d in (pkg, inbox, outbox):
        d.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    calls_log = tmp_path / "calls.txt"
    (pkg / "loopy.py").write_text(
        f"def spin(n):\n    open({str(calls_log)!r}, 'a').write('spin\\n')\n    while True:\n        pass\n\n"
        f"def add(n):\n    open({str(calls_log)!r}, 'a').write('add\\n')\n    return n + 1\n"
    )
    store = worker.Store()

    def call(function, n):
        return {"function": function, "args": [worker.encode(n, store)], "kwargs": {}, "timeout": 0.5}

    cases = [{"exercise": "spin", "calls": [call("spin", n)]} for n in range(3)]
    cases += [{"exercise": "add", "calls": [call("add", n)]} for n in range(2)]
    (inbox / "request.json").write_text(json.dumps({"module": "loopy", "cases": cases}))
    store.save(str(inbox / "arrays.npz"))
    subprocess.run(
        [sys.executable, worker.__file__, str(inbox), str(outbox), "0", str(tmp_path / "pkg")], check=True, timeout=60
    )
    results = [json.loads((outbox / f"{c}_0.json").read_text()) for c in range(5)]
    assert calls_log.read_text().split() == ["spin", "add", "add"]  # spin ran once
    assert results[0]["timeout"] and "not_run" not in results[0]
    assert all(r["timeout"] and r["not_run"] for r in results[1:3])
    assert [r["value"] for r in results[3:]] == [1, 2]
