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
    return worker.decode_result(encoded, worker.load_arrays(str(tmp_path / "a.npz")))


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


def test_a_result_never_picks_code_for_the_judge_to_run():
    """Toys and attributes are the judge's request vocabulary; in a result they are opaque data."""
    huge = {"$": "dict", "items": [["num_classes", 10**8]]}
    for forged in (
        {"$": "toy", "factory": "labkit.check.toys:OneConvReluNet", "kwargs": huge},
        {"$": "attr", "arg": 0, "path": "__class__.__init__"},
        {"$": "list", "items": [{"$": "toy", "factory": "labkit.check.toys:tiny_cnn", "kwargs": {}}]},
    ):
        decoded = worker.decode_result(forged, {}, worker.Budget(2**20))
        opaque = decoded[0] if isinstance(decoded, list) else decoded
        assert opaque["$"] == "opaque"
        with pytest.raises(Mismatch, match="type"):
            compare(decoded, np.zeros(2))


def test_decoding_is_bounded_by_bytes_per_reference(tmp_path):
    """A small JSON that names one array many times is as big as all the copies it stands for."""
    store = worker.Store()
    value = worker.encode(np.zeros((256, 256)), store)  # 512 KB
    store.save(str(tmp_path / "a.npz"))
    arrays = worker.load_arrays(str(tmp_path / "a.npz"), worker.Budget(2**20))
    bomb = {"$": "list", "items": [value] * 1000}
    with pytest.raises(worker.TooLarge):
        worker.decode_result(bomb, arrays, worker.Budget(64 * 2**20))
    assert len(worker.decode_result(bomb, arrays, worker.Budget(2**30))) == 1000
    with pytest.raises(worker.TooLarge):  # the arrays' own headers are read and charged before loading
        worker.load_arrays(str(tmp_path / "a.npz"), worker.Budget(2**18))


def test_array_headers_that_lie_about_their_size_are_refused(tmp_path):
    """An .npy header declaring a huge shape over a few bytes is charged its declared size."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (2**40,)
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as z:
        with z.open("a0.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\0" * 8)
    with pytest.raises(worker.TooLarge):
        worker.load_arrays(str(tmp_path / "a.npz"), worker.Budget(2**30))


def test_result_files_that_are_not_regular_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "0_0.json")  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(ValueError, match="regular"):
        worker.load_json(str(tmp_path / "0_0.json"))
    (tmp_path / "big.json").write_text("[" + "0," * 2**20 + "0]")
    with pytest.raises(worker.TooLarge):
        worker.load_json(str(tmp_path / "big.json"), worker.Budget(2**20))


def test_results_over_the_limits_fail_their_case_and_spend_nothing(tmp_path):
    """What the judge reads of one call: the JSON (capped), then its arrays (capped per reference),
    all counted against the submission's total; a refused result costs the total nothing."""
    from labkit_course.judge.verdicts import MAX_RESULT_JSON
    from labkit_course.judge.verdicts import Failed as _Failed
    from labkit_course.judge.verdicts import read_result as _read_result

    total = worker.Budget(2**30)
    (tmp_path / "0_0.json").write_text('{"value": [' + "0," * MAX_RESULT_JSON + "0]}")
    refs = {"$": "list", "items": [{"$": "tensor", "key": "a0"}] * 100}
    (tmp_path / "0_1.json").write_text(json.dumps({"value": refs}))
    np.savez(tmp_path / "0_1.npz", a0=np.zeros((1024, 1024)))  # 8 MB, named 100 times
    (tmp_path / "0_2.json").write_text(json.dumps({"value": {"$": "tensor", "key": "a0"}}))
    np.savez(tmp_path / "0_2.npz", a0=np.ones(3))
    for k in (0, 1):
        failed = _read_result(tmp_path, "", 0, k, total)
        assert isinstance(failed, _Failed) and "larger than the judge reads" in failed.mismatch.detail
    assert total.used == 0
    assert _read_result(tmp_path, "", 0, 2, total).tolist() == [1, 1, 1] and total.used > 0


def test_a_call_reads_up_to_its_cap_and_a_submission_up_to_its_total(tmp_path):
    """One 40 MB array, named once, is within a call's 64 MB; seven of them are over the 256 MB of a
    submission, so the seventh call's result is refused."""
    from labkit_course.judge.verdicts import MAX_DECODED_BYTES, MAX_RESULT_BYTES
    from labkit_course.judge.verdicts import Failed as _Failed
    from labkit_course.judge.verdicts import read_result as _read_result

    assert (MAX_RESULT_BYTES, MAX_DECODED_BYTES) == (64 * 2**20, 256 * 2**20)
    np.savez(tmp_path / "0_0.npz", a0=np.full(5 * 2**20, 0.5))  # 40 MB
    (tmp_path / "0_0.json").write_text(json.dumps({"value": {"$": "tensor", "key": "a0"}}))
    total = worker.Budget(MAX_DECODED_BYTES)
    for _ in range(6):
        assert _read_result(tmp_path, "", 0, 0, total).shape == (5 * 2**20,)
    failed = _read_result(tmp_path, "", 0, 0, total)
    assert isinstance(failed, _Failed) and "256 MB for a submission" in failed.mismatch.detail


