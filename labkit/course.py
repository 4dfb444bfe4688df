"""Course building: one source of truth for the student files.

The reference lives in ``solutions/``:

* ``solutions/labkit/<module>.py`` holds each lab's exercise functions, their
  bodies wrapped in ``### BEGIN SOLUTION`` / ``### END SOLUTION`` markers
  (nbgrader's syntax);
* ``solutions/notebooks/<lab>.ipynb`` holds the solved notebook with nbgrader
  cell metadata.

Everything a student gets is generated from those files:

* ``labkit/<module>.py``: each marked body becomes a friendly
  ``NotImplementedError``;
* ``notebooks/<lab>.ipynb``: solutions, hidden tests and outputs are removed by
  nbgrader's own preprocessors, exactly as ``nbgrader generate_assignment``
  would.

``sync()`` writes them, ``sync(check=True)`` reports stale ones (CI runs it).
"""
from __future__ import annotations

import copy
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"


@dataclass(frozen=True)
class Lab:
    number: int
    notebook: str  # file stem, e.g. "01_saliency"
    module: str  # exercise module, e.g. "saliency"
    title: str


LABS = {
    1: Lab(1, "01_saliency", "saliency", "Saliency maps"),
    2: Lab(2, "02_adversarial", "adversarial", "Adversarial examples"),
    3: Lab(3, "03_class_visualization", "classviz", "Class visualization"),
    4: Lab(4, "04_noise_probing", "noise", "Noise probing"),
    5: Lab(5, "05_non_robust_features", "robust_features", "Non-robust features"),
}


