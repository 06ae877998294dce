"""Compute kernels for convolution and pooling: the only place that uses Numba.

Kernels take arrays and ints, write into an ``out`` array the caller allocates, and
return it. They are compiled lazily on first call (no eager signatures), and
``cache=True`` stores the machine code next to the source, so later processes load it
instead of compiling. ``reference`` holds a naive NumPy twin of each kernel.
"""

from __future__ import annotations

PADDINGS = ("valid", "same")


def window_geometry(
    size: int, window: int, stride: int, padding: str
) -> tuple[int, int]:
    """Output length and padding before, for one spatial axis (Keras' rule).

    ``"valid"``: windows lie fully inside, ``out = (size - window) // stride + 1``
    (0 or less means the window does not fit). ``"same"``: ``out = ceil(size /
    stride)``, padded by ``max((out - 1) * stride + window - size, 0)`` in total,
    the smaller half before (top/left) and the larger after.

    Returns
    -------
    (out, pad_before)
    """
    if padding == "valid":
        return (size - window) // stride + 1, 0
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        return out, total // 2
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


__all__ = ["PADDINGS", "window_geometry"]
