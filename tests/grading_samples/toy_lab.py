"""A tiny fake lab ("toy") and the sample submissions the grading tests autograde.

Everything is generated: ``make_repo`` writes a repo-shaped tree (``labkit/`` copied
from the real package plus ``labkit/check/toy.py``, ``solutions/labkit/toy.py``,
``solutions/notebooks/00_toy.ipynb`` with nbgrader metadata); ``make_submissions``
derives one submission per case from the released assignment. The toy lab needs no
torch, so autograding one submission takes a few seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit.labs import MODULES, Lab
from labkit_course.repo import REPO
from labkit_course.sync import tag_test_cells

TOY = Lab(0, "00_toy", "toy", "Toy lab")

SOLUTION = '''\
"""Toy exercises (for testing the grading pipeline)."""


def scale(xs, k):
    """Return the list ``xs`` with every element multiplied by ``k``."""
    if not isinstance(xs, list):
        raise TypeError(f"xs must be a list; got {type(xs).__name__}")
    ### BEGIN SOLUTION
    return [k * x for x in xs]
    ### END SOLUTION


def total(xs):
    """Return the sum of the list ``xs``."""
    if not isinstance(xs, list):
        raise TypeError(f"xs must be a list; got {type(xs).__name__}")
    ### BEGIN SOLUTION
    s = 0
    for x in xs:
        s += x
    return s
    ### END SOLUTION
'''

CHECKS = '''\
"""Public checks of the toy lab."""
from labkit.check.runner import Exercise, check


@check("scales [1, 2, 3] by 2")
def scales_small(fn):
    assert fn([1, 2, 3], 2) == [2, 4, 6]


@check("scales the empty list")
def scales_empty(fn):
    assert fn([], 5) == []


@check("sums [1, 2, 3]")
def sums_small(fn):
    assert fn([1, 2, 3]) == 6


scale = Exercise("toy", "scale", [scales_small, scales_empty])
total = Exercise("toy", "total", [sums_small])

EXERCISES = [scale, total]
'''

HIDDEN = '''\
"""Hidden tests of the toy lab: random lists; the reference gives the answers."""
from labkit_course.judge import Call, Case

EXERCISES = ("scale", "total")


def scale(rng):
    cases = []
    for _ in range(5):
        xs, k = [rng.randint(-50, 50) for _ in range(rng.randint(1, 8))], rng.randint(-9, 9)
        cases.append(Case([Call((xs, k), timeout=5)], describe=f"a list of {len(xs)} numbers"))
    return cases


def total(rng):
    return [Case([Call(([rng.randint(-50, 50) for _ in range(n)],), timeout=5)], describe=f"a list of {n} numbers")
            for n in (rng.randint(0, 8) for _ in range(5))]
'''

POINTS = {"test_scale": 2.0, "test_total": 3.0, "answer": 1.0}


def _meta(**kw):
    base = {"grade": False, "solution": False, "locked": False, "schema_version": 3}
    base.update(kw)
    return {"nbgrader": base}


def solved_notebook() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell("# Toy lab\nScale and sum lists.", metadata=_meta(locked=True, grade_id="intro")),
        new_code_cell(
            "import os\nfrom labkit import check\nimport labkit.check.toy\nfrom labkit.toy import scale, total\n"
            "print('LABKIT_THREADS =', os.environ.get('LABKIT_THREADS'))",
            metadata=_meta(locked=True, grade_id="setup"),
        ),
        new_code_cell(
            "assert check.toy.scale()", metadata=_meta(grade=True, locked=True, points=2, grade_id="test_scale")
        ),
        new_code_cell(
            "assert check.toy.total()", metadata=_meta(grade=True, locked=True, points=3, grade_id="test_total")
        ),
        new_markdown_cell("Why does `total([])` return 0?", metadata=_meta(locked=True, grade_id="question")),
        new_markdown_cell(
            "Because the sum of nothing is the additive identity, 0.",
            metadata=_meta(grade=True, solution=True, points=1, grade_id="answer"),
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    tag_test_cells(nb, TOY, ["scale", "total"])  # as `labkit-course sync` stores them (labkit.exercises)
    return nb


def make_repo(dest: Path) -> Path:
    """A repo-shaped tree holding the real labkit package plus the toy lab."""
    dest = Path(dest)
    shutil.copytree(REPO / "labkit", dest / "labkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "labkit" / "check" / "toy.py").write_text(CHECKS)
    (dest / "solutions" / "labkit").mkdir(parents=True)
    (dest / "solutions" / "notebooks").mkdir(parents=True)
    # the toy lab only: the real labs' modules would be stubbed into the course too (harmless but slower)
    for old in (dest / "labkit").glob("*.py"):
        if old.stem in MODULES:
            old.unlink()
    (dest / "solutions" / "labkit" / "toy.py").write_text(SOLUTION)
    (dest / "labkit_course" / "hidden").mkdir(parents=True)
    (dest / "labkit_course" / "hidden" / "toy.py").write_text(HIDDEN)
    nbformat.write(solved_notebook(), dest / "solutions" / "notebooks" / "00_toy.ipynb")
    return dest


# ----------------------------------------------------------------------------------------------
# Sample submissions: name -> (module source or None for the stub, notebook edit, extra edits)
# ----------------------------------------------------------------------------------------------
def _solution_body() -> str:
    return SOLUTION.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION\n", "")


PARTIAL = _solution_body().replace("    s = 0\n    for x in xs:\n        s += x\n    return s\n", "    return 0\n")
HARDCODED = """\
def scale(xs, k):
    return {(1, 2, 3): [2, 4, 6]}.get(tuple(xs), [])


