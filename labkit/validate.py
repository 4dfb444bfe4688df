"""Input checks shared by every lab: clear errors that say what was expected and what was given.

The course convention: images are float tensors of shape (N, 3, H, W) with
values in [0, 1]; targets are an int or a LongTensor of shape (N,).
"""

from __future__ import annotations

import numbers

import torch

#: Tolerance for "in [0, 1]": resizing and float arithmetic overshoot by ~1e-6.
RANGE_TOL = 1e-4


def describe_value(x) -> str:
    """What ``x`` is, for error messages: its type, and its dtype and shape when it has them
    (e.g. "a torch.float32 tensor of shape (2, 3)", "a numpy.ndarray of shape (4,)", "a builtins.list")."""
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"a {type(x).__module__}.{type(x).__name__} of shape {tuple(shape)}"
    return f"a {type(x).__module__}.{type(x).__name__}"


def images(x, name: str = "images", channels: int | None = 3, check_range: bool = True) -> torch.Tensor:
    """Check that ``x`` is a float image batch (N, C, H, W) in [0, 1] and return it.

    Raises:
        TypeError: not a floating-point torch tensor (numpy arrays, PIL images
            and uint8 tensors are refused with a pointer to ``labkit.data.to_tensor``).
        ValueError: wrong number of dimensions or channels, or values outside [0, 1].
    """
    hint = "convert it with labkit.data.to_tensor(...)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a float torch.Tensor of shape (N,3,H,W) in [0,1]; got {describe_value(x)}: {hint}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0,1]; got {describe_value(x)}: "
            f"{hint} (it divides uint8 images by 255)"
        )
    if x.ndim != 4:
        extra = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (N,3,H,W); got {describe_value(x)}{extra}")
    if channels is not None and x.shape[1] != channels:
        extra = " (channels-last? use x.permute(0,3,1,2))" if x.shape[-1] == channels else ""
        raise ValueError(
            f"{name} must have {channels} channels in dim 1, shape (N,{channels},H,W); got {describe_value(x)}{extra}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch: {describe_value(x)}")
    if check_range and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
            extra = " (0-255 values? divide by 255)" if hi > 1.5 else ""
            raise ValueError(f"{name} must have values in [0,1]; got min {lo:.4g}, max {hi:.4g}{extra}")
    return x


def targets(t, n: int, num_classes: int | None = None, name: str = "targets") -> torch.Tensor:
    """Normalize a class index (int, or a LongTensor / sequence of N ints) to a LongTensor (N,).

    An int is broadcast to the whole batch. Raises TypeError or ValueError on
    float tensors, wrong lengths and indices outside ``[0, num_classes)``.
    """
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an int or a LongTensor of shape ({n},); got a bool")
    if isinstance(t, numbers.Integral):
        t = torch.full((n,), int(t), dtype=torch.long)
    elif isinstance(t, torch.Tensor):
        if t.is_floating_point() or t.is_complex():
            raise TypeError(f"{name} must hold integer class indices; got {describe_value(t)}")
        t = t.reshape(-1).long() if t.ndim == 0 else t.long()
        if t.ndim != 1:
            raise ValueError(f"{name} must have shape ({n},); got {describe_value(t)}")
        if t.numel() == 1 and n > 1:
            t = t.expand(n).clone()
    elif isinstance(t, (list, tuple)) and all(isinstance(v, numbers.Integral) for v in t):
        t = torch.tensor(t, dtype=torch.long)
    else:
        raise TypeError(f"{name} must be an int or a LongTensor of shape ({n},); got {describe_value(t)}")
    if t.shape[0] != n:
        raise ValueError(f"{name} has {t.shape[0]} entries but there are {n} images")
    if num_classes is not None and t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} must be class indices in [0, {num_classes - 1}]; got {bad}")
    return t


def num_classes(model: torch.nn.Module, sample: torch.Tensor) -> int:
    """The number of logits ``model`` returns (from its attribute if set, else one forward pass)."""
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    with torch.no_grad():
        return int(model(sample[:1]).shape[-1])


def positive(value, name: str, allow_zero: bool = False) -> float:
    """Check that ``value`` is a real number > 0 (or >= 0) and return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value}")
    return float(value)


def positive_int(value, name: str) -> int:
    """Check that ``value`` is an int >= 1 and return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return int(value)


def choice(value, name: str, options) -> str:
    """Check that ``value`` is one of ``options`` and return it."""
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}; got {value!r}")
    return value


def layer(model: torch.nn.Module, lyr) -> torch.nn.Module:
    """Resolve ``lyr`` (a module of ``model`` or its dotted name) to a submodule of ``model``."""
    if isinstance(lyr, str):
        try:
            return model.get_submodule(lyr)
        except AttributeError:
            raise ValueError(f"model has no layer named {lyr!r}; see [n for n, _ in model.named_modules()]") from None
    if not isinstance(lyr, torch.nn.Module):
        raise TypeError(f"layer must be an nn.Module of the model or its name; got {type(lyr).__name__}")
    if not any(m is lyr for m in model.modules()):
        raise ValueError(f"layer {type(lyr).__name__} is not a submodule of the model")
    return lyr


def integer(value, name: str) -> int:
    """Check that ``value`` is an int (any sign; a bool is refused) and return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    return int(value)


def module(value, name: str = "model") -> torch.nn.Module:
    """Check that ``value`` is a ``torch.nn.Module`` and return it."""
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(value).__name__}")
    return value


def device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any): where its inputs go."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")
