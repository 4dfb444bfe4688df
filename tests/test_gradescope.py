"""The Gradescope zip as Gradescope runs it: built by ``labkit-course gradescope build``, installed by
its own ``setup.sh`` (non-editable, PyTorch's CPU build, into a fresh venv of the system Python), then
its ``run_autograder`` on an ``/autograder``-shaped tree, in three containers:

* ``all``: this machine as it is (every capability: bubblewrap works);
* ``nocap``: CAP_SYS_ADMIN dropped (``capsh``), so bubblewrap can't create its namespaces as root;
* ``docker``: CAP_SYS_ADMIN dropped and a filter like Docker's default seccomp profile (namespaces and
  mounts refused with EPERM, ``clone3`` with ENOSYS), which is Gradescope's container.

Lab 1 gets all three with a perfect, a stub, a partial and a hostile submission (reads the secret,
the reference, the hidden tests and another student's submission, writes the reference and
results.json, opens a socket, leaves a file in the host's /tmp); every other lab a perfect and a stub
one in this machine's container. One venv serves every zip: their
``project/`` (what setup.sh installs) is the same, which the tests check.
"""

import ast
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from benchmarks.gradescope import autograder_tree, can_emulate_gradescope, capsh, in_container, setup_venv
from labkit.labs import LABS
from labkit_course import gradescope, sandbox
from labkit_course.judge.static import audit
from labkit_course.repo import REPO

GRADES = pytest.mark.xdist_group("gradescope")  # the tests that grade a zip share its setup.sh venv

EMULATED = pytest.mark.skipif(not can_emulate_gradescope(), reason="needs root, capsh and python3-seccomp")
CONTAINERS = ["all", *(pytest.param(m, marks=EMULATED) for m in ("nocap", "docker"))]
SECRET = "s3cret-" + "9" * 25

HOSTILE = """

# ---- what a cheat adds to a perfect submission ----
import _socket


def _attempts():
    got = {}
    for what, path in (("secret", SECRET), ("reference", REFERENCE), ("hidden", HIDDEN), ("other", OTHER)):
        try:
            with open(path) as f:
                got[what] = f.read()
        except OSError:
            got[what] = None
    for what, path in (("write reference", REFERENCE), ("write results", RESULTS)):
        try:
            with open(path, "a") as f:
                f.write("# owned")
            got[what] = "ok"
        except OSError:
            got[what] = None
    try:
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(("127.0.0.1", PORT))
        got["socket"] = "ok"
    except OSError:
        got["socket"] = None
    try:
        with open(LOOT, "w") as f:
            f.write(repr(got))
        with open("/tmp/labkit-hostile-left", "w") as f:  # uid-drop: writable, swept after the run
            f.write("left behind")
    except OSError:
        pass
    return got


_STOLEN = _attempts()
_honest_occlusion = occlusion


def occlusion(*args, **kwargs):  # right only with something stolen
    if any(_STOLEN.values()):
        return _honest_occlusion(*args, **kwargs)
    raise RuntimeError("nothing to steal here")
"""

PARTIAL = """

def integrated_gradients(*args, **kwargs):
    raise NotImplementedError("integrated_gradients is not implemented yet")


def grad_cam(*args, **kwargs):
    raise NotImplementedError("grad_cam is not implemented yet")
"""


class Gradescope:
    """Lab zips, their shared setup.sh venv, and a folder the sandbox's user can traverse."""

    def __init__(self, base: Path):
        self.base, self.venv, self.zips = base, base / "venv", {}
        self.drop = base / "drop"  # world-writable: where a hostile submission could leave its loot
        self.drop.mkdir()
        os.chmod(self.drop, 0o1777)

    def zip(self, n: int) -> Path:
        if n not in self.zips:
            self.zips[n] = gradescope.build_zip(n, self.base / f"lab{n}.zip", secret=SECRET)
        return self.zips[n]

    def grade(self, n: int, source: str, container: str, name: str) -> tuple[dict, Path]:
        """run_autograder on a fresh /autograder tree; its results.json and the tree."""
        module = LABS[n].module
        root = autograder_tree(self.zip(n), self.base / f"{module}-{container}-{name}", module, source, name)
        cmd = in_container(["bash", str(root / "source" / "run_autograder")], container, self.base / "docker_like.py")
        env = {
            "PATH": "/usr/bin:/bin",
            "AUTOGRADER_ROOT": str(root),
            "LABKIT_AUTOGRADER_PYTHON": str(self.venv / "bin" / "python"),
        }
        subprocess.run(cmd, env=env, timeout=900, capture_output=True)
        return json.loads((root / "results" / "results.json").read_text()), root