def test_whatever_a_result_makes_judging_raise_is_that_exercise_s_failure():
    from labkit_course.judge.verdicts import judge_exercise as _judge_exercise

    def check(results, expected, calls):
        return 1 / results[0]  # a result of 0 makes this check raise ZeroDivisionError

    cases = [Case([Call.of(1)], check=check, reference=False), Case([Call.of(2)], check=check, reference=False)]
    request = [{"exercise": "f", "calls": [{"function": "f", "args": [1], "kwargs": {}}]}] * 2
    notes: list[str] = []
    verdict = _judge_exercise("f", cases, request, {}, None, lambda c, k: [0, 1][c], notes)
    assert not verdict.passed and verdict.cases_passed == 1 and verdict.failure == "type"
    assert "not of the form the docstring describes" in verdict.message
    assert notes and "ZeroDivisionError" in notes[0]  # the instructor sees what happened


def test_modules_are_never_seen_half_loaded(tmp_path):
    """Hidden tests and references loaded by many threads at once: each gets the module fully executed."""
    import threading

    from labkit_course.judge import hidden_tests, reference

    (tmp_path / "slow.py").write_text("import time\n\ntime.sleep(0.3)\nEXERCISES = ('a',)\n")
    barrier = threading.Barrier(8)
    seen, errors = [], []

    def load(loader):
        barrier.wait()
        try:
            seen.append(loader("slow", tmp_path).EXERCISES)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=load, args=([hidden_tests, reference][i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == [("a",)] * 8


def test_a_module_that_fails_to_load_is_not_kept(tmp_path):
    from labkit_course.repo import load_module

    (tmp_path / "broken.py").write_text("raise RuntimeError('half')\n")
    for _ in range(2):  # the second load runs it again: it is not left half-loaded in sys.modules
        with pytest.raises(RuntimeError, match="half"):
            load_module(tmp_path / "broken.py", "labkit_test_broken_module")


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
    compare(np.array([np.nan, 0.5, np.inf]), np.array([np.nan, 0.5, np.inf]))  # the same special values
    compare(np.array([1, 2]), np.array([1.0, 2.0]))  # numbers are numbers, int or float
    compare(np.array([True, False]), np.array([True, False]))
    compare(np.int64(3), 3)


@pytest.mark.parametrize(
    "actual, expected, kind",
    [
        (np.ones(3, dtype=bool), np.array([0.2, 0.7, 1.5]), "type"),  # all-True where floats are due
        (np.ones(3), np.array([True, True, True]), "type"),  # and the reverse
        (np.array([1 + 0j, 2]), np.array([1.0, 2.0]), "type"),  # complex: its real part is not the answer
        (np.array(["1.0"]), np.array([1.0]), "type"),
        (np.full(3, np.nan), np.array([0.2, 0.7, 1.5]), "value"),  # NaN is never "not different"
        (np.array([np.nan, 0.5]), np.array([np.inf, 0.5]), "value"),
        (np.array([0.5, 0.5]), np.array([np.nan, 0.5]), "value"),  # finite where the reference has NaN
        (np.array([np.inf, 2.0]), np.array([1.0, 2.0]), "value"),
        (10**400, 1.5, "value"),  # too large for a float: a failure, not an OverflowError
        (10**400, 3, "value"),
        ([10**400], np.array([1.0]), "type"),
        ((10**400, 1), (0.5, 1), "value"),
        (np.array([True]), 1.0, "type"),  # a one-element bool array is no number
        (float("nan"), 0.5, "value"),
        (np.zeros(2), None, "value"),  # an array where None is due (no ambiguous truth value)
        ({"a": 1.0, "b": 2.0}, {"a": 1.0}, "value"),
        ({"$": "module", "state": [1, 2]}, {"$": "module", "state": {"w": np.zeros(1)}}, "type"),
    ],
)
def test_compare_lets_no_garbage_through_and_never_raises_on_it(actual, expected, kind):
    with pytest.raises(Mismatch) as info:
        compare(actual, expected)
    assert info.value.kind == kind, info.value


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
        ("import importlib\nm = importlib.import_module('c' + 'types')", "computed name"),
        ("from importlib import import_module as im\nm = im(name)", "computed name"),
        ("import importlib\nm = importlib.import_module('ctypes')", "ctypes"),
        ("import numpy as np\nlib = np.ctypeslib.load_library('libc', '/lib')", "ctypeslib"),
        ("from numpy import ctypeslib", "ctypeslib"),
        ("import os\nos.spawnv(os.P_WAIT, '/bin/sh', ['sh'])", "os.spawnv"),
        ("import os as o\no.posix_spawnp('sh', ['sh'], {})", "os.posix_spawnp"),
        ("from os import execvp\nexecvp('sh', ['sh'])", "os.execvp"),
        ("import os\nf = getattr(os, 'sys' + 'tem')", "computed name"),
        ("import os\nf = getattr(os, 'system')", "os.system"),
        ("import signal\nsignal.setitimer(signal.ITIMER_REAL, 0)", "signal"),
        ("import json\njson.dump = lambda *a, **k: None", "replaces json.dump"),
        ("import json\nsetattr(json, 'dump', print)", "setattr(json, 'dump')"),
        ("import sys\nw = sys.modules['__main__']", "sys.modules"),
        ("import importlib.util as u\nspec = u.spec_from_file_location('m', 'x.py')", "importlib.util"),
        ("b = globals()['__builtins__']", "__builtins__"),
        ("import os\nos.kill(1, 9)", "os.kill"),
        ("from os import *\nsystem('sh')", "imports * from os"),
        ("import runpy\nrunpy.run_path('x.py')", "runpy"),
        ("import code\ncode.InteractiveInterpreter().runsource(s)", "code"),
        ("import torch\ntorch.ops.load_library('x.so')", "torch.ops.load_library"),
        ("from torch.utils.cpp_extension import load_inline", "cpp_extension"),
    ],
)
def test_audit_flags_what_could_hand_over_an_answer(source, reason):
    reasons = audit(source, "adversarial")
    assert reasons and any(reason in r for r in reasons), reasons