def available_labs() -> list[Lab]:
    """The labs whose reference module and solved notebook both exist."""
    return [
        lab
        for lab in LABS.values()
        if (SOLUTIONS / "labkit" / f"{lab.module}.py").exists()
        and (SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb").exists()
    ]


def thread_env(n: int) -> dict[str, str]:
    """Environment variables that cap a kernel's CPU threads at ``n``: torch's and BLAS's
    defaults, and ``LABKIT_THREADS``, which caps the notebooks' own ``set_threads(THREADS)``."""
    return {var: str(n) for var in ("LABKIT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def load_reference(module: str):
    """The reference exercise module ``solutions/labkit/<module>.py``, whatever the student file holds.

    Loaded once under the name ``labkit_reference_<module>``.
    """
    import importlib.util
    import sys

    name = f"labkit_reference_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SOLUTIONS / "labkit" / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


# --------------------------------------------------------------------------
# Exercise modules
# --------------------------------------------------------------------------
_DEF = re.compile(r"^(\s*)def\s+(\w+)\s*\(")

STUDENT_HEADER = (
    "# Your exercises for this lab. Fill in every body that raises\n"
    "# NotImplementedError; the docstrings say exactly what to return.\n"
    "# Check your work in the notebook with labkit.check, or with pytest.\n"
    "# (Generated from solutions/labkit/{module}.py by `labkit sync`.)\n"
)


def stub_source(solution: str, module: str) -> str:
    """Turn a reference module into its student version.

    Each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block is replaced by a
    ``raise NotImplementedError`` that names the function and the file, at the
    block's indentation. Everything outside the markers (signatures,
    docstrings, input validation) is kept verbatim.
    """
    out: list[str] = [STUDENT_HEADER.format(module=module)]
    function = None
    inside = False
    for lineno, line in enumerate(solution.splitlines(keepends=True), 1):
        m = _DEF.match(line)
        if m and not inside:
            function = m.group(2)
        stripped = line.strip()
        if stripped == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{module}.py:{lineno}: nested {BEGIN_SOLUTION}")
            if function is None:
                raise ValueError(f"{module}.py:{lineno}: {BEGIN_SOLUTION} outside a function")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(
                f"{indent}# YOUR CODE HERE\n"
                f'{indent}raise NotImplementedError(\n'
                f'{indent}    "{function}() is not implemented yet: "\n'
                f'{indent}    "fill in its body in labkit/{module}.py"\n'
                f"{indent})\n"
            )
        elif stripped == END_SOLUTION:
            if not inside:
                raise ValueError(f"{module}.py:{lineno}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{module}.py: unterminated {BEGIN_SOLUTION}")
    return "".join(out)


# --------------------------------------------------------------------------
# Notebooks
# --------------------------------------------------------------------------
def student_notebook(solved: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a solved notebook, made with nbgrader's preprocessors.

    The same preprocessors, in the same order, as ``nbgrader generate_assignment``
    (minus the database): lock cells, clear solutions, clear outputs, clear
    hidden tests and mark schemes, then checksum the graded cells.
    """
    from nbgrader.preprocessors import (
        ClearHiddenTests,
        ClearMarkScheme,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    nb = copy.deepcopy(solved)
    resources: dict = {}
    for pp in (
        LockCells(),
        ClearSolutions(),
        ClearOutput(),
        ClearHiddenTests(),
        ClearMarkScheme(),
        ComputeChecksums(),
    ):
        nb, resources = pp.preprocess(nb, resources)
    nb.metadata.pop("widgets", None)
    return nb


def _write_if_changed(path: Path, text: str, check: bool) -> bool:
    """Write ``text`` to ``path`` unless identical; return True if it was stale."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == text:
        return False
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return True


def clean_solved_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solved notebook as committed: no outputs, no execution counts."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


def sync(check: bool = False) -> list[Path]:
    """Regenerate every student file from ``solutions/``.

    Returns the files that were stale. With ``check=True`` nothing is written.
    """
    stale: list[Path] = []
    for lab in available_labs():
        solution = (SOLUTIONS / "labkit" / f"{lab.module}.py").read_text(encoding="utf-8")
        target = REPO / "labkit" / f"{lab.module}.py"
        if _write_if_changed(target, stub_source(solution, lab.module), check):
            stale.append(target)

        solved_path = SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb"
        solved = nbformat.read(solved_path, as_version=4)
        cleaned = nbformat.writes(clean_solved_notebook(solved)) + "\n"
        if _write_if_changed(solved_path, cleaned, check):
            stale.append(solved_path)
        target = REPO / "notebooks" / f"{lab.notebook}.ipynb"
        text = nbformat.writes(student_notebook(solved)) + "\n"
        if _write_if_changed(target, text, check):
            stale.append(target)
    return stale


# --------------------------------------------------------------------------
# Running notebooks
# --------------------------------------------------------------------------
def solved_tree(dest: Path) -> Path:
    """Materialize the solved course in ``dest``: labkit with reference modules.

    ``dest/labkit`` is a copy of the package whose exercise modules are the
    reference ones; ``dest/notebooks`` holds the solved notebooks. Put ``dest``
    first on ``PYTHONPATH`` and ``import labkit`` gives the reference.
    """
    dest = Path(dest)
    if (dest / "labkit").exists():
        shutil.rmtree(dest / "labkit")
    shutil.copytree(REPO / "labkit", dest / "labkit", ignore=shutil.ignore_patterns("__pycache__"))
    for lab in available_labs():
        shutil.copy(SOLUTIONS / "labkit" / f"{lab.module}.py", dest / "labkit" / f"{lab.module}.py")
        (dest / "notebooks").mkdir(parents=True, exist_ok=True)
        shutil.copy(
            SOLUTIONS / "notebooks" / f"{lab.notebook}.ipynb",
            dest / "notebooks" / f"{lab.notebook}.ipynb",
        )
    return dest


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
) -> Execution:
    """Run a notebook headless with nbclient; measure wall time and the kernel's peak RSS.

    Offline by construction: nothing here touches the network, and
    ``LABKIT_OFFLINE=1`` tells labkit not to try. ``threads`` caps the kernel's
    torch/OpenMP/BLAS threads, the notebook's own ``THREADS`` included (the test suite
    runs notebooks side by side with 1 each).
    Returns the executed notebook and the first error (``None`` if every cell ran).
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
                    rss = proc.memory_info().rss + sum(
                        c.memory_info().rss for c in proc.children(recursive=True)
                    )
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
