"""The trusted comparison: a decoded student result against the expected one, with nothing garbage can pass.

Step 5 of the judge (:mod:`labkit_course.judge.verdicts` calls it for each result, and hidden tests'
own checks call :func:`compare` and :func:`check_form`); :func:`compare` picks one small function per
kind of expected value (arrays, tables, models, sequences, dicts, exact values, numbers).

Rules (each a :class:`Mismatch` whose ``kind`` a student reads first):

* an array must be an array of the expected shape, and of the expected *kind* of dtype: bool where
  bool is due, numbers (int or float) where numbers are due; a bool where numbers are due (or the
  reverse), complex, strings or other dtypes are a type failure (a bool never "equals" a float map);
* NaN and infinities fail, unless the expected value has the same one in the same place;
* values that can't be converted (``10**400``, strings where numbers are due) are failures, never
  exceptions;
* expected values in [0, 1] (images) make values outside [0, 1] a range failure.
"""

from __future__ import annotations

import math

import numpy as np


class Mismatch(AssertionError):
    """A failed hidden property: ``kind`` is what a student reads first ("shape", "value", ...)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def _raised_names(result) -> list[str] | None:
    if isinstance(result, dict) and result.get("$") == "raised":
        return result["types"]
    return None


def _no_failure(actual, what: str) -> None:
    """Raise for a result that is an exception or a value the codec could not carry."""
    raised = _raised_names(actual)
    if raised is not None:
        raise Mismatch("crash", f"{what} raised {raised[0]}: {first_line(actual)}")
    if isinstance(actual, dict) and actual.get("$") == "opaque":
        raise Mismatch("type", f"{what} is a {actual.get('type')}, which is not what the docstring asks for")


_DTYPE_WORDS = {"b": "booleans", "i": "numbers", "u": "numbers", "f": "numbers"}


def check_form(actual, expected, *, atol: float = 1e-5, what: str = "the result") -> tuple[np.ndarray, np.ndarray]:
    """Everything about an array result but its values: raise :class:`Mismatch` unless ``actual`` is an
    array of ``expected``'s shape and dtype kind, finite where ``expected`` is (NaN and infinities
    only where ``expected`` has the same), and inside [0, 1] when ``expected`` is.

    Returns both as float64 arrays (as they are, for booleans) for a value comparison."""
    _no_failure(actual, what)
    if not _is_array(actual):
        raise Mismatch("type", f"{what} should be an array or tensor; got {_kind(actual)}")
    e, a = np.asarray(expected), np.asarray(actual)
    if a.shape != e.shape:
        raise Mismatch("shape", f"{what} has shape {tuple(a.shape)}; expected {tuple(e.shape)}")
    want = _DTYPE_WORDS.get(e.dtype.kind)
    if want is None:  # a reference array of strings or dates: same kind, compared for equality
        if a.dtype.kind != e.dtype.kind:
            raise Mismatch("type", f"{what} has dtype {a.dtype}; expected {e.dtype}")
        return a, e
    if _DTYPE_WORDS.get(a.dtype.kind) != want:
        raise Mismatch("type", f"{what} has dtype {a.dtype}; expected {want} (like {e.dtype})")
    if want == "booleans":
        return a, e
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    finite_e = np.isfinite(e64)
    if not np.isfinite(a64[finite_e]).all():
        raise Mismatch("value", f"{what} has NaN or infinite values where finite ones are expected")
    special = ~finite_e
    if special.any() and not np.array_equal(a64[special], e64[special], equal_nan=True):
        raise Mismatch("value", f"{what} should be NaN or infinite exactly where the expected values are")
    if e64.size and finite_e.all() and e64.min() >= 0 and e64.max() <= 1:
        lo, hi = a64.min(), a64.max()
        if lo < -atol or hi > 1 + atol:
            raise Mismatch("range", f"{what} has values outside [0, 1] (from {lo:.3g} to {hi:.3g})")
    return a64, e64


def compare(actual, expected, *, atol: float = 1e-5, rtol: float = 1e-4, what: str = "the result") -> None:
    """Raise :class:`Mismatch` unless the decoded student result ``actual`` matches ``expected``.

    Arrays and tensors compare by :func:`check_form` then values (``|a - e| <= atol + rtol |e|``);
    numbers the same way; sequences, dicts, tables and state_dicts element by element; an expected
    exception must be raised with the same class (or a subclass of it). Never raises anything but
    :class:`Mismatch` for what a student returned."""
    actual, expected = _plain(actual), _plain(expected)
    if _raised_names(expected) is not None:
        _compare_raised(actual, expected, what=what)
        return
    _no_failure(actual, what)
    for is_kind, compare_kind in _BY_KIND:
        if is_kind(expected):
            compare_kind(actual, expected, atol=atol, rtol=rtol, what=what)
            return
    raise TypeError(f"the judge cannot compare a {type(expected).__name__}")


def _compare_raised(actual, expected, *, what: str) -> None:
    expected_raise, actual_raise = _raised_names(expected), _raised_names(actual)
    if actual_raise is None:
        raise Mismatch("value", f"{what} should raise {expected_raise[0]}, but it returned a value")
    if expected_raise[0] not in actual_raise:
        raise Mismatch("crash", f"{what} should raise {expected_raise[0]}, but raised {actual_raise[0]}")


def _compare_arrays(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    a, e = check_form(actual, expected, atol=atol, what=what)
    if a.dtype.kind not in "f":  # booleans (or strings): exactly
        if not np.array_equal(a, e):
            raise Mismatch("value", f"{what} differs from the expected values")
        return
    if not np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
        diff = np.abs(a - e)
        worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
        raise Mismatch("value", f"{what} differs from the expected values (largest difference {worst:.3g})")


def _compare_modules(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    """Two models, as the codec carries them: their state_dicts, key by key."""
    if not (isinstance(actual, dict) and actual.get("$") == "module" and isinstance(actual.get("state"), dict)):
        raise Mismatch("type", f"{what} should be a torch.nn.Module; got {_kind(actual)}")
    if set(map(repr, actual["state"])) != set(map(repr, expected["state"])):
        raise Mismatch("value", f"{what} has other parameters than expected")
    for key, value in expected["state"].items():
        compare(actual["state"][key], value, atol=atol, rtol=rtol, what=f"parameter {key!r} of {what}")


def _compare_sequences(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
        raise Mismatch("type", f"{what} should be a sequence of {len(expected)}; got {_kind(actual)}")
    for i, (a, e) in enumerate(zip(actual, expected)):
        compare(a, e, atol=atol, rtol=rtol, what=f"item {i} of {what}")


def _compare_dicts(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    keys = {repr(k): k for k in actual} if isinstance(actual, dict) else {}
    if not isinstance(actual, dict) or len(actual) != len(expected) or set(keys) != set(map(repr, expected)):
        raise Mismatch("value", f"{what} should have the keys {sorted(map(repr, expected))}")
    for k, e in expected.items():
        compare(actual[keys[repr(k)]], e, atol=atol, rtol=rtol, what=f"{what}[{k!r}]")


def _compare_exactly(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    """Booleans, None and strings: the same type and the same value."""
    if type(actual) is not type(expected) or actual != expected:
        raise Mismatch("value", f"{what} is {_short(actual)}; expected {_short(expected)}")


def _compare_numbers(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    if _is_array(actual) and np.asarray(actual).size == 1 and np.asarray(actual).dtype.kind in "iuf":
        actual = np.asarray(actual).item()
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        raise Mismatch("type", f"{what} should be a number; got {_kind(actual)}")
    if isinstance(actual, int) and isinstance(expected, int):
        close = abs(actual - expected) <= atol + rtol * abs(expected)  # exact: no float conversion to overflow
    else:
        try:
            a, e = float(actual), float(expected)
        except OverflowError:
            raise Mismatch("value", f"{what} is a number too large for a float; expected {expected:.6g}") from None
        close = math.isclose(a, e, rel_tol=rtol, abs_tol=atol) or (math.isnan(e) and math.isnan(a))
    if not close:
        shown = f"{actual:.6g}" if isinstance(actual, float) else _short(actual)
        raise Mismatch("value", f"{what} is {shown}; expected {expected:.6g}")


def _compare_frames(actual, expected, *, atol: float, rtol: float, what: str) -> None:
    import pandas as pd

    if not isinstance(actual, pd.DataFrame):
        raise Mismatch("type", f"{what} should be a pandas DataFrame; got {_kind(actual)}")
    if actual.shape != expected.shape:
        raise Mismatch("shape", f"{what} is a table of shape {actual.shape}; expected {expected.shape}")
    if list(map(str, actual.columns)) != list(map(str, expected.columns)):
        raise Mismatch("value", f"{what} has columns {list(actual.columns)[:20]}; expected {list(expected.columns)}")
    compare(_values(actual.index), _values(expected.index), atol=atol, rtol=rtol, what=f"the index of {what}")
    if actual.index.name != expected.index.name:
        raise Mismatch(
            "value", f"the index of {what} is named {_short(actual.index.name)}; expected {expected.index.name!r}"
        )
    for i, column in enumerate(expected.columns):
        what_column = f"column {column!r} of {what}"
        compare(_values(actual.iloc[:, i]), _values(expected.iloc[:, i]), atol=atol, rtol=rtol, what=what_column)


def _is_frame(x) -> bool:
    import pandas as pd

    return isinstance(x, pd.DataFrame)


def _is_module(x) -> bool:
    return isinstance(x, dict) and x.get("$") == "module"


def _plain(x):
    """A numpy scalar as the Python number it holds."""
    return x.item() if isinstance(x, np.generic) and x.dtype.kind in "biuf" else x


def _values(column) -> list | np.ndarray:
    array = np.asarray(column)
    return array if array.dtype.kind in "biuf" else [_plain(v) for v in array]


def _is_array(x) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch") and hasattr(x, "shape")


def _kind(x) -> str:
    if isinstance(x, dict) and "$" in x:
        return str(x.get("type", x["$"]))[:80]
    return type(x).__name__


def _short(x) -> str:
    try:
        text = repr(x)
    except Exception:  # noqa: BLE001 -- e.g. an int too long to print
        text = f"a {type(x).__name__}"
    return text if len(text) < 60 else text[:57] + "..."


def first_line(raised: dict) -> str:
    """The first line of a decoded exception's message (at most 200 characters)."""
    message = str(raised.get("message") or "").strip()
    return message.splitlines()[0][:200] if message else ""


# (is the expected value of this kind?, how to compare with it), first match wins: the order is the
# isinstance chain's (a state_dict is a dict, a bool is an int: the narrower kind comes first)
_BY_KIND = (
    (_is_array, _compare_arrays),
    (_is_frame, _compare_frames),
    (_is_module, _compare_modules),
    (lambda x: isinstance(x, (list, tuple)), _compare_sequences),
    (lambda x: isinstance(x, dict), _compare_dicts),
    (lambda x: isinstance(x, (bool, str)) or x is None, _compare_exactly),
    (lambda x: isinstance(x, (int, float)), _compare_numbers),
)