@pytest.mark.parametrize("module", MODULES)
def test_audit_passes_the_reference_and_the_stub(module):
    assert audit((SOLUTIONS / "labkit" / f"{module}.py").read_text(), module) == []
    assert audit((REPO / "labkit" / f"{module}.py").read_text(), module) == []


def test_audits_side_by_side_never_parse_at_once(monkeypatch):
    """`grade --workers 2` audits two submissions in two threads; CPython 3.11's ast.parse is not
    thread-safe (python/cpython#106905: "AST constructor recursion depth mismatch", which graded an
    honest submission "failed" with 0 points), so the audit parses one module at a time."""
    import ast
    import threading
    import time

    from labkit_course.judge import static

    inside, most, real = [0], [0], ast.parse

    def slow_parse(source, *args, **kwargs):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for the other thread to arrive
        inside[0] -= 1
        return real(source, *args, **kwargs)

    monkeypatch.setattr(static.ast, "parse", slow_parse)
    source = (SOLUTIONS / "labkit" / "adversarial.py").read_text()
    results = []
    threads = [threading.Thread(target=lambda: results.append(audit(source, "adversarial"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[]] * 4 and most[0] == 1


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


# ----------------------------------------------------------------------------------------------
# The trusted side's clock: per call, per exercise, per submission
# ----------------------------------------------------------------------------------------------
def _clocked(tmp_path, results: list[tuple[str, float]], calls, shares, budget: float = 60.0) -> str:
    """Run a stand-in worker that writes ``ready``, then each ``(stem, delay)`` result file after its
    delay and sleeps; return why the judge's clock killed it ("" if it ended on its own)."""
    import subprocess
    import sys
    import time

    from labkit_course.judge.run import Clock as _Clock

    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir(parents=True)
    outbox.mkdir()
    script = (
        "import sys, time, pathlib\nout = pathlib.Path(sys.argv[2])\n(out / 'ready').touch()\n"
        f"for stem, delay in {results!r}:\n    time.sleep(delay)\n    (out / (stem + '.json')).touch()\n"
        "time.sleep(float(sys.argv[3]))\n"
    )
    linger = "0" if len(results) == len(calls) else "60"
    argv = [sys.executable, "-c", script, str(inbox), str(outbox), linger]
    proc = subprocess.Popen(argv, start_new_session=True)  # as sandbox.run starts the worker
    clock = _Clock(inbox, outbox, calls, shares, time.perf_counter() + budget)
    clock.start()
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
        clock.stop()
    return clock.killed


def test_the_judge_kills_a_call_past_its_timeout_whatever_the_worker_does(tmp_path):
    calls = [("0_0", 0.2, "a"), ("0_1", 0.2, "a")]
    assert _clocked(tmp_path, [("0_0", 0.0)], calls, {"a": 60.0}) == "timeout"


def test_an_exercise_past_its_share_is_stopped_and_the_others_keep_theirs(tmp_path):
    """Calls each well inside their timeout, but together longer than their exercise's share."""
    calls = [(f"0_{k}", 5.0, "a") for k in range(20)] + [("1_0", 5.0, "b")]
    assert _clocked(tmp_path / "1", [(f"0_{k}", 0.2) for k in range(20)], calls, {"a": 1.0, "b": 60.0}) == "share"
    # 1.2 s for a, then 1.2 s for b: 2.4 s in all, each within its 2 s share
    calls = [(f"0_{k}", 5.0, "a") for k in range(4)] + [(f"1_{k}", 5.0, "b") for k in range(4)]
    results = [(stem, 0.3) for stem, _, _ in calls]
    assert _clocked(tmp_path / "2", results, calls, {"a": 2.0, "b": 2.0}) == ""


def test_the_judge_stops_a_submission_at_its_budget(tmp_path):
    calls = [(f"0_{k}", 5.0, "a") for k in range(20)]
    assert _clocked(tmp_path, [(f"0_{k}", 0.2) for k in range(20)], calls, {"a": 60.0}, budget=1.0) == "budget"
