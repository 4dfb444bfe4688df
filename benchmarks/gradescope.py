"""Budgets of the Gradescope zip within Gradescope's defaults: 768 MB of memory, 0.5 CPU, 10 minutes.

    python -m benchmarks.run --labs gradescope [--quick]

Full mode builds every lab's zip, installs Lab 1's with its own ``setup.sh`` (non-editable, PyTorch's
CPU build, a fresh venv of ``/usr/bin/python3``; every zip installs the same ``project/``), then runs
each lab's ``run_autograder`` on its perfect submission in a container like Gradescope's (as root,
CAP_SYS_ADMIN dropped and Docker's seccomp filter emulated, so the uid-drop sandbox runs; this machine's
own container where that can't be emulated), inside a 768 MB memory cgroup with a 0.5-CPU quota
(cgroup v2, else v1, else no limits at all: the table says which). Rows per lab: the score (must be
full), the wall time (Lab 1 under 5 minutes, every lab under Gradescope's 10), and the peak memory of
the cgroup (page cache included) and of the process tree (resident). Quick mode grades Lab 1 with this
interpreter and no limits: it proves the script runs, its numbers mean nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from benchmarks.common import row

MEMORY_MB, CPU_QUOTA, LAB1_SECONDS, TIMEOUT_SECONDS = 768, 0.5, 5 * 60, 10 * 60

#: Docker's default seccomp profile, the part that matters here: no new namespaces, no mounts. Run by
#: /usr/bin/python3 (Debian/Ubuntu's python3-seccomp), it loads the filter and execs its arguments.
DOCKER_LIKE = """
import errno, os, sys, seccomp as S
f = S.SyscallFilter(S.ALLOW)
deny = S.ERRNO(errno.EPERM)
for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080):
    f.add_rule(deny, "clone", S.Arg(0, S.MASKED_EQ, flag, flag))  # CLONE_NEW*
f.add_rule(S.ERRNO(errno.ENOSYS), "clone3")
for name in ("unshare", "setns", "mount", "umount2", "pivot_root"):
    f.add_rule(deny, name)
f.load()
os.execvp(sys.argv[1], sys.argv[1:])
"""


def capsh() -> str | None:
    """capsh's path (it lives in /usr/sbin, off the grading's PATH), or None."""
    return shutil.which("capsh", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def can_emulate_gradescope() -> bool:
    """Root, capsh and python3-seccomp: what :func:`in_container` needs for "nocap" and "docker"."""
    seccomp = subprocess.run(["/usr/bin/python3", "-c", "import seccomp"], capture_output=True).returncode == 0
    return os.geteuid() == 0 and capsh() is not None and seccomp


def in_container(cmd: list[str], container: str, launcher: Path) -> list[str]:
    """``cmd`` as it runs in ``container``: "all" (this machine as it is), "nocap" (CAP_SYS_ADMIN
    dropped) or "docker" (that, and :data:`DOCKER_LIKE`, written to ``launcher``, first)."""
    if container == "all":
        return list(cmd)
    if container == "docker":
        launcher.write_text(DOCKER_LIKE)
        cmd = ["/usr/bin/python3", str(launcher), *cmd]
    return [capsh(), "--drop=cap_sys_admin", "--", "-c", shlex.join(cmd)]


def setup_venv(zip_path: Path, venv: Path) -> float:
    """Install ``zip_path`` with its own setup.sh into ``venv`` (a fresh venv of /usr/bin/python3, pip's
    local configuration instead of PyTorch's index: offline); the seconds it took."""
    tree = venv.parent / f"{venv.name}-setup"
    zipfile.ZipFile(zip_path).extractall(tree)
    env = {
        **os.environ,
        "LABKIT_VENV": str(venv),
        "LABKIT_SETUP_PYTHON": "/usr/bin/python3",
        "LABKIT_TORCH_INDEX": "",
    }
    start = time.perf_counter()
    subprocess.run(["bash", str(tree / "setup.sh")], env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def autograder_tree(zip_path: Path, root: Path, module: str, source: str, student: str) -> Path:
    """An ``/autograder``-shaped tree at ``root``: the zip in source/, ``source`` as the student's
    labkit/<module>.py in submission/, and submission_metadata.json."""
    zipfile.ZipFile(zip_path).extractall(root / "source")
    (root / "submission" / "labkit").mkdir(parents=True)
    (root / "submission" / "labkit" / f"{module}.py").write_text(source)
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"email": f"{student}@uni"}]}))
    return root


