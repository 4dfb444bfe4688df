"""nbgrader's ``Execute`` for grading: the kernel runs in a sandbox of its own, its messages are
capped, and a kernel crash costs only the cell it happened in.

**Only the kernel is sandboxed.** nbgrader runs in a process of the grader's (trusted code: it reads
the notebook, writes the executed copy); the kernel, the one process that runs student code, is
started through the kernel spec :data:`KERNEL_NAME`, whose command is :func:`launch`: it starts
``ipykernel`` in :mod:`labkit_course.sandbox` (bubblewrap: its own PID namespace and user, no
network), with a copy of the notebook's folder in a size-limited ``/tmp`` (the disk quota). The two
talk over ZMQ's ``ipc`` transport, sockets in a directory bind-mounted into the box. The kernel
cannot see nbgrader's process (``/proc``, signals, ``ptrace``), the executed notebook nbgrader
writes, nor anything of the course; when it ends, every process it started dies with its PID
namespace.

**Kernel output is untrusted data**: messages over :data:`MESSAGE_CAP` are refused by ZMQ
(``MAXMSGSIZE``), and a notebook keeps at most :data:`OUTPUT_CAP` bytes of outputs.

**Crashes**: plain nbgrader gives up on the whole notebook when the kernel dies (a segfault,
``os._exit``, the out-of-memory killer). Here the cell gets an error output, the kernel is
restarted, the earlier non-test cells are re-run (outputs discarded), and execution goes on, so the
rest of the notebook is still there for the instructor to read.

Configure it as ``c.Autograde.autograde_preprocessors = ["labkit_course.crash_tolerant_execute.
CrashTolerantExecute", ...]``; its traits are ``Execute``'s (``timeout``, ``startup_timeout``...).
:func:`labkit_course.grading.preparing.prepare_kernel_box` sets up the rest (kernel spec, ``ipc``, the box settings).
"""

import copy
import json
import os
import sys
import threading
from pathlib import Path

import zmq
from jupyter_core.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade, is_solution

#: the kernel spec whose command is :func:`launch`
KERNEL_NAME = "labkit-sandboxed"
#: environment variable naming the JSON file of the box's settings (written by the grader)
BOX_SETTINGS = "LABKIT_KERNEL_BOX"
MESSAGE_CAP = 32 * 2**20  # bytes: the largest message accepted from the kernel
OUTPUT_CAP = 16 * 2**20  # bytes of outputs (their JSON) kept per notebook
RUNTIME_CAP = 8 * 2**20  # bytes the kernel may leave in the socket directory (the one host folder it writes)
LOG_CAP = 2**20  # bytes of the kernel's raw stdout/stderr kept on disk (it only needs a tail)


class CrashTolerantExecute(Execute):
    """Execute every cell in the sandboxed kernel; on a dead kernel, record the crash in that cell,
    restart and go on."""

    def preprocess(self, nb, resources=None, km=None):
        self._output_bytes, self._truncated = 0, False
        return super().preprocess(nb, resources, km)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        make_client = km.client

        def capped_client(**kwargs):
            """The client nbclient makes (it has a ZMQ context of its own): every socket it opens
            refuses messages over MESSAGE_CAP."""
            kc = make_client(**kwargs)
            kc.context.setsockopt(zmq.MAXMSGSIZE, MESSAGE_CAP)  # the default of the sockets made after this
            return kc

        km.client = capped_client
        return km

    def output(self, outs, msg, display_id, cell_index):
        self._output_bytes += len(json.dumps(msg.get("content", {})))
        if self._output_bytes > OUTPUT_CAP:
            if not self._truncated:
                self._truncated = True
                outs.append(
                    new_output(
                        "stream", name="stderr", text=f"[output truncated: over {OUTPUT_CAP // 2**20} MB of outputs]\n"
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)

    def preprocess_cell(self, cell, resources, index):
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self.log.warning("the kernel died in cell %d: restarting it", index)
            cell.outputs.append(
                new_output(
                    "error",
                    ename="KernelDied",
                    evalue="the kernel died while running this cell (a crash, os._exit, or out of memory)",
                    traceback=["KernelDied: the kernel died while running this cell"],
                )
            )
            run_sync(self.km.restart_kernel)(now=True)
            run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)
            for j, earlier in enumerate(self.nb.cells[:index]):
                if earlier.cell_type == "code" and not (is_grade(earlier) and not is_solution(earlier)):
                    self.execute_cell(copy.deepcopy(earlier), j, store_history=False)
            return cell, self.resources


def kernel_spec(folder: Path) -> Path:
    """Write the kernel spec :data:`KERNEL_NAME` under ``folder`` (give ``folder`` as ``JUPYTER_PATH``)."""
    spec = Path(folder) / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "labkit_course.crash_tolerant_execute", "{connection_file}"],
                "display_name": "Python 3 (labkit grading sandbox)",
                "language": "python",
                "interrupt_mode": "message",  # a signal would reach this launcher, not the sandboxed kernel
            }
        )
    )
    return spec


