"""Run untrusted code (a student's) in its own process: a sandbox backend, resource limits and a watchdog.

Two backends; :func:`backend` picks the first that works here, by running exactly what a real run
runs (a trivial command through the same code path), and says why the other one doesn't:

* ``bwrap``, bubblewrap (Debian/Ubuntu package ``bubblewrap``): new mount, PID, IPC, UTS and
  network namespaces. The filesystem is the system's ``/usr`` (and the ``/bin``, ``/lib`` links),
  the Python environment, and the :class:`Mount` s the caller lists, all read-only except those
  marked writable; ``/tmp`` is an empty tmpfs. No network, not even the host's loopback. When the
  sandbox's first process exits, every process it started dies with it (PID namespace). Run as root
  (CI), the process also drops to an unprivileged uid of its own (``setpriv``).
* ``uid-drop``, for a container that forbids namespaces (Gradescope: root in Docker, without
  CAP_SYS_ADMIN, ``unshare``/``clone(CLONE_NEW*)`` refused by Docker's seccomp profile). Needs root
  and Debian/Ubuntu's ``python3-seccomp`` for ``/usr/bin/python3``. The process runs as an
  unprivileged uid of its own, with no supplementary groups, ``no_new_privs``, and a seccomp filter
  that refuses (EPERM) sockets other than AF_UNIX, namespaces and mounts, ptrace and
  ``process_vm_*``, io_uring, bpf and kernel keyrings. It sees the host's filesystem as that uid:
  the mounts' sources are reached by their host paths (a mount's target is rewritten to its source in
  ``argv``, ``cwd`` and ``env``), the directories the caller made for them under the temp folder are
  opened to that uid only (group and search bit), writable ones are given to it, and
  :func:`protect` ed paths (secrets, references, hidden tests) are checked unreadable before the
  command starts. Its ``TMPDIR`` (and any variable set to ``/tmp``) is a scratch folder of its own,
  removed after the run. What remains: the host's world-writable folders (``/tmp``, ``/dev/shm``,
  ``/var/tmp``) stay writable to it (sticky: it can't touch others' files, but it can leave files
  there during the run, read world-readable ones, and fill the disk up to its file-size limit per file).
  When the run ends, every process of that uid is killed and what it left at the top of those folders
  is removed.

Both get the **limits** (:class:`Limits`): address space, CPU seconds, file size and process count
(``setrlimit``), resident memory of the whole process tree, process count and wall-clock time
(the watchdog, which kills the whole tree).

Every run starts with a trampoline (trusted code, run where the student's command will run: inside
bubblewrap, or as the dropped uid) that sets the limits, checks that the command and the mounts are
reachable and the protected paths are not, and reports on a pipe before it ``exec`` s the command.
A run whose trampoline never reported is the harness's failure, not the student's: :func:`run` raises
:class:`SandboxFailed` with the sandbox's own words.

Modes (``--sandbox``): ``require`` (default: bwrap, else uid-drop, else :class:`SandboxUnavailable`),
``bwrap`` or ``uid-drop`` (that backend only), ``fallback`` (like ``require``, but with neither it
runs with the limits only and says so in :attr:`Run.notes`).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

MODES = ("require", "fallback", "bwrap", "uid-drop")
BACKENDS = ("bwrap", "uid-drop")
SYSTEM_PYTHON = "/usr/bin/python3"  # the uid-drop trampoline's interpreter: the one apt's python3-seccomp is for
FALLBACK_WARNING = (
    "NOT SANDBOXED: neither bubblewrap nor the uid-drop sandbox works here, so student code ran "
    "with resource limits only and could read and write whatever this user can"
)


class SandboxUnavailable(RuntimeError):
    """No sandbox backend the mode accepts works on this machine: grading refused."""


class SandboxFailed(SandboxUnavailable):
    """The sandbox failed to start a command (before any of the student's code ran): the harness's fault."""

    def __init__(self, backend: str, reason: str):
        super().__init__(f"the {backend or 'unsandboxed'} runner failed before the student's code ran: {reason}")
        self.reason = reason


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
    backend: str = ""  # "bwrap" | "uid-drop" | "" (not sandboxed)

    @property
    def sandboxed(self) -> bool:
        return bool(self.backend)


@dataclass(frozen=True)
class Request:
    """One command to run, as :func:`run` is given it (see there): the command, its limits, what it
    sees (``mounts``), its whole environment, its working folder, where its output goes, the host
    folders it must be able to write and the size of its writable ``/tmp`` (bubblewrap only)."""

    argv: list[str]
    limits: Limits
    mounts: list[Mount]
    env: dict[str, str]
    cwd: Path
    output: Path
    writable: tuple[Path, ...] = ()
    tmp_mb: int | None = None


# ----------------------------------------------------------------------------------------------
# Choosing a backend
# ----------------------------------------------------------------------------------------------
@functools.cache
def probe(name: str) -> str:
    """Why backend ``name`` can't run a command here ("" if it can): a trivial command run exactly
    as a real run runs it (same arguments, same user, same filter, same checks)."""
    if name == "bwrap" and not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if name == "uid-drop" and os.geteuid() != 0:
        return "the uid-drop sandbox needs root (to give the code a uid of its own)"
    with tempfile.TemporaryDirectory(prefix="labkit-probe-") as tmp:
        box = Path(tmp) / "out"  # like a judge's: the command's writable folder, its cwd
        box.mkdir()
        try:
            limits, mounts = Limits(wall_timeout=60), [Mount(box, writable=True)]
            done = _start(name, Request(["/usr/bin/true"], limits, mounts, {}, box, Path(tmp) / "log", (box,)))
        except SandboxFailed as exc:
            return exc.reason
    return "" if done.returncode == 0 else f"{name}: a trivial command ended with code {done.returncode}"


def bwrap() -> str | None:
    """The path of ``bwrap`` if bubblewrap works here for a real run, else None."""
    return shutil.which("bwrap") if not probe("bwrap") else None


def backend(mode: str = "require") -> str:
    """The backend ``mode`` gets here: "bwrap", "uid-drop", or "" (``fallback`` with neither).

    Raises :class:`SandboxUnavailable`, naming what each backend lacks, when the mode can't be met."""
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {MODES}; got {mode!r}")
    wanted = [mode] if mode in BACKENDS else list(BACKENDS)
    for name in wanted:
        if (bwrap() is not None) if name == "bwrap" else not probe(name):
            return name
    if mode == "fallback":
        return ""
    why = "; ".join(f"{name}: {probe(name)}" for name in wanted)
    raise SandboxUnavailable(
        f"no sandbox works here, so grading is refused ({why}). Where namespaces are allowed, install "
        "bubblewrap (apt-get install bubblewrap); in a container that forbids them, run as root with "
        "python3-seccomp installed (apt-get install python3-seccomp); or pass --sandbox=fallback to grade "
        "with resource limits only (every report will say the code was not sandboxed)."
    )


def check_mode(mode: str) -> str:
    """The backend to sandbox with for ``mode`` ("" for none); see :func:`backend`."""
    return backend(mode)


def backend_note(name: str) -> str:
    """What an instructor should know about the backend that ran ("" for bubblewrap, the default)."""
    if name == "uid-drop":
        why = probe("bwrap")
        return (
            (f"this machine forbids the namespaces bubblewrap needs ({why}); " if why else "")
            + "using the uid-drop sandbox (an unprivileged uid of its own and a seccomp filter: "
            "no network, no namespaces, no ptrace)"
        )
    return "" if name else FALLBACK_WARNING


_private: set[Path] = set()


def protect(path: Path) -> None:
    """Make ``path`` (a secret, a reference, hidden tests) unreadable to sandboxed code: owner only
    (mode 0700/0600), and checked unreadable by the sandbox's user before every uid-drop run."""
    path = Path(path).resolve()
    os.chmod(path, 0o700 if path.is_dir() else 0o600)
    _private.add(path)


# ----------------------------------------------------------------------------------------------
# bubblewrap
# ----------------------------------------------------------------------------------------------
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


def _bwrap_args(request: Request, uid: int | None) -> list[str]:
    """bubblewrap's command line for ``request``, up to the command (``uid``: setpriv drops to it)."""
    args = [
        shutil.which("bwrap"),
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
    if request.tmp_mb:  # a writable /tmp of bounded size: a tmpfs is memory, and unbounded it is a disk filler's
        args += ["--size", str(request.tmp_mb * 2**20), "--perms", "1777", "--tmpfs", "/tmp"]
    if uid is None:  # not root: an unprivileged user namespace does the isolating
        args += ["--unshare-user"]
    made = {Path("/")}
    for m in [*python_mounts(), *request.mounts]:
        target = Path(m.target or m.source)
        for parent in reversed(target.parents):  # bwrap would make them 0700: unreadable once we drop root
            if parent not in made and not str(parent).startswith(("/usr", "/proc", "/dev")):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--bind" if m.writable else "--ro-bind", str(m.source), str(target)]
    for key, value in request.env.items():
        args += ["--setenv", key, value]
    args += ["--chdir", str(request.cwd), "--"]
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


# ----------------------------------------------------------------------------------------------
# The trampoline: trusted code where the student's command will run, last step before it
# ----------------------------------------------------------------------------------------------
# A script, not preexec_fn (not safe in a threaded parent: grading runs submissions in threads). It
# reports "ready" on the pipe SPEC["fd"] (close-on-exec: the command never holds it), or "ERR why".
_TRAMPOLINE = r"""
import errno, json, os, resource, sys
spec = json.loads(sys.argv[1])
fd = spec["fd"]
os.set_inheritable(fd, False)
def fail(why):
    os.write(fd, b"ERR " + why.encode()[:1000])
    sys.exit(125)
try:
    mem, cpu, fsize, nproc = spec["limits"]
    resource.setrlimit(resource.RLIMIT_AS, (mem * 2**20, mem * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize * 2**20, fsize * 2**20))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    uid = spec.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid or os.getgroups():
            fail("could not drop to uid %d" % uid)
    if spec.get("seccomp"):
        import seccomp as S
        f = S.SyscallFilter(S.ALLOW)  # sets no_new_privs: no setuid binary gives root back
        deny = S.ERRNO(errno.EPERM)
        f.add_rule(deny, "socket", S.Arg(0, S.NE, 1))  # AF_UNIX only
        for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080):
            f.add_rule(deny, "clone", S.Arg(0, S.MASKED_EQ, flag, flag))  # CLONE_NEW*
        f.add_rule(S.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of reach: libc falls back to clone
        for name in ("unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
                     "fsopen", "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv",
                     "process_vm_writev", "io_uring_setup", "io_uring_enter", "io_uring_register", "bpf",
                     "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
                     "open_by_handle_at", "name_to_handle_at"):
            f.add_rule(deny, name)
        f.load()
    os.chdir(spec["cwd"])
    for p in spec["read"]:
        if not os.access(p, os.R_OK | (os.X_OK if os.path.isdir(p) else 0)):
            fail("the sandbox's user cannot read %s" % p)
    for p in spec["write"]:
        if not os.access(p, os.W_OK | os.X_OK):
            fail("the sandbox's user cannot write %s" % p)
    for p in spec["private"]:
        if os.access(p, os.R_OK) or os.access(p, os.X_OK):
            fail("the sandbox's user could read %s, which must stay private" % p)
    if not os.access(sys.argv[2], os.X_OK):
        fail("the sandbox's user cannot run %s" % sys.argv[2])
except Exception as exc:
    fail("%s: %s" % (type(exc).__name__, exc))
os.write(fd, b"ready")
try:
    os.execv(sys.argv[2], sys.argv[2:])
except OSError as exc:
    fail("could not start %s: %s" % (sys.argv[2], exc))
"""


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


def _open_to(uid: int, paths: list[Path]) -> None:
    """Let ``uid`` reach ``paths``: the directories above them that we made under the temp folder
    (mkdtemp's 0700) get its group and the search bit only (it can open what it is told, not list)."""
    tmp = Path(tempfile.gettempdir()).resolve()
    for path in paths:
        for parent in Path(path).resolve().parents:
            if parent == tmp or tmp not in parent.parents:
                break
            st = os.stat(parent)
            if st.st_uid == os.geteuid() and not st.st_mode & stat.S_IXOTH:
                os.chown(parent, -1, uid)
                os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXGRP)


def _hand_over(top: Path, uid: int) -> None:
    """Give the folder ``top`` and everything in it to ``uid``. Only a private folder of ours is
    accepted: never a shared one (``/tmp`` itself, a sticky or world-writable folder), nor one that
    holds the temp folder: handing ``/tmp`` to a sandbox uid once locked every root tool out of it."""
    top = top.resolve()
    st = os.stat(top)
    tmp = Path(tempfile.gettempdir()).resolve()
    if (
        not stat.S_ISDIR(st.st_mode)
        or st.st_uid != os.geteuid()
        or st.st_mode & (stat.S_ISVTX | stat.S_IWOTH)
        or top == tmp
        or top in tmp.parents
    ):
        raise ValueError(f"refusing to give {top} to the sandbox: not a private folder of ours")
    for folder, dirs, files in os.walk(top):  # os.walk never follows a symbolic link
        os.chown(folder, uid, uid, follow_symlinks=False)
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def _retarget(value: str, mounts: list[Mount]) -> str:
    """``value`` with a mount's target replaced by its source (no mount namespace: targets don't exist)."""
    for m in mounts:
        target, source = str(m.target or m.source), str(m.source)
        if value == target or value.startswith(target + "/"):
            return source + value[len(target) :]
    return value


def _start(name: str, request: Request) -> Run:
    """Run ``request`` with backend ``name`` ("" for none); raise :class:`SandboxFailed` if it never started.

    Steps: a uid of its own for the sandbox (bwrap as root, uid-drop), given the writable folders;
    the command as that backend sees it (:func:`_as_seen`); the trampoline's command line
    (:func:`_command`); the run, watched, and what the trampoline reported (:func:`_launch`)."""
    uid = _sandbox_uid() if name == "uid-drop" or (name == "bwrap" and os.geteuid() == 0) else None
    if uid is not None:
        for top in request.writable:
            _hand_over(Path(top), uid)
    scratch = None
    if name == "uid-drop":
        # no private /tmp without a mount namespace: a scratch folder of its own stands for it (TMPDIR,
        # and any variable set to /tmp); the host's /tmp stays reachable, see the module doc
        scratch = Path(tempfile.mkdtemp(prefix="labkit-scratch-"))
    try:
        if scratch is not None:
            _hand_over(scratch, uid)
        request, visible = _as_seen(name, request, uid, scratch)
        result, report = _launch(name, request, uid, visible)
    finally:
        if scratch is not None:  # its uid's processes are gone: nothing can race the removal
            shutil.rmtree(scratch, ignore_errors=True)
    if report != "ready":
        said = report.removeprefix("ready").removeprefix("ERR ").strip()
        if not said:
            with open(request.output, "rb") as log:
                said = log.read(1000).decode(errors="replace").strip() or f"exit code {result.returncode}"
        raise SandboxFailed(name, said)
    return result


def _as_seen(name: str, request: Request, uid: int | None, scratch: Path | None) -> tuple[Request, list[Mount]]:
    """``request`` as backend ``name`` runs it, and the paths its trampoline checks (each a
    :class:`Mount` of the path the command sees, and whether it must be writable)."""
    if name == "uid-drop":  # no mount namespace: the command reaches the mounts' sources by their host paths
        mounts = request.mounts
        env = {k: str(scratch) if v == "/tmp" else _retarget(v, mounts) for k, v in request.env.items()}
        env.update({k: str(scratch) for k in ("TMPDIR", "TMP", "TEMP")})
        cwd = Path(_retarget(str(request.cwd), mounts))
        request = replace(request, argv=[_retarget(a, mounts) for a in request.argv], env=env, cwd=cwd)
        visible = [Mount(m.source, None, m.writable) for m in [*python_mounts(), *mounts, Mount(scratch, None, True)]]
        _open_to(uid, [m.source for m in mounts] + [cwd])
        return request, visible
    if name == "bwrap":
        return request, [
            Mount(Path(m.target or m.source), None, m.writable) for m in [*python_mounts(), *request.mounts]
        ]
    return request, []  # no sandbox: the caller passes host paths, mounts mean nothing


def _command(
    name: str, request: Request, uid: int | None, visible: list[Mount], ready_w: int
) -> tuple[list[str], dict[str, str]]:
    """The command line that runs ``request`` through the trampoline (which reports on ``ready_w``)
    with backend ``name``, and its environment."""
    argv, limits = request.argv, request.limits
    exe = argv[0] if os.path.isabs(argv[0]) else (shutil.which(argv[0]) or argv[0])
    spec = {
        "fd": ready_w,
        "limits": [limits.address_space_mb, limits.cpu, limits.file_mb, _nproc_limit(limits, uid)],
        "uid": uid if name == "uid-drop" else None,  # bwrap: setpriv drops it
        "seccomp": name == "uid-drop",
        "cwd": str(request.cwd),
        "read": [str(m.source) for m in visible if not m.writable],
        "write": [str(m.source) for m in visible if m.writable],
        "private": [str(p) for p in sorted(_private)],
    }
    trampoline = ["-I", "-c", _TRAMPOLINE, json.dumps(spec), exe, *argv[1:]]
    if name == "bwrap":
        return _bwrap_args(request, uid) + [sys.executable, *trampoline], {"PATH": "/usr/bin:/bin"}
    if name == "uid-drop":
        return [SYSTEM_PYTHON, *trampoline], dict(request.env)
    return [sys.executable, *trampoline], dict(request.env)


def _launch(name: str, request: Request, uid: int | None, visible: list[Mount]) -> tuple[Run, str]:
    """Run ``request`` (as :func:`_as_seen` made it) and watch it until its process tree is gone (under
    uid-drop: every process of ``uid``, and what it left in the shared folders); how it ended, and what
    the trampoline reported ("ready", "ERR why", or "" if it never did)."""
    ready_r, ready_w = os.pipe()
    try:
        cmd, child_env = _command(name, request, uid, visible, ready_w)
        result = Run(None, 0.0, backend=name)
        start = time.perf_counter()
        with open(request.output, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                env=child_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(ready_w,),
            )
            os.close(ready_w)
            ready_w = -1
            result.killed = _watch(proc, request.limits, result, start, uid if name == "uid-drop" else None)
        kill_tree(proc.pid)
        if name == "uid-drop":
            kill_user(uid)
            _sweep_shared(uid)
        result.returncode = proc.returncode
        result.seconds = time.perf_counter() - start
        os.set_blocking(ready_r, False)
        try:
            return result, os.read(ready_r, 2000).decode(errors="replace")
        except BlockingIOError:
            return result, ""
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)