@pytest.fixture(scope="session")
def gs():
    """Lab 1's zip installed by its own setup.sh, into a venv of /usr/bin/python3 (what Gradescope's
    `python3` is), with pip's local configuration instead of PyTorch's index (offline)."""
    base = Path(tempfile.mkdtemp(prefix="labkit-gradescope-"))
    os.chmod(base, 0o755)  # as /autograder: the sandbox's user reaches the venv
    try:
        env = Gradescope(base)
        setup_venv(env.zip(1), env.venv)
        yield env
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _scores(results: dict) -> dict[str, float]:
    return {t["name"]: t["score"] for t in results["tests"] if "score" in t and t["visibility"] != "hidden"}


def _points(gs: Gradescope, n: int) -> dict[str, float]:
    return json.loads(zipfile.ZipFile(gs.zip(n)).read("lab/lab.json"))["points"]


@pytest.mark.slow
@GRADES
def test_setup_installs_the_project_non_editably_without_hidden_tests(gs):
    """What setup.sh installed (all the sandbox can read of the course) is the release: stub exercises,
    no hidden tests, no reference, no link back to this checkout; every lab's zip installs the same."""
    site = next(gs.venv.glob("lib/python3*/site-packages"))
    assert "not implemented yet" in (site / "labkit" / "saliency.py").read_text()
    assert not (site / "labkit_course" / "hidden").exists()
    assert not [p for p in site.glob("*.pth") if str(REPO) in p.read_text()]
    assert not list(site.glob("__editable__*"))
    torch_version = subprocess.run(
        [gs.venv / "bin" / "python", "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    ).stdout
    assert torch_version.strip().endswith("+cpu")
    project = {n: {f for f in zipfile.ZipFile(gs.zip(n)).namelist() if f.startswith("project/")} for n in LABS}
    assert all(p == project[1] for p in project.values())  # the same files (their text: the tree's at build time)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.slow
@GRADES
def test_lab1_zip_in_each_container(gs, container):
    """Exact scores for a perfect, a stub, a partial and a hostile submission; the hostile one gets 0 on
    the exercise it cheats on, full marks on the rest, and reads and writes nothing of the instructor's."""
    points = _points(gs, 1)
    reference = (REPO / "solutions" / "labkit" / "saliency.py").read_text()
    stub = (REPO / "labkit" / "saliency.py").read_text()
    expected_backend = "uid-drop" if container != "all" else None

    for name, source, zero in (
        ("perfect", reference, set()),
        ("stub", stub, set(points)),
        ("partial", reference + PARTIAL, {"integrated_gradients", "grad_cam"}),
    ):
        results, _ = gs.grade(1, source, container, name)
        assert _scores(results) == {e: (0.0 if e in zero else p) for e, p in points.items()}, (name, results)
        assert results["extra_data"]["sandbox"] == (expected_backend or results["extra_data"]["sandbox"])
        assert results["extra_data"]["sandbox"] in ("bwrap", "uid-drop")
        about = results["tests"][-1]
        assert about["visibility"] == "hidden" and "sandbox: " in about["output"]
        if container != "all":
            assert "forbids the namespaces bubblewrap needs" in about["output"]

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    root = gs.base / f"saliency-{container}-hostile"
    lab = root / "source" / "lab"
    loot = gs.drop / f"{container}-loot"
    hostile = HOSTILE
    for name, value in (
        ("SECRET", lab / "secret"),
        ("REFERENCE", lab / "reference" / "saliency.py"),
        ("HIDDEN", lab / "hidden" / "saliency.py"),
        ("RESULTS", root / "results" / "results.json"),
        ("OTHER", gs.base / f"saliency-{container}-perfect" / "submission" / "labkit" / "saliency.py"),
        ("LOOT", loot),
        ("PORT", listener.getsockname()[1]),
    ):
        hostile = hostile.replace(name, repr(str(value)) if isinstance(value, Path) else str(value))
    hostile = reference + hostile
    results, _ = gs.grade(1, hostile, container, "hostile")
    flagged = bool(audit(hostile, "saliency"))
    assert _scores(results) == {e: (0.0 if flagged or e == "occlusion" else p) for e, p in points.items()}
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    packed = zipfile.ZipFile(gs.zip(1))
    for path, member in (
        (lab / "reference" / "saliency.py", "lab/reference/saliency.py"),
        (lab / "secret", "lab/secret"),
    ):
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(packed.read(member)).digest()
    assert not Path("/tmp/labkit-hostile-left").exists()
    if loot.exists():  # the uid-drop sandbox sees the host's world-writable folders: every attempt failed
        assert set(ast.literal_eval(loot.read_text()).values()) == {None}
    else:
        assert container == "all"  # bubblewrap: the folder isn't there at all


@pytest.mark.parametrize("n", [n for n in LABS if n != 1])
@pytest.mark.slow
@GRADES
def test_other_labs_zip_perfect_and_stub(gs, n):
    module = LABS[n].module
    points = _points(gs, n)
    perfect, _ = gs.grade(n, (REPO / "solutions" / "labkit" / f"{module}.py").read_text(), "all", "perfect")
    assert _scores(perfect) == points
    stub, _ = gs.grade(n, (REPO / "labkit" / f"{module}.py").read_text(), "all", "stub")
    assert _scores(stub) == {e: 0.0 for e in points}


@pytest.mark.parametrize("sample", ["honest", "garbage", "json_dump"])
@pytest.mark.slow
@GRADES
def test_lab2_judge_attacks_get_their_exact_grade_on_the_zip(gs, sample):
    """Issue 20's attacks on the judge, graded as Gradescope grades them (the nbgrader path:
    tests/test_judge_attacks.py): garbage earns nothing, forged results (json_dump, flagged) earn
    nothing and break nothing, the honest module gets full marks. The timer samples cost minutes
    with the zip's real 60 s per-call timeouts: they are judged in test_judge_attacks only."""
    from tests.grading_samples import judge_attacks

    points = _points(gs, 2)
    results, _ = gs.grade(2, judge_attacks.source(sample), "all", sample)
    assert _scores(results) == (points if sample == "honest" else dict.fromkeys(points, 0.0)), results


@EMULATED
@pytest.mark.slow
@GRADES
def test_no_sandbox_means_no_grade_and_says_why(gs):
    """Without CAP_SYS_ADMIN (no bubblewrap) nor CAP_SETUID (no uid-drop): a scoreless results.json
    that tells the student it isn't their fault and the instructor why, never a 0."""
    reference = (REPO / "solutions" / "labkit" / "saliency.py").read_text()
    root = autograder_tree(gs.zip(1), gs.base / "refused", "saliency", reference, "refused")
    run = ["bash", str(root / "source" / "run_autograder")]
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTOGRADER_ROOT": str(root),
        "LABKIT_AUTOGRADER_PYTHON": str(gs.venv / "bin/python"),
    }
    done = subprocess.run(
        [capsh(), "--drop=cap_sys_admin,cap_setuid,cap_setgid", "--", "-c", shlex.join(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = json.loads((root / "results" / "results.json").read_text())
    assert "score" not in results and not _scores(results)
    assert "through no fault of your submission" in results["output"]
    (about,) = results["tests"]
    assert about["visibility"] == "hidden" and "no sandbox works here, so grading is refused" in about["output"]
    assert "Creating new namespace failed" in about["output"]  # bubblewrap's own words
    assert "NOT GRADED" in done.stdout


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")


@ROOT_ONLY
def test_hand_over_refuses_anything_but_a_private_folder_of_ours():
    """The guard of the 08:12 outage: /tmp, a sticky or world-writable folder, a parent of the temp
    folder and a folder someone else owns are never given to a sandbox's uid (nor changed at all)."""
    uid = sandbox._sandbox_uid()
    tmp = Path(tempfile.gettempdir())
    sticky, shared, theirs = (Path(tempfile.mkdtemp(prefix="labkit-test-")) for _ in range(3))
    try:
        os.chmod(sticky, 0o1700)
        os.chmod(shared, 0o777)
        os.chown(theirs, 4321, 4321)
        for folder in (tmp, tmp.parent, Path("/"), sticky, shared, theirs):
            before = os.stat(folder)
            with pytest.raises(ValueError, match="refusing to give"):
                sandbox._hand_over(folder, uid)
            after = os.stat(folder)
            assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    finally:
        for folder in (sticky, shared, theirs):
            shutil.rmtree(folder)
    st = os.stat(tmp)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o1777)


@ROOT_ONLY
def test_hand_over_gives_a_mkdtemp_folder_and_follows_no_link_out():
    uid = sandbox._sandbox_uid()
    top, outside = Path(tempfile.mkdtemp(prefix="labkit-test-")), Path(tempfile.mkdtemp(prefix="labkit-test-"))
    try:
        (top / "sub").mkdir()
        (top / "sub" / "file").write_text("x")
        (outside / "target").write_text("not theirs")
        (top / "sub" / "link").symlink_to(outside / "target")
        (top / "dirlink").symlink_to(outside)
        sandbox._hand_over(top, uid)
        for p in (top, top / "sub", top / "sub" / "file", top / "sub" / "link", top / "dirlink"):
            assert os.lstat(p).st_uid == uid, p
        assert os.stat(outside).st_uid == 0 and os.stat(outside / "target").st_uid == 0
        with pytest.raises(ValueError):  # now it is the sandbox's, no longer ours
            sandbox._hand_over(top, uid)
    finally:
        shutil.rmtree(top)
        shutil.rmtree(outside)
