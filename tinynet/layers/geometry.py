"""Sliding-window geometry shared by Conv2D and the pooling layers.

Both slide a ``(kh, kw)`` window with strides ``(sh, sw)`` over an NHWC input and
follow Keras' padding rule (``tinynet.kernels.window_geometry``); this module holds
the argument checks and the output-shape arithmetic they have in common, so neither
layer module imports the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import is_integer
from ..kernels import PADDINGS, window_geometry

Shape = tuple[int, ...]


def as_pair(value: Any, what: str, who: str) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(3, 2) -> (3, 2)``; anything else but positive ints raises."""
    pair = value if isinstance(value, tuple | list) else (value, value)
    if len(pair) != 2 or not all(is_integer(v) and v > 0 for v in pair):
        raise ValueError(
            f"{who}: {what} must be a positive int or a pair of positive ints, "
            f"got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def check_padding(padding: Any, who: str) -> str:
    """``padding`` itself if it is ``"valid"`` or ``"same"``; otherwise raise."""
    if padding not in PADDINGS:
        raise ValueError(f"{who}: padding must be one of {PADDINGS}, got {padding!r}")
    return str(padding)


def sliding_output_shape(
    who: str,
    input_shape: Shape,
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    what: str,
) -> tuple[int, int, int]:
    """``(out_h, out_w, C)`` for an ``(H, W, C)`` input, or a ValueError naming
    ``who`` when the input is not an image or the window does not fit."""
    if len(input_shape) != 3:
        raise ValueError(
            f"{who}: expected inputs of shape (batch, height, width, channels), "
            f"i.e. an input_shape (height, width, channels); got {input_shape}"
        )
    h, w, c = input_shape
    ho, _ = window_geometry(h, window[0], strides[0], padding)
    wo, _ = window_geometry(w, window[1], strides[1], padding)
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"{who}: {what} {window[0]}x{window[1]} is larger than the {h}x{w} input "
            f"(input_shape {input_shape}) with padding='valid'"
        )
    return ho, wo, c


def float_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous float array: float32/float64 kept, others -> dtype."""
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(dtype)
    return np.ascontiguousarray(x)


__all__ = ["as_pair", "check_padding", "float_input", "sliding_output_shape"]
