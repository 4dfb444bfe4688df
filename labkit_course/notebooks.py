"""Run a notebook headless with nbclient, measuring its wall time and the kernel's peak memory."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat


def thread_env(n: int) -> dict[str, str]:
    """Environment variables that cap a kernel's CPU threads at ``n``: torch's and BLAS's
    defaults, and ``LABKIT_THREADS``, which caps the notebooks' own ``set_threads(THREADS)``."""
    return {var: str(n) for var in ("LABKIT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict) -> nbformat.NotebookNode:
    """Insert a cell that overrides ``parameters`` right after the cell tagged
    ``parameters`` (papermill's convention)."""
    nb = copy.deepcopy(nb)
    index = next(
        (i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])),
        None,
    )
    if index is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


@dataclass
class Execution:
    notebook: nbformat.NotebookNode
    seconds: float
    peak_rss_mb: float
    error: Exception | None


def execute_notebook(
    path: Path,
    *,
    cwd: Path | None = None,
    pythonpath: Path | None = None,
    parameters: dict | None = None,
    timeout: int = 600,
    threads: int | None = None,
    allow_errors: bool = False,
) -> Execution:
    """Run a notebook headless with nbclient; measure wall time and the kernel's peak RSS.

    Offline by construction: nothing here touches the network, and
    ``LABKIT_OFFLINE=1`` tells labkit not to try. ``threads`` caps the kernel's
    torch/OpenMP/BLAS threads, the notebook's own ``THREADS`` included (the test suite
    runs notebooks side by side with 1 each).
    Returns the executed notebook and the first error (``None`` if every cell ran). With
    ``allow_errors`` every cell runs and the errors are only in the cells' outputs.
    """
    import threading
    import time

    import psutil
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    if parameters:
        nb = inject_parameters(nb, parameters)
    env = dict(os.environ)
    env.setdefault("LABKIT_OFFLINE", "1")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.setdefault("TQDM_MININTERVAL", "5")
    if threads is not None:
        env.update(thread_env(threads))
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd or Path(path).parent)}},
    )
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            km = client.km
            pid = getattr(getattr(km, "provisioner", None), "pid", None) if km else None
            if pid:
                try:
                    proc = psutil.Process(pid)
                    rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                    peak[0] = max(peak[0], rss / 2**20)
                except psutil.Error:
                    pass
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    error = None
    start = time.perf_counter()
    sampler.start()
    try:
        with _environ(env):
            client.execute()
    except CellExecutionError as exc:
        error = exc
    finally:
        stop.set()
        sampler.join()
    return Execution(nb, time.perf_counter() - start, peak[0], error)


class _environ:
    """Temporarily replace os.environ (the kernel inherits it)."""

    def __init__(self, env: dict):
        self.env = env

    def __enter__(self):
        self.saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)

    def __exit__(self, *exc):
        os.environ.clear()
        os.environ.update(self.saved)