class Cgroup:
    """A child of this process's cgroup with Gradescope's memory limit and CPU quota, or none."""

    def __init__(self, name: str):
        self.dirs, self.how = [], "no cgroup could be made here: no limits, resident memory only"
        own = {}  # controller -> this process's cgroup, relative ("" for cgroup v2's unified tree)
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            own.update({c: path.lstrip("/") for c in controllers.split(",")})
        try:
            self._v2(Path("/sys/fs/cgroup") / own.get("", "") / name)
            return
        except OSError:
            self.close()
        try:
            self._v1([Path("/sys/fs/cgroup") / c / own.get(c, "") / name for c in ("memory", "cpu")])
        except OSError:
            self.close()

    def _v2(self, path: Path) -> None:
        if not (Path("/sys/fs/cgroup") / "cgroup.controllers").exists():
            raise OSError("not cgroup v2")
        path.mkdir()
        self.dirs = [path]
        (path / "memory.max").write_text(str(MEMORY_MB * 2**20))
        (path / "memory.swap.max").write_text("0")
        (path / "cpu.max").write_text(f"{int(CPU_QUOTA * 100_000)} 100000")
        self.how = f"cgroup v2: memory.max {MEMORY_MB} MB, no swap, cpu.max {CPU_QUOTA} CPU"

    def _v1(self, paths: list[Path]) -> None:
        memory, cpu = paths
        for p in paths:
            p.mkdir()
            self.dirs.append(p)
        (memory / "memory.limit_in_bytes").write_text(str(MEMORY_MB * 2**20))
        (cpu / "cpu.cfs_period_us").write_text("100000")
        (cpu / "cpu.cfs_quota_us").write_text(str(int(CPU_QUOTA * 100_000)))
        self.how = f"cgroup v1: memory.limit_in_bytes {MEMORY_MB} MB, cpu.cfs_quota_us {CPU_QUOTA} CPU"

    def join(self) -> None:  # in the child, before exec (the benchmark is single-threaded)
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def peak_mb(self) -> float | None:
        for d in self.dirs:
            for name in ("memory.peak", "memory.max_usage_in_bytes"):
                if (d / name).exists():
                    return int((d / name).read_text()) / 2**20
        return None

    def oom_kills(self) -> int:
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                if (d / name).exists():
                    fields = dict(line.split() for line in (d / name).read_text().splitlines())
                    return int(fields.get("oom_kill", 0))
        return 0

    def close(self) -> None:
        for d in reversed(self.dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self.dirs = []


def run_limited(cmd: list[str], env: dict, cgroup: Cgroup | None, timeout: float) -> tuple[float, float]:
    """Run ``cmd`` (in ``cgroup``); its seconds and the peak resident memory of its process tree (MB)."""
    import psutil

    start, peak = time.perf_counter(), 0
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=cgroup.join if cgroup else None,
    )
    while proc.poll() is None and time.perf_counter() - start < timeout:
        try:
            top = psutil.Process(proc.pid)
            total = 0
            for p in [top, *top.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return time.perf_counter() - start, peak / 2**20


def budgets(quick: bool = False) -> list[dict]:
    from labkit.labs import LABS
    from labkit_course.gradescope import build_zip
    from labkit_course.repo import REPO

    labs = [1] if quick else list(LABS)
    container = "docker" if not quick and can_emulate_gradescope() else "all"
    rows = []
    base = Path(tempfile.mkdtemp(prefix="labkit-bench-gradescope-"))
    os.chmod(base, 0o755)  # as /autograder: the uid-drop sandbox's user reaches the venv
    try:
        zips = {n: build_zip(n, base / f"lab{n}.zip") for n in labs}
        if quick:
            python = sys.executable
        else:
            setup_s = setup_venv(zips[1], base / "venv")
            python = str(base / "venv" / "bin" / "python")
            rows.append(row("all", "setup.sh (fresh venv, CPU torch, non-editable) ran", f"{setup_s:.0f} s", True))
        for n in labs:
            module = LABS[n].module
            source = (REPO / "solutions" / "labkit" / f"{module}.py").read_text()
            root = autograder_tree(zips[n], base / f"lab{n}", module, source, "perfect")
            cmd = in_container(["bash", str(root / "source" / "run_autograder")], container, base / "docker_like.py")
            env = {"PATH": "/usr/bin:/bin", "AUTOGRADER_ROOT": str(root), "LABKIT_AUTOGRADER_PYTHON": python}
            cgroup = None if quick else Cgroup(f"labkit-bench-{os.getpid()}-{n}")
            try:
                seconds, rss_mb = run_limited(cmd, env, cgroup, TIMEOUT_SECONDS)
                cgroup_mb, kills = (cgroup.peak_mb(), cgroup.oom_kills()) if cgroup else (None, 0)
            finally:
                if cgroup:
                    cgroup.close()
            results = json.loads((root / "results" / "results.json").read_text())
            points = json.loads((root / "source" / "lab" / "lab.json").read_text())["points"]
            full = sum(points.values())
            backend = results.get("extra_data", {}).get("sandbox", "?")
            how = cgroup.how if cgroup else "no limits (quick)"
            rows.append(
                row(
                    n,
                    f"perfect submission's score on the zip ({container} container, sandbox: {backend}; {how})",
                    f"{results.get('score')} / {full:g}",
                    results.get("score") == full,
                )
            )
            budget_s = LAB1_SECONDS if n == 1 else TIMEOUT_SECONDS
            rows.append(
                row(
                    n,
                    f"run_autograder < {budget_s / 60:g} min at {CPU_QUOTA} CPU",
                    f"{seconds:.0f} s",
                    seconds < budget_s,
                )
            )
            peak = f"{cgroup_mb:.0f} MB (cgroup, page cache included); " if cgroup_mb is not None else ""
            rows.append(
                row(
                    n,
                    f"peak memory <= {MEMORY_MB} MB",
                    f"{peak}{rss_mb:.0f} MB resident; {kills} OOM kills",
                    kills == 0 and rss_mb <= MEMORY_MB,
                )
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows
