"""The judge's worker: calls a student's exercise functions inside the sandbox, returns plain data.

This file runs in two places:

* **in the sandbox**, as a script (``python -S -E -B worker.py IN OUT START PATH... PKG``): it imports the
  student's ``labkit.<module>`` from ``PKG`` (searched first, so an installed ``labkit``, whose exercise
  modules are stubs, never shadows it; the ``PATH`` s follow: stdlib and site-packages), calls its
  functions (cases ``START`` on) on the inputs in ``IN/request.json`` and ``IN/arrays.npz``, and writes
  each call's result to ``OUT/<case>_<call>.json`` (and ``.npz``) as soon as it returns, so a later
  hang or crash loses nothing before it;
* **in the trusted judge**, as a module: the same codec encodes the request and decodes the results
  (:func:`decode_result`: data only, within a :class:`Budget` of bytes).

Only plain data crosses: JSON, and arrays in ``.npz`` files that are loaded with
``allow_pickle=False``. A tensor comes back as its numbers (a ``torch.Tensor`` subclass cannot bring
its methods along), a model as its ``state_dict``, a table as its columns, an exception as its
class names and message. The worker needs numpy, and torch or pandas only for requests that use them.

The JSON codec: scalars, strings and None stand for themselves; everything else is an object with a
``"$"`` key: ``tensor``/``array`` (an array in the npz), ``list``/``tuple``/``dict``, ``toy`` (a model
the worker builds with a public factory, ``labkit.check...:name``), ``attr`` (an attribute of an earlier
positional argument, e.g. a model's layer), ``module`` (a state_dict), ``frame`` (a pandas
DataFrame), ``raised`` (an exception), ``opaque`` (a value of a type the codec does not carry).
A call may also ``patch`` labkit attributes with public stand-ins for its duration (:class:`patched`).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import sys
import time
import zipfile


# ----------------------------------------------------------------------------------------------
# Encoding (worker: results; judge: requests)
# ----------------------------------------------------------------------------------------------
class Store:
    """Arrays referenced from JSON by key, saved together as one ``.npz``."""

    def __init__(self, prefix: str = "a"):
        self.arrays: dict = {}
        self.prefix = prefix

    def add(self, array) -> str:
        key = f"{self.prefix}{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def save(self, path: str) -> None:
        import numpy as np

        with open(path, "wb") as f:
            np.savez(f, **self.arrays)


def _numpy_of(value):
    """A plain numpy array with the numbers of a tensor or array (no subclass, no object dtype)."""
    import numpy as np

    if type(value).__module__.startswith("torch") or hasattr(value, "__torch_function__"):
        import torch

        with torch._C.DisableTorchFunction():  # a subclass's __torch_function__ has no say here
            t = torch.Tensor.detach(value).cpu()
            if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
                t = t.float()
            array = t.numpy().copy()
    else:
        array = np.array(value, copy=True)
    array = np.asarray(array).view(np.ndarray)
    if array.dtype.hasobject:
        raise TypeError("an array of Python objects")
    return array


def encode(value, store: Store, depth: int = 0):
    """``value`` as JSON-able data, its arrays added to ``store``."""
    import numpy as np

    if depth > 20:
        return {"$": "opaque", "type": "nested too deeply"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and type(value) in (int, float, bool):
        return value
    if isinstance(value, np.generic):
        return value.item() if not isinstance(value, np.void) else {"$": "opaque", "type": "numpy.void"}
    name = type(value).__module__ + "." + type(value).__qualname__
    if isinstance(value, np.ndarray) or _is_tensor(value):
        kind = "tensor" if _is_tensor(value) else "array"
        try:
            return {"$": kind, "key": store.add(_numpy_of(value)), "type": name}
        except Exception as exc:  # noqa: BLE001 -- whatever a hostile subclass raises
            return {"$": "opaque", "type": name, "why": f"{type(exc).__name__}: {exc}"[:200]}
    if type(value) in (list, tuple):
        return {"$": type(value).__name__, "items": [encode(v, store, depth + 1) for v in value]}
    if type(value) is dict:
        return {
            "$": "dict",
            "items": [[encode(k, store, depth + 1), encode(v, store, depth + 1)] for k, v in value.items()],
        }
    if _is_module(value):
        state = {k: encode(v, store, depth + 1) for k, v in value.state_dict().items()}
        return {"$": "module", "type": name, "state": state, "training": bool(value.training)}
    if type(value).__name__ == "DataFrame" and type(value).__module__.startswith("pandas"):
        return {
            "$": "frame",
            "columns": [encode(_plain(c), store, depth + 1) for c in value.columns],
            "index": encode(_column(value.index), store, depth + 1),
            "index_name": _plain(value.index.name) if isinstance(value.index.name, (str, int)) else None,
            "data": [encode(_column(value[c]), store, depth + 1) for c in value.columns],
        }
    if isinstance(value, BaseException):
        return raised(value)
    return {"$": "opaque", "type": name}


def _plain(x):
    import numpy as np

    return x.item() if isinstance(x, np.generic) else x


def _column(series):
    """A pandas column or index: numbers as an array, anything else as a list of plain values."""
    import numpy as np

    array = np.asarray(series)
    if array.dtype.kind in "biufc":
        return array
    return [_plain(v) if isinstance(v, (np.generic, int, float, str, bool)) or v is None else str(v) for v in array]


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _is_module(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def raised(exc: BaseException) -> dict:
    """An exception as data: its class names (most derived first) and message."""
    try:
        message = str(exc)[:500]
    except Exception:  # noqa: BLE001 -- a hostile __str__
        message = "(unprintable)"
    return {"$": "raised", "types": [c.__name__ for c in type(exc).__mro__], "message": message}


# ----------------------------------------------------------------------------------------------
# Decoding (worker: requests; judge: results)
# ----------------------------------------------------------------------------------------------
class TooLarge(ValueError):
    """A result bigger than the judge accepts to read."""


class Budget:
    """Bytes the judge still accepts to read for one result (JSON bytes plus the bytes of every array
    each reference in it stands for: a small JSON that names one big array a thousand times is big)."""

    def __init__(self, limit: float):
        self.limit, self.used = limit, 0

    def take(self, nbytes: int) -> None:
        self.used += int(nbytes)
        if self.used > self.limit:
            raise TooLarge(f"over {self.limit / 2**20:.0f} MB")


def open_regular(path: str, limit: float) -> bytes:
    """The bytes of a regular file, without following a link or blocking on a FIFO, at most ``limit``."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise TooLarge(f"{info.st_size / 2**20:.0f} MB")
        data = f.read(int(min(limit, info.st_size)) + 1)
        if len(data) > limit:  # it grew since fstat
            raise TooLarge(f"over {limit / 2**20:.0f} MB")
        return data