def total(xs):
    return 6
"""
LOOP = _solution_body().replace(
    "    s = 0\n    for x in xs:", "    s = 0\n    while True:\n        pass\n    for x in xs:"
)
NOISY = _solution_body().replace(
    "    return [k * x for x in xs]\n",
    '    import sys, warnings\n    warnings.warn("scale() is noisy")\n'
    '    print("debug: scaling", file=sys.stderr)\n    return [k * x for x in xs]\n',
)
HUGE = _solution_body().replace(
    "    return [k * x for x in xs]\n", "    hog = bytearray(16 * 2**30)\n    return [k * x for x in xs]\n"
)
CRASH = _solution_body().replace("    s = 0\n", "    import os\n    os._exit(1)  # the kernel dies\n    s = 0\n")
SNOOP = _solution_body().replace(
    "    return [k * x for x in xs]\n",
    '    import glob\n    for path in glob.glob("../../../*.db") + ["../../../gradebook.db"]:\n        try:\n'
    '            open(path, "rb").read()\n        except OSError:\n            pass\n'
    "    return [k * x for x in xs]\n",
)

# Hostile samples: each attacks the grading itself. <course> and <marker> are filled in per course.
CTYPES_PEER = """\
import ctypes

_libc = ctypes.CDLL(None)
_buf = ctypes.create_string_buffer(1 << 16)
_fd = _libc.open(b"<course>/submitted/perfect/lab0/labkit/toy.py", 0)
_peer = {}
if _fd >= 0:  # another student's module, read through libc around Python's audit hooks
    _n = _libc.read(_fd, _buf, 1 << 16)
    exec(_buf.raw[:_n].decode(), _peer)


def scale(xs, k):
    return _peer["scale"](xs, k)


def total(xs):
    return _peer["total"](xs)
"""
CTYPES_WIPE_HEAD = """\
import ctypes

_libc = ctypes.CDLL(None)
for _path in (b"<course>/gradebook.db", b"../../../gradebook.db"):
    _fd = _libc.open(_path, 1)  # O_WRONLY: 4 KB of zeros over the gradebook's header
    if _fd >= 0:
        _libc.write(_fd, b"\\0" * 4096, 4096)
        _libc.close(_fd)
"""
CTYPES_WIPE = CTYPES_WIPE_HEAD + _solution_body()
MONKEYPATCH = """\
import sys

import numpy.testing

numpy.testing.assert_allclose = lambda *args, **kwargs: None  # every comparison "passes"
_runner = sys.modules.get("labkit." + "check.runner")
if _runner is not None:
    _runner.Report.__bool__ = lambda self: True
    _runner.Report.passed = property(lambda self: True)


