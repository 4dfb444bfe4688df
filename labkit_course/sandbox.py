"""Run untrusted code (a student's) in its own process: bubblewrap, resource limits and a watchdog.

What a sandboxed process gets (:func:`run` with ``mode="require"``):

* **bubblewrap** (``bwrap``, Debian/Ubuntu package ``bubblewrap``): new mount, PID, IPC, UTS and
  network namespaces. The filesystem is the system's ``/usr`` (and the ``/bin``, ``/lib`` links),
  the Python environment, and the :class:`Mount` s the caller lists, all read-only except those
  marked writable; ``/tmp`` is an empty tmpfs. No network, not even the host's loopback. When the
  sandbox's first process exits, every process it started dies with it (PID namespace).
* **another user**: run as root (CI, Gradescope), the process drops to an unprivileged uid of its
  own (``setpriv``), so the process limit applies and nothing it creates belongs to root.
* **limits** (:class:`Limits`): address space, CPU seconds, file size and process count
  (``setrlimit``), resident memory of the whole process tree, process count and wall-clock time
  (the watchdog, which kills the whole tree).

Without bubblewrap, ``mode="require"`` raises :class:`SandboxUnavailable`; ``mode="fallback"``
runs with the limits only and says so in :attr:`Run.notes`.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("require", "fallback")
FALLBACK_WARNING = (
    "NOT SANDBOXED: bubblewrap (bwrap) is missing or does not work here, so student code ran "
    "with resource limits only and could read and write whatever this user can"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap is required but missing or not working on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for the student code of one submission."""

    cell_timeout: int = 300  # seconds per notebook cell (nbgrader's Execute.timeout)
    wall_timeout: int = 1200  # seconds for one sandboxed process, start to end
    memory_mb: int = 6144  # resident memory of the process tree (watched; the biggest process is killed)
    cpu_seconds: int | None = None  # RLIMIT_CPU per process; default: 2 x wall_timeout
    threads: int | None = None  # CPU threads of torch/BLAS (labkit_course.notebooks.thread_env); default: cores
    processes: int = 256  # processes and threads of the sandbox's user (RLIMIT_NPROC) and of the tree (watched)
    file_mb: int = 1024  # largest file a sandboxed process may write (RLIMIT_FSIZE)

    @property
    def address_space_mb(self) -> int:
        """RLIMIT_AS per process, a backstop against instant huge allocations: 4 x memory_mb
        (virtual memory: torch and BLAS threads reserve far more than they use)."""
        return 4 * self.memory_mb

    @property
    def cpu(self) -> int:
        return self.cpu_seconds or 2 * self.wall_timeout


@dataclass(frozen=True)
class Mount:
    """``source`` on the host, seen at ``target`` (default: the same path) inside the sandbox."""

    source: Path
    target: Path | None = None
    writable: bool = False


@dataclass
class Run:
    """How a sandboxed process ended."""

    returncode: int | None
    seconds: float
    killed: str = ""  # why the watchdog killed it: "" | "timeout" | "memory" | "processes"
    notes: list[str] = field(default_factory=list)
    sandboxed: bool = True


# ----------------------------------------------------------------------------------------------
# bubblewrap
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def bwrap() -> str | None:
    """The path of a working ``bwrap``, or None (missing, or user namespaces are disabled)."""
    path = shutil.which("bwrap")
    if not path:
        return None
    probe = [path, "--unshare-all", "--die-with-parent", *_system_mounts(), "--", "/usr/bin/true"]
    try:
        ok = subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return path if ok else None


def check_mode(mode: str) -> bool:
    """Whether to sandbox, for ``mode``; raise :class:`SandboxUnavailable` if it is required and missing."""
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {MODES}; got {mode!r}")
    if bwrap():
        return True
    if mode == "require":
        raise SandboxUnavailable(
            "bubblewrap is required to grade untrusted code, and `bwrap` is missing or not working here. "
            "Install it (Debian/Ubuntu: `apt-get install bubblewrap`), or pass --sandbox=fallback to grade "
            "with resource limits only (every report will say the code was not sandboxed)."
        )
    return False


def _system_mounts() -> list[str]:
    """The read-only system: /usr, the merged-/usr links (or directories) and the dynamic linker's cache."""
    args = ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def python_mounts() -> list[Mount]:
    """This Python environment, read-only: the interpreter's prefix and the venv's, if any."""
    prefixes = {Path(p).resolve() for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix)}
    exe = Path(sys.executable)
    return [Mount(p) for p in sorted(prefixes)] + (
        [Mount(exe.parent)]
        if exe.parent.resolve() not in prefixes and not any(p in exe.parents for p in prefixes)
        else []
    )


UID_BASE, UIDS_PER_PROCESS = 100_000, 64
# A block of uids per grading process (two graders on one machine don't share a process limit),
# cycled among its concurrent sandboxes.
_uids = itertools.cycle(
    range(UID_BASE + UIDS_PER_PROCESS * (os.getpid() % 1000), UID_BASE + UIDS_PER_PROCESS * (os.getpid() % 1000 + 1))
)
_uid_lock = threading.Lock()
#: every uid this process gave a sandbox
given_uids: set[int] = set()