MAX_ARRAYS = 10_000  # arrays in one npz


def load_arrays(path: str, budget: Budget | None = None) -> dict:
    """The arrays of an ``.npz``: no pickles, no links, every array's size read from its header and
    charged to ``budget`` before anything is loaded (default: 16 GB, for the judge's own request; the
    judge passes a result's budget)."""
    import numpy as np

    budget = budget or Budget(2**34)
    data = open_regular(path, budget.limit - budget.used)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = z.infolist()
        if len(members) > MAX_ARRAYS:
            raise TooLarge(f"{len(members)} arrays")
        for info in members:
            if not info.filename.endswith(".npy"):
                raise ValueError("not an array")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError("an unknown array format")
                fmt = np.lib.format
                shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            if dtype.hasobject:
                raise ValueError("an array of Python objects (a pickle)")
            budget.take(int(np.prod(shape, dtype=object)) * dtype.itemsize)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def load_json(path: str, budget: Budget | None = None):
    """The JSON in a file: no links, at most ``budget``'s bytes (default: 2 GB, for the judge's own
    request; the judge passes a result's budget)."""
    budget = budget or Budget(2**31)
    data = open_regular(path, budget.limit - budget.used)
    budget.take(len(data))
    return json.loads(data)


def decode(obj, arrays: dict, args: list | None = None):
    """The request value that ``encode`` turned into ``obj`` (the judge's own data: it may name
    ``toy`` models and ``attr`` ibutes). ``args`` are the positional arguments decoded so far."""
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("$")
    rec = lambda o: decode(o, arrays, args)  # noqa: E731
    if kind in ("tensor", "array"):
        array = arrays[obj["key"]]
        if kind == "tensor":
            import torch

            return torch.from_numpy(array.copy())
        return array.copy()
    if kind == "list":
        return [rec(v) for v in obj["items"]]
    if kind == "tuple":
        return tuple(rec(v) for v in obj["items"])
    if kind == "dict":
        return {rec(k): rec(v) for k, v in obj["items"]}
    if kind == "toy":
        return build_toy(obj["factory"], rec(obj["kwargs"]))
    if kind == "attr":
        value = args[obj["arg"]]
        for part in obj["path"].split("."):
            value = getattr(value, part)
        return value
    value = decode_result(obj, arrays)  # a table: a copy, so a call that changes its input changes no other
    return value.copy() if kind == "frame" else value


def decode_result(obj, arrays: dict, budget: Budget | None = None):
    """A result as the judge reads it: data only. Tensors and arrays come back as numpy arrays (each
    charged to ``budget``), models as ``{"$": "module", "state": ...}``, tables as DataFrames,
    exceptions and uncarried values as ``raised``/``opaque`` dicts. Nothing in a result picks code to
    run: a ``toy`` or ``attr`` (request-only kinds) or an unknown kind reads as ``opaque``."""
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if not isinstance(obj, dict):
        return {"$": "opaque", "type": "unreadable data"}
    kind = obj.get("$")
    rec = lambda o: decode_result(o, arrays, budget)  # noqa: E731
    if kind in ("tensor", "array"):
        array = arrays[obj["key"]]
        if budget is not None:
            budget.take(array.nbytes)
        return array
    if kind in ("list", "tuple"):
        items = [rec(v) for v in _listed(obj["items"])]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {rec(k): rec(v) for k, v in (_listed(pair, 2) for pair in _listed(obj["items"]))}
    if kind == "module":
        if not isinstance(obj.get("state"), dict):
            raise ValueError("a module without a state")
        state = {str(k): rec(v) for k, v in obj["state"].items()}
        return {"$": "module", "state": state, "training": obj.get("training") is True}
    if kind == "frame":
        import pandas as pd

        columns = [rec(c) for c in _listed(obj["columns"])]
        data = {i: rec(d) for i, d in enumerate(_listed(obj["data"]))}
        frame = pd.DataFrame(data, index=rec(obj["index"]))
        frame.columns = columns
        name = obj.get("index_name")
        frame.index.name = name if name is None or type(name) in (int, str) else str(name)
        return frame
    if kind == "raised":
        types = [str(t)[:100] for t in _listed(obj.get("types"))][:50] or ["Exception"]
        return {"$": "raised", "types": types, "message": str(obj.get("message"))[:500]}
    return {"$": "opaque", "type": str(obj.get("type") if kind == "opaque" else f"a {str(kind)[:40]!r} value")[:100]}


def _listed(items, length: int | None = None) -> list:
    if not isinstance(items, list) or (length is not None and len(items) != length):
        raise ValueError("malformed data")
    return items


def public(factory: str):
    """A public test helper ``labkit.check.<module>:<name>`` (nothing else is allowed)."""
    module, _, name = factory.partition(":")
    if not module.startswith("labkit.check.") or not name.isidentifier():
        raise ValueError(f"not a public test model: {factory!r}")
    return getattr(importlib.import_module(module), name)


def build_toy(factory: str, kwargs: dict):
    """A model from a public factory ``labkit.check.<module>:<name>``."""
    return public(factory)(**kwargs)