def scale(xs, k):
    return []


def total(xs):
    return 0
"""
FRAME_WALKER = """\
import sys


def _steal(*names):
    frame = sys._getframe(1)
    while frame is not None:  # up into whoever called us: the checks, the judge
        for name in names:
            if name in frame.f_locals:
                return frame.f_locals[name]
        frame = frame.f_back
    return None


def scale(xs, k):
    return _steal("expected", "_expected", "reference")


def total(xs):
    return _steal("expected", "_expected", "reference")
"""
PICKLE_PAYLOAD = """\
import json
import os
import sys

import numpy as np


class _Payload:
    def __reduce__(self):  # runs open(marker, "w") wherever this is unpickled
        return (open, ("<marker>", "w"))


def scale(xs, k):
    return np.array([_Payload()], dtype=object)


def total(xs):
    out = sys.argv[2] if len(sys.argv) > 2 else None
    if out and os.path.isdir(out):  # forge this call's result as a pickle, then vanish before the worker writes
        index = max(int(n.split("_")[0]) for n in os.listdir(out) if n[0].isdigit()) + 1
        np.save(os.path.join(out, "payload.npy"), np.array([_Payload()], dtype=object), allow_pickle=True)
        os.replace(os.path.join(out, "payload.npy"), os.path.join(out, "%d_0.npz" % index))
        with open(os.path.join(out, "%d_0.json" % index), "w") as f:
            json.dump({"value": {"$": "array", "key": "arr_0"}}, f)
        os._exit(0)
    return sum(xs)
"""
FORGED_RESULTS = """\
import json
import os
import sys

_out = sys.argv[2] if len(sys.argv) > 2 else None
if _out and os.path.isdir(_out):  # fill in every result before the worker runs anything
    for _c in range(40):
        with open(os.path.join(_out, "%d_0.json" % _c), "w") as _f:
            json.dump({"value": 0}, _f)
        os.chmod(os.path.join(_out, "%d_0.json" % _c), 0o444)
    os.symlink("<course>/gradebook.db", os.path.join(_out, "0_0.npz"))


def scale(xs, k):
    return [k * x for x in xs][:-1]


def total(xs):
    return 0