def _sandbox_uid() -> int:
    """An unprivileged uid for the next sandbox, different from the ones running beside it."""
    with _uid_lock:
        uid = next(_uids)
        given_uids.add(uid)
        return uid


def _bwrap_args(mounts: list[Mount], env: dict[str, str], cwd: Path, uid: int | None) -> list[str]:
    args = [
        bwrap(),
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        *_system_mounts(),
        "--clearenv",
    ]
    if uid is None:  # not root: an unprivileged user namespace does the isolating
        args += ["--unshare-user"]
    made = {Path("/")}
    for m in [*python_mounts(), *mounts]:
        target = Path(m.target or m.source)
        for parent in reversed(target.parents):  # bwrap would make them 0700: unreadable once we drop root
            if parent not in made and not str(parent).startswith(("/usr", "/proc", "/dev")):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--bind" if m.writable else "--ro-bind", str(m.source), str(target)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", str(cwd), "--"]
    if uid is not None:
        args += [
            "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
    return args


# Limits are set by a tiny trampoline that then execs the real command: preexec_fn is not safe
# in a threaded parent (grading runs submissions in threads).
_TRAMPOLINE = (
    "import os, resource, sys\n"
    "mem, cpu, fsize, nproc = (int(v) for v in sys.argv[1:5])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (mem * 2**20, mem * 2**20))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize * 2**20, fsize * 2**20))\n"
    "resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.argv[5], sys.argv[5:])\n"
)


def _nproc_limit(limits: Limits, uid: int | None) -> int:
    if uid is not None:  # a uid of its own: only the sandbox counts
        return limits.processes
    import psutil  # our own uid: our other processes (and their threads) count too

    me = os.getuid()
    mine = sum(
        p.info["num_threads"] or 1
        for p in psutil.process_iter(["uids", "num_threads"])
        if p.info["uids"] and p.info["uids"].real == me
    )
    return mine + limits.processes


def run(
    argv: list[str],
    *,
    limits: Limits,
    mounts: list[Mount],
    env: dict[str, str],
    cwd: Path,
    output: Path,
    sandbox: bool = True,
    writable: list[Path] = (),
) -> Run:
    """Run ``argv`` under ``limits``, in bubblewrap when ``sandbox``; stdout and stderr go to ``output``.

    ``mounts`` are what the process may see besides the system and the Python environment;
    ``writable`` lists host directories it must be able to write (given to the sandbox's user).
    ``env`` is its whole environment. Blocks until the process tree is gone.
    """
    uid = _sandbox_uid() if sandbox and os.geteuid() == 0 else None
    if uid is not None:
        for top in writable:
            for path in [Path(top), *Path(top).rglob("*")]:
                os.chown(path, uid, uid, follow_symlinks=False)
    if sandbox:
        cmd, child_env = _bwrap_args(mounts, env, cwd, uid) + list(argv), {"PATH": "/usr/bin:/bin"}
    else:
        cmd, child_env = list(argv), dict(env)
    trampoline = [
        sys.executable,
        "-I",
        "-c",
        _TRAMPOLINE,
        str(limits.address_space_mb),
        str(limits.cpu),
        str(limits.file_mb),
        str(_nproc_limit(limits, uid)),
        *([shutil.which(cmd[0]) or cmd[0]] if not os.path.isabs(cmd[0]) else [cmd[0]]),
        *cmd[1:],
    ]
    result = Run(None, 0.0, sandboxed=sandbox)
    if not sandbox:
        result.notes.append(FALLBACK_WARNING)
    start = time.perf_counter()
    with open(output, "wb") as log:
        proc = subprocess.Popen(
            trampoline,
            cwd=cwd if not sandbox else None,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        result.killed = _watch(proc, limits, result, start)
    kill_tree(proc.pid)
    result.returncode = proc.returncode
    result.seconds = time.perf_counter() - start
    return result


def _watch(proc: subprocess.Popen, limits: Limits, result: Run, start: float) -> str:
    """Wait for ``proc``, enforcing the wall-clock limit, the resident memory of its process tree (a
    tree over the limit loses its biggest process: in a notebook, the kernel, which costs the running
    cell only) and the number of processes in it (a fork bomb loses the whole tree)."""
    import psutil

    killed = ""
    while proc.poll() is None:
        if time.perf_counter() - start > limits.wall_timeout:
            kill_tree(proc.pid)
            result.notes.append(f"stopped after the wall-clock limit of {limits.wall_timeout} s")
            return "timeout"
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
            rss = {}
            for p in tree:
                try:
                    rss[p] = p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            tree, rss = [], {}
        if len(tree) > limits.processes:
            kill_tree(proc.pid)
            result.notes.append(f"started more than {limits.processes} processes: all were killed")
            return "processes"
        if rss and sum(rss.values()) > limits.memory_mb * 2**20:
            biggest = max(rss, key=rss.get)
            try:
                biggest.kill()
                killed = "memory"
                result.notes.append(
                    f"a process used {rss[biggest] / 2**20:.0f} MB, over the memory limit "
                    f"of {limits.memory_mb} MB: it was killed"
                )
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
    return killed


def kill_tree(pid: int) -> None:
    """Kill the process group of ``pid`` and every descendant (a kernel runs in a session of its own)."""
    import psutil

    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in descendants:
        try:
            p.kill()
        except psutil.Error:
            pass
