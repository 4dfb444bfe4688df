"""The kernel's runtime: whether the network may be used, how many CPU threads, and handing freed memory back.

* :func:`offline` and :class:`NetworkRequired`: online-only features (torchvision weights, CIFAR-10
  downloads) fail fast with a clear message instead of timing out.
* :func:`set_threads`: torch's and BLAS's thread count, capped by the autograder's ``LABKIT_THREADS``.
* :func:`trim_memory`, :func:`trim_memory_after_each_cell`: glibc's freed pages go back to the system
  (Binder guarantees 1 GB).
"""

from __future__ import annotations

import os

import torch


class NetworkRequired(RuntimeError):
    """Raised when a feature needs to download something and the network is unavailable."""


def offline() -> bool:
    """True when ``LABKIT_OFFLINE=1``: online-only features fail fast instead of timing out."""
    return os.environ.get("LABKIT_OFFLINE", "") not in ("", "0")


def set_threads(n: int) -> int:
    """Run torch, and numpy/scikit-learn's BLAS, on ``n`` CPU threads; returns the number used.

    ``LABKIT_THREADS``, when set, caps ``n``: the autograder sets it to cores / workers,
    because two kernels that each spin two threads on two cores run several times slower
    than one kernel at a time.
    """
    from threadpoolctl import threadpool_limits

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int; got {n!r}")
    cap = os.environ.get("LABKIT_THREADS", "")
    n = min(n, int(cap)) if cap.isdigit() and int(cap) > 0 else n
    torch.set_num_threads(n)
    threadpool_limits(n)
    return n


def trim_memory() -> bool:
    """Hand the memory torch has freed back to the operating system; returns whether it could.

    glibc's malloc keeps freed blocks for reuse, so a kernel's memory only ever grows: after a cell
    that needed 500 MB of activations, the next cell starts 500 MB higher. ``malloc_trim(0)`` returns
    the free pages (Linux with glibc; elsewhere this does nothing).
    """
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # noqa: B018 - glibc only (not musl, macOS, Windows)
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    _libc.malloc_trim(0)
    return True


_libc = None


def trim_memory_after_each_cell(shell=None) -> bool:
    """Run :func:`trim_memory` after every cell of this IPython session, so that each cell starts from
    what the notebook really holds (Binder guarantees 1 GB). Safe to call again; False outside IPython."""
    from labkit.reload import ipython_shell

    shell = ipython_shell(shell)
    if shell is None:
        return False
    callbacks = shell.events.callbacks["post_run_cell"]
    for callback in [c for c in callbacks if getattr(c, "__name__", "") == "_labkit_trim_memory"]:
        shell.events.unregister("post_run_cell", callback)

    def _labkit_trim_memory(result=None):
        trim_memory()

    shell.events.register("post_run_cell", _labkit_trim_memory)
    return True