"""
FORK_BOMB = _solution_body().replace(
    "    return [k * x for x in xs]\n", "    import os\n    while True:\n        os.fork()\n"
)
DETACHED = _solution_body().replace(
    "    return [k * x for x in xs]\n",
    "    import subprocess\n    subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
    "    return [k * x for x in xs]\n",
)
NETWORK = _solution_body().replace(
    "    return [k * x for x in xs]\n",
    "    import socket\n    for host in ('127.0.0.1', '8.8.8.8'):\n        try:\n"
    "            socket.create_connection((host, 53), timeout=2).close()\n            return []\n"
    "        except OSError:\n            pass\n    return [k * x for x in xs]\n",
)
SYSEXIT = "raise SystemExit('no grading for you')\n" + _solution_body()

#: student -> expected (auto score of test_scale, of test_total, status)
EXPECTED = {
    "perfect": (2.0, 3.0, "graded"),
    "stub": (0.0, 0.0, "graded"),
    "partial": (2.0, 0.0, "graded"),
    "hardcoded": (0.0, 0.0, "graded"),
    "edit_test_cell": (0.0, 0.0, "graded"),
    "edit_helper": (0.0, 0.0, "graded"),
    "infinite_loop": (2.0, 0.0, "graded"),
    "stderr_noise": (2.0, 3.0, "graded"),
    "malformed": (0.0, 0.0, "failed"),
    "huge_allocation": (0.0, 3.0, "graded"),
    "reads_gradebook": (0.0, 0.0, "flagged"),
    "kernel_crash": (2.0, 0.0, "graded"),
    "ctypes_peer": (0.0, 0.0, "flagged"),
    "ctypes_wipe": (0.0, 0.0, "flagged"),
    "monkeypatch": (0.0, 0.0, "flagged"),  # it replaces numpy.testing.assert_allclose
    "frame_walker": (0.0, 0.0, "flagged"),
    "pickle_payload": (0.0, 0.0, "graded"),
    "forged_results": (0.0, 0.0, "flagged"),  # it names the gradebook
    "fork_bomb": (0.0, 0.0, "flagged"),
    "detached": (0.0, 0.0, "flagged"),
    "network": (0.0, 0.0, "flagged"),
    "sys_exit": (0.0, 0.0, "graded"),
    # attacks from a notebook cell on the notebook run (NOTEBOOK_ATTACKS): the kernel runs in a box of its own
    "fake_check_big_file": (0.0, 0.0, "graded"),
    "leftover_rewriter": (0.0, 0.0, "flagged"),  # the notebook's audit sees `subprocess`
    "audit_wipe": (2.0, 3.0, "graded"),
    "proc_mem": (2.0, 0.0, "graded"),
    "disk_filler": (2.0, 3.0, "graded"),
    "empty_grade_id": (2.0, 3.0, "failed"),  # nbgrader refuses the notebook; the judge still scores the module
}
#: where the pickle payload would leave its mark if anything unpickled it
MARKER = "labkit-pickle-payload-ran"
#: in the command line of the process the leftover_rewriter sample leaves behind
LEFTOVER_MARKER = "labkit-leftover-rewriter"

# A cell each, added after the notebook's setup cell, with the module they come with (None: the stub).
# They avoid what the static audit reads (no "/proc/", no ctypes...): the sandbox must stop them.
NOTEBOOK_ATTACKS = {
    # every public check passes, and a file over 64 MB sits next to the notebook
    "fake_check_big_file": (
        None,
        "type(check.toy.scale).__call__ = lambda self, fn=None, verbose=True: True\n"
        "with open('big.bin', 'wb') as f:\n"
        "    f.write(b'\\0' * (65 * 2**20))\n",
    ),
    # a process that outlives the kernel and gives every notebook it can reach 100 points per cell
    "leftover_rewriter": (
        None,
        "import subprocess, sys\n"
        "REWRITE = '''\n"
        "import json, os, time\n"
        "end = time.time() + 600\n"
        "while time.time() < end:\n"
        "    for top in ('/tmp', os.path.expanduser('~'), '/'):\n"
        "        for root, dirs, files in os.walk(top):\n"
        "            dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev', 'usr')]\n"
        "            for name in files:\n"
        "                if name.endswith('.ipynb'):\n"
        "                    try:\n"
        "                        path = os.path.join(root, name)\n"
        "                        nb = json.load(open(path))\n"
        "                        for cell in nb['cells']:\n"
        "                            cell.get('metadata', {}).get('nbgrader', {})['points'] = 100\n"
        "                        json.dump(nb, open(path, 'w'))\n"
        "                    except Exception:\n"
        "                        pass\n"
        "    time.sleep(0.2)\n"
        "'''\n"
        f"subprocess.Popen([sys.executable, '-c', REWRITE, '{LEFTOVER_MARKER}'], start_new_session=True)\n",
    ),
    # empty the kernel's audit log, then look for the gradebook
    "audit_wipe": (
        _solution_body(),
        "import glob, os\n"
        "open(os.environ.get('LABKIT_AUDIT_LOG', 'audit.log'), 'w').close()\n"
        "for path in glob.glob('/'.join(['..'] * 3) + '/*.db') + glob.glob('/tmp/*/course/*.db'):\n"
        "    print(len(open(path, 'rb').read()))\n",
    ),
    # breakpoints over nbgrader's code (it would die of SIGTRAP), if the kernel can see its process
    "proc_mem": (
        PARTIAL,
        "import os\n"
        "P = os.sep + 'proc'\n"
        "for pid in [p for p in os.listdir(P) if p.isdigit() and int(p) != os.getpid()]:\n"
        "    try:\n"
        "        if b'nbgrader' not in open(os.path.join(P, pid, 'cmdline'), 'rb').read():\n"
        "            continue\n"
        "        for line in open(os.path.join(P, pid, 'maps')):\n"
        "            start, perms = line.split()[0].split('-')[0], line.split()[1]\n"
        "            if perms.startswith('r-x'):\n"
        "                with open(os.path.join(P, pid, 'mem'), 'r+b') as mem:\n"
        "                    mem.seek(int(start, 16))\n"
        "                    mem.write(b'\\xcc' * 4096)\n"
        "    except (OSError, ValueError):\n"
        "        pass\n",
    ),
    # fill every disk the kernel can write: its /tmp, then its socket folder (on the host's disk); the
    # platform module starts a process of its own (`file`), which is not the student's
    "disk_filler": (
        _solution_body(),
        "import os, platform, sys\n"
        "platform.architecture()\n"
        "folders = ['.', '/tmp']\n"
        "if '-f' in sys.argv:\n"
        "    folders.append(os.path.dirname(sys.argv[sys.argv.index('-f') + 1]))\n"
        "for folder in folders:\n"
        "    for i in range(2000):\n"
        "        try:\n"
        "            with open(os.path.join(folder, 'fill%d' % i), 'wb') as f:\n"
        "                f.write(b'x' * 2**20 * 64)\n"
        "        except OSError:\n"
        "            break\n",
    ),
    # a cell nbgrader cannot process: an empty grade id
    "empty_grade_id": (_solution_body(), None),
}


def make_submissions(course: Path, aid: str = "lab0", only: list[str] | None = None) -> list[str]:
    """Write ``submitted/<student>/<aid>/`` for every sample, from ``release/<aid>``.

    The hostile samples know the course's real path, as a determined student could."""
    course = Path(course)
    hostile = {
        name: text.replace("<course>", str(course)).replace("<marker>", str(course.parent / MARKER))
        for name, text in (
            ("ctypes_peer", CTYPES_PEER),
            ("ctypes_wipe", CTYPES_WIPE),
            ("monkeypatch", MONKEYPATCH),
            ("frame_walker", FRAME_WALKER),
            ("pickle_payload", PICKLE_PAYLOAD),
            ("forged_results", FORGED_RESULTS),
        )
    }
    hostile.update(fork_bomb=FORK_BOMB, detached=DETACHED, network=NETWORK, sys_exit=SYSEXIT)
    release = course / "release" / aid
    names = only or list(EXPECTED)
    for name in names:
        dest = course / "submitted" / name / aid
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(release, dest)
        (dest / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
        module = dest / "labkit" / "toy.py"
        nb_path = dest / "00_toy.ipynb"
        nb = nbformat.read(nb_path, as_version=4)
        answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "answer")
        answer.source = "Because an empty sum is 0."
        source = {
            "perfect": _solution_body(),
            "partial": PARTIAL,
            "hardcoded": HARDCODED,
            "infinite_loop": LOOP,
            "stderr_noise": NOISY,
            "huge_allocation": HUGE,
            "reads_gradebook": SNOOP,
            "edit_helper": HARDCODED,
            "kernel_crash": CRASH,
            **hostile,
            **{n: attack[0] for n, attack in NOTEBOOK_ATTACKS.items()},
        }.get(name)
        if source is not None:
            module.write_text(source)
        if name in NOTEBOOK_ATTACKS:
            ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
            at = ids.index("setup") + 1
            if NOTEBOOK_ATTACKS[name][1] is not None:
                nb.cells.insert(at, new_code_cell(NOTEBOOK_ATTACKS[name][1]))
            else:  # nbgrader's metadata with an empty grade id
                cell = new_markdown_cell("A note of mine.", metadata=_meta(solution=True, grade_id=""))
                nb.cells.insert(at, cell)
        if name == "edit_test_cell":
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_"):
                    cell.source = "print('all tests passed')"
        if name == "edit_helper":  # make every public check pass, whatever the code
            runner = dest / "labkit" / "check" / "runner.py"
            runner.write_text(
                runner.read_text().replace(
                    "    def __call__(self, fn: Callable | None = None, verbose: bool = True) -> Report:\n",
                    "    def __call__(self, fn: Callable | None = None, verbose: bool = True) -> Report:\n"
                    "        return True\n",
                )
            )
            (dest / "labkit" / "grading.py").write_text("def hidden_seed():\n    return 0\n")
        nbformat.write(nb, nb_path)
        if name == "malformed":
            nb_path.write_text('{"cells": [ this is not json')
    return names
