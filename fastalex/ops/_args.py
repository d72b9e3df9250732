"""Normalisation and validation of the Python-level arguments shared by the ops."""
from __future__ import annotations

import numbers
from typing import Sequence


def _int_like(v) -> bool:
    # An int, or a symbolic one (sizes under torch.compile's dynamic shapes: a padding computed
    # from a weight's size); not a bool.
    import torch

    return (isinstance(v, numbers.Integral) and not isinstance(v, bool)) or isinstance(v, torch.SymInt)


def _as_int(v):
    return v if not isinstance(v, numbers.Integral) else int(v)


def pair(value, name: str, op: str) -> list[int]:
    """An int or a pair of ints -> [h, w]; anything else is a clear error naming `name`."""
    if isinstance(value, bool):
        raise TypeError(f"fastalex.{op}: {name} must be an int or a pair of ints, got {value!r}")
    if _int_like(value):
        return [_as_int(value), _as_int(value)]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
        if len(items) == 1:
            items = items * 2
        if len(items) == 2 and all(_int_like(v) for v in items):
            return [_as_int(items[0]), _as_int(items[1])]
    raise TypeError(f"fastalex.{op}: {name} must be an int or a pair of ints, got {value!r}")


def integer(value, name: str, op: str) -> int:
    """An int (not a bool); anything else is a clear error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"fastalex.{op}: {name} must be an int, got {value!r}")
    return int(value)


def real(value, name: str, op: str) -> float:
    """A real number (not a bool) -> float; anything else is a clear error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"fastalex.{op}: {name} must be a real number, got {value!r}")
    return float(value)


def lrn_params(size, alpha, beta, k, op: str):
    """LRN's (size, alpha, beta, k) checked and normalised for the schema."""
    return integer(size, "size", op), real(alpha, "alpha", op), real(beta, "beta", op), real(k, "k", op)


def pool_params(kernel_size, stride, padding, ceil_mode, op: str):
    """Pooling's (kernel_size, stride, padding, ceil_mode) as the schema takes them; stride None
    (or empty) means kernel_size, as in torch."""
    kernel_size = pair(kernel_size, "kernel_size", op)
    stride = kernel_size if stride is None or stride == [] or stride == () else pair(stride, "stride", op)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"fastalex.{op}: ceil_mode must be a bool, got {ceil_mode!r}")
    return kernel_size, stride, pair(padding, "padding", op), ceil_mode


def tensor(value, name: str, op: str):
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"fastalex.{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def pooled_size(size: int, kernel: int, pad: int, stride: int, ceil_mode: bool, dilation: int = 1) -> int:
    """torch's pooling output size (floor or ceil; a ceil window must start inside the input)."""
    num = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out