# Runs first in the box (trusted: -I, so no audit hook and no PYTHONPATH): the kernel's own copy of
# the notebook's folder in the box's /tmp, without the notebooks (the kernel does not need them).
_START = """\
import os, shutil, sys
src, dest, connection_file = sys.argv[1:4]
shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.ipynb"))
os.chdir(dest)
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file,
                          "--HistoryManager.hist_file=:memory:"])
"""


def _bytes_under(folder: Path) -> int:
    return sum(os.lstat(os.path.join(top, name)).st_size for top, _, files in os.walk(folder) for name in files)


def _clear_runtime(runtime: Path) -> None:
    """Remove what a kernel left in the socket folder, except the sockets, connection files and the
    start of the audit log (a restarted kernel gets a clean folder)."""
    import re
    import shutil

    for entry in os.scandir(runtime):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.name == "audit.log" and entry.is_file(follow_symlinks=False):
                os.truncate(entry.path, min(entry.stat().st_size, 2**16))
            elif entry.is_symlink() or (
                entry.is_file()
                and not (re.fullmatch(r"kernel-[0-9a-f-]+\.json", entry.name) and entry.stat().st_size < 2**16)
            ):
                os.unlink(entry.path)
        except OSError:
            continue


def _fresh_runtime(runtime: Path) -> None:
    """Make ``runtime`` (the socket folder) an empty folder of ours. A restarted kernel's
    predecessor (dead, its box gone) had it, and what it left there: that folder is moved aside
    (it is the grader's to read and remove), never taken back."""
    if runtime.exists() and (os.lstat(runtime).st_uid != os.geteuid() or any(runtime.iterdir())):
        n = 1
        while runtime.with_name(f"{runtime.name}.{n}").exists():
            n += 1
        runtime.rename(runtime.with_name(f"{runtime.name}.{n}"))
    runtime.mkdir(mode=0o700, exist_ok=True)


def launch(connection_file: str) -> int:
    """The kernel spec's command, run by nbgrader in the folder of the notebook: start ``ipykernel``
    in the sandbox described by the file :data:`BOX_SETTINGS` names, and wait for it.

    Settings (JSON): ``backend`` (:func:`labkit_course.sandbox.backend`), ``limits`` (a
    :class:`~labkit_course.sandbox.Limits` as a dict), ``tmp_mb`` (the box's disk), ``env`` (the
    kernel's environment), ``mounts`` (read-only folders it may see: the audit hook's), ``log``
    (where the kernel's raw output goes), ``runtime`` (the kernel's own folder, made by the grader
    with ``mkdtemp``: its sockets, a copy of the connection file, its audit log). The connection
    file's ``ip`` must name a socket path in ``runtime``. The connection file's own folder is never
    given to the kernel: by default it is the shared temp folder."""
    import psutil

    from labkit_course import sandbox

    settings = json.loads(Path(os.environ[BOX_SETTINGS]).read_text())
    limits = sandbox.Limits(**settings["limits"])
    here = Path.cwd()
    runtime = Path(settings["runtime"])
    info = json.loads(Path(connection_file).read_text())
    if info.get("transport") != "ipc" or Path(info.get("ip", "")).parent != runtime:
        raise SystemExit(f"labkit: the kernel's sockets must be ipc sockets in {runtime}")
    _fresh_runtime(runtime)
    own_connection_file = runtime / f"kernel-{os.getpid()}.json"  # the kernel's uid reads it once handed over
    with open(os.open(own_connection_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        json.dump(info, f)
    log = Path(settings["log"])
    if settings["backend"] == "bwrap":
        src, dest = Path("/labkit/notebook"), "/tmp/notebook"
    else:  # no mount namespace: the host's paths, a folder of its own next to the sockets
        src, dest = here, str(runtime / f"work-{os.getpid()}")
    mounts = [
        sandbox.Mount(here, src),
        sandbox.Mount(runtime, writable=True),
        *(sandbox.Mount(Path(m)) for m in settings["mounts"]),
    ]
    done = threading.Event()

    def watch_disk() -> None:
        """The socket folder is on the host's disk: a kernel filling it loses its box, and what it
        wrote there; its raw output (``log``) keeps a bounded size."""
        while not done.wait(0.2):
            try:
                if log.exists() and log.stat().st_size > LOG_CAP:
                    os.truncate(log, 0)
                if _bytes_under(runtime) <= RUNTIME_CAP:
                    continue
            except OSError:
                continue
            cap = RUNTIME_CAP // 2**20
            print(f"labkit: the kernel wrote over {cap} MB outside its /tmp: it was stopped", file=sys.stderr)
            for child in psutil.Process().children():
                sandbox.kill_tree(child.pid)
            _clear_runtime(runtime)
            return

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    try:
        run = sandbox.run(
            [sys.executable, "-I", "-c", _START, str(src), dest, str(own_connection_file)],
            limits=limits,
            mounts=mounts,
            env=settings["env"],
            cwd=Path("/") if settings["backend"] == "bwrap" else runtime,
            output=log,
            sandbox=settings["backend"],
            writable=[runtime],
            tmp_mb=settings["tmp_mb"],
        )
    finally:
        done.set()
    for note in run.notes:
        if note and note != sandbox.backend_note(settings["backend"]):
            print(f"labkit: {note}", file=sys.stderr)
    return run.returncode or 0


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1]))