class patched:
    """Replace attributes of labkit modules for one call: ``{"labkit.adversarial.pgd":
    "labkit.check.toys:toy_pgd"}`` (an exercise that calls another lab's exercise
    gets a public stand-in with a closed form, on both sides)."""

    def __init__(self, patches: dict):
        self.patches, self.saved = patches or {}, []

    def __enter__(self):
        for target, factory in self.patches.items():
            module, _, attr = target.rpartition(".")
            if not module.startswith("labkit.") or not attr.isidentifier():
                raise ValueError(f"not a labkit attribute: {target!r}")
            owner = importlib.import_module(module)
            self.saved.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, public(factory))
        return self

    def __exit__(self, *exc):
        for owner, attr, value in reversed(self.saved):
            setattr(owner, attr, value)


# ----------------------------------------------------------------------------------------------
# The sandboxed main
# ----------------------------------------------------------------------------------------------
class CallTimeout(BaseException):
    """Raised in the student's code when one call exceeds its time (a BaseException: `except
    Exception` in their code does not swallow it)."""


def _on_alarm(signum, frame):
    raise CallTimeout()


def _call(module, call: dict, arrays: dict):
    """What the student's function returns for ``call``, on its own timer (:class:`CallTimeout` past
    the call's timeout; whatever the function raises, it raises)."""
    args: list = []
    for a in call["args"]:
        args.append(decode(a, arrays, args))
    kwargs = {k: decode(v, arrays, args) for k, v in call["kwargs"].items()}
    fn = getattr(module, call["function"])
    signal.setitimer(signal.ITIMER_REAL, float(call.get("timeout", 60)))
    try:
        with patched(call.get("patch")):
            return fn(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: list[str]) -> int:
    inbox, outbox, first_case, *paths, pkg = argv
    # -S: the submission's package, then the environment's stdlib and site-packages, nothing else. The
    # package comes first: a non-editable install puts labkit (with stub exercises) in site-packages.
    sys.path[:0] = [pkg, *paths]
    request = load_json(os.path.join(inbox, "request.json"))
    import numpy as np  # noqa: F401 -- before the student's module, which may tamper with imports

    arrays = load_arrays(os.path.join(inbox, "arrays.npz"))
    threads = request.get("threads")
    if threads:
        try:
            import torch

            torch.set_num_threads(int(threads))
        except ImportError:
            pass
    try:
        module = importlib.import_module(f"labkit.{request['module']}")
        import_error = None
    except BaseException as exc:  # noqa: BLE001 -- a broken module fails every call, visibly
        module, import_error = None, raised(exc)
    signal.signal(signal.SIGALRM, _on_alarm)
    open(os.path.join(outbox, "ready"), "w").close()  # the judge's clock on the first call starts now
    # After one of its calls runs out of time, an exercise has failed; its other calls are not run, so a
    # submission that loops costs one timeout per exercise, not one per hidden call.
    timed_out: set = set()
    for c, case in enumerate(request["cases"]):
        if c < int(first_case):
            continue
        for k, call in enumerate(case["calls"]):
            store = Store()
            began = time.perf_counter()
            try:
                if case.get("exercise") in timed_out:
                    result = {"timeout": True, "not_run": True}
                elif import_error is not None:
                    result = {"raised": import_error, "import_error": True}
                else:
                    result = {"value": encode(_call(module, call, arrays), store)}
            except CallTimeout:
                result = {"timeout": True}
                timed_out.add(case.get("exercise"))
            except BaseException as exc:  # noqa: BLE001 -- SystemExit included: it is the student's
                signal.setitimer(signal.ITIMER_REAL, 0)
                result = {"raised": raised(exc)}
            result["seconds"] = round(time.perf_counter() - began, 4)
            stem = os.path.join(outbox, f"{c}_{k}")
            if store.arrays:
                store.save(stem + ".npz")
            with open(stem + ".json", "w") as f:
                json.dump(result, f, allow_nan=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
