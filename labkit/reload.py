"""Your edits to an exercise file take effect in the next cell: no restart, no ``%autoreload``.

The set-up cell of every lab calls::

    from labkit.reload import watch_exercises
    watch_exercises()

Before each cell runs, every exercise module (``labkit/saliency.py``, ``labkit/adversarial.py``, ...)
that is imported and whose file changed on disk is reloaded, and every name the notebook imported
from it (``from labkit.saliency import smoothgrad``) is rebound to the new code. Old references held
elsewhere (in a dict, a ``functools.partial``) get the new function body too.

Why not IPython's ``%autoreload``: Colab runs IPython 7.34, whose autoreload does ``from imp import
reload``, and ``imp`` is gone since Python 3.12; it also misses names imported with ``from``... when a
function's closure changes. This works with any IPython >= 7 and Python >= 3.10.

A file that doesn't import (a syntax error while you type) is reported once, and the last version
that worked stays in use until the file is fixed.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

from labkit.labs import MODULES

__all__ = ["watch_exercises", "unwatch", "reload_changed"]

#: the modules watched: the exercise module of every lab
WATCHED = tuple(f"labkit.{module}" for module in MODULES)

_stamps: dict[str, tuple[int, int]] = {}  # module name -> (mtime_ns, size) of the version loaded
_failed: dict[str, tuple[int, int]] = {}  # module name -> stamp of a version that failed to load
_hooks: list = []  # (shell, callback) registered by watch_exercises


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _remember(name: str) -> None:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path and name not in _stamps:
        stamp = _stamp(path)
        if stamp:
            _stamps[name] = stamp


def _update_function(old, new) -> None:
    """Give an old function object the new body, so references held elsewhere run the new code."""
    for attr in ("__code__", "__defaults__", "__kwdefaults__", "__doc__", "__annotations__"):
        try:
            setattr(old, attr, getattr(new, attr))
        except (AttributeError, TypeError, ValueError):  # e.g. a closure with other free variables
            pass


def reload_changed(namespace: dict | None = None, verbose: bool = True) -> list[str]:
    """Reload every watched module whose file changed; rebind the names ``namespace`` took from it.

    Returns the names of the modules reloaded. ``watch_exercises`` calls this before every cell with
    the notebook's namespace; call it yourself anywhere else.
    """
    reloaded = []
    for name in WATCHED:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if module is None or not path:
            continue
        stamp = _stamp(path)
        if stamp is None:
            continue
        if name not in _stamps:  # imported since the last cell: this is the version in use
            _stamps[name] = stamp
            continue
        if stamp == _stamps[name] or stamp == _failed.get(name):
            continue
        old = dict(vars(module))
        # a file saved less than a clock tick after the last load keeps its mtime: never trust .pyc
        cached = getattr(module.__spec__, "cached", None)
        if cached and os.path.exists(cached):
            try:
                os.remove(cached)
            except OSError:
                pass
        try:
            importlib.reload(module)
        except Exception as exc:  # noqa: BLE001 - a student's half-typed file must not break the notebook
            _failed[name] = stamp
            vars(module).update(old)  # a failed reload may have run half the file: restore the last good one
            if verbose:
                where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
                print(
                    f"labkit: could not reload {os.path.relpath(path)}{where}: {type(exc).__name__}: {exc}\n"
                    f"        the last version that worked stays in use until the file is fixed.",
                    file=sys.stderr,
                )
            continue
        _stamps[name] = stamp
        _failed.pop(name, None)
        new = vars(module)
        for attr, before in old.items():
            after = new.get(attr)
            if isinstance(before, types.FunctionType) and isinstance(after, types.FunctionType) and before is not after:
                _update_function(before, after)
        if namespace is not None:
            _rebind(namespace, old, new)
        reloaded.append(name)
    return reloaded


def _rebind(namespace: dict, old: dict, new: dict) -> None:
    """Point the names ``namespace`` imported from a module (``from m import f [as g]``) at its new objects."""
    by_id = {id(obj): attr for attr, obj in old.items() if isinstance(obj, (types.FunctionType, type)) and attr in new}
    for key, value in list(namespace.items()):
        if key.startswith("_"):
            continue
        attr = key if key in old and old[key] is value and key in new else by_id.get(id(value))
        if attr is not None and old.get(attr) is value:
            namespace[key] = new[attr]


def ipython_shell(shell=None):
    """``shell``, or the running IPython session's, or None outside IPython."""
    if shell is not None:
        return shell
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def watch_exercises(shell=None, verbose: bool = True) -> bool:
    """Reload changed exercise modules before every cell of this IPython session.

    Safe to call again (re-running the set-up cell registers one hook, not two). Returns False,
    doing nothing, outside IPython.
    """
    shell = ipython_shell(shell)
    if shell is None:
        return False
    unwatch()
    for name in WATCHED:
        _remember(name)

    def pre_run_cell(info=None):  # IPython >= 7 passes an ExecutionInfo
        reload_changed(shell.user_ns, verbose=verbose)

    def post_run_cell(result=None):  # a module the cell imported: this is the version in use
        for name in WATCHED:
            _remember(name)

    for event, callback in (("pre_run_cell", pre_run_cell), ("post_run_cell", post_run_cell)):
        shell.events.register(event, callback)
        _hooks.append((shell, event, callback))
    return True


def unwatch() -> None:
    """Remove the hook ``watch_exercises`` installed."""
    while _hooks:
        shell, event, callback = _hooks.pop()
        try:
            shell.events.unregister(event, callback)
        except ValueError:
            pass