def run(
    argv: list[str],
    *,
    limits: Limits,
    mounts: list[Mount],
    env: dict[str, str],
    cwd: Path,
    output: Path,
    sandbox: bool | str = True,
    writable: list[Path] = (),
    tmp_mb: int | None = None,
) -> Run:
    """Run ``argv`` under ``limits`` in backend ``sandbox`` (True: the best one here, see :func:`backend`;
    False or "": none); stdout and stderr go to ``output``.

    ``mounts`` are what the process may see besides the system and the Python environment;
    ``writable`` lists host directories it must be able to write (given to the sandbox's user).
    ``env`` is its whole environment. Blocks until the process tree is gone. Raises
    :class:`SandboxFailed` if the sandbox could not start the command (nothing of ``argv`` ran).
    ``tmp_mb``: with bubblewrap, ``/tmp`` is a writable tmpfs of that many MB (the disk quota of a
    box; default: an empty read-only one).
    """
    name = backend("require") if sandbox is True else (sandbox or "")
    if name not in ("", *BACKENDS):
        raise ValueError(f"sandbox must be a bool or one of {BACKENDS}; got {sandbox!r}")
    request = Request(list(argv), limits, mounts, env, Path(cwd), Path(output), tuple(writable), tmp_mb)
    result = _start(name, request)
    note = backend_note(name)
    if note:
        result.notes.insert(0, note)
    if tmp_mb and name == "uid-drop":  # no mount namespace, so no bounded tmpfs: say so
        result.notes.append(f"no disk quota under the uid-drop sandbox (only {limits.file_mb} MB per file)")
    return result


def _watch(proc: subprocess.Popen, limits: Limits, result: Run, start: float, uid: int | None) -> str:
    """Wait for ``proc``, enforcing the wall-clock limit, the resident memory of its process tree (a
    tree over the limit loses its biggest process: in a notebook, the kernel, which costs the running
    cell only) and the number of processes in it (a fork bomb loses the whole tree). With ``uid``,
    every process of that uid counts as the tree's (one that left the tree included)."""
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
        except psutil.Error:
            tree = []
        if uid is not None:
            tree += [p for p in _processes_of(uid) if p not in tree]
        rss = {}
        for p in tree:
            try:
                rss[p] = p.memory_info().rss
            except psutil.Error:
                pass
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
                    f"its processes used {sum(rss.values()) / 2**20:.0f} MB together, over the memory limit "
                    f"of {limits.memory_mb} MB: the largest ({rss[biggest] / 2**20:.0f} MB) was killed"
                )
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
    return killed


def _processes_of(uid: int) -> list:
    import psutil

    return [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and uid in p.info["uids"]]


def kill_user(uid: int) -> None:
    """Kill every process of ``uid`` (a uid-drop sandbox's: one that left the tree, or a daemon)."""
    import psutil

    for _ in range(3):  # a process may fork while we kill: go again until none is left
        procs = _processes_of(uid)
        if not procs:
            return
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=1)


SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable on every Linux: reachable under uid-drop


def _sweep_shared(uid: int) -> None:
    """Remove what ``uid`` (a finished uid-drop sandbox's, its processes gone) left at the top of the
    host's world-writable folders; only entries it owns, never followed through a symbolic link."""
    for shared in SHARED_FOLDERS:
        try:
            entries = list(os.scandir(shared))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)  # fd-based on Linux: follows no link inside
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


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
