"""Deskewing as ONNX nodes: an exported model that was trained on deskewed digits
reads its input as tinynet's readers do (:func:`tinynet.deskew.deskew`).

For each image ``I`` (H x W, ink bright) with ink mass ``m``, centre of mass
``(cx, cy)`` and central moments ``mu02``, ``mu11`` (all in float64, as tinynet
computes them), the slant is ``s = mu11 / mu02`` (``by="moments"``), or
``-sum(gx gy) / sum(gx^2)`` over the pixels whose Sobel gradient is closer to
horizontal than to vertical (``by="strokes"``); it is clipped to ``±max_slant``
and is 0 for a blank image or ink on one row. Output pixel ``(row, col)`` is the
bilinear sample of ``I`` at ``(row, col + s (row - cy))``, 0 outside the image
(``GridSample`` with ``align_corners=1`` and zero padding, opset 16), then clipped
to [0, 1]. The float32 sampling differs from tinynet's by rounding (~1e-6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper

from .onnx_layers import Flow, GraphBuilder

#: GridSample, which does the resampling, arrived in opset 16.
MIN_OPSET = 16


class _Ops:
    """Short spellings of the nodes below, each named ``deskew_<what>``, and their
    constants, each added once."""

    def __init__(self, g: GraphBuilder) -> None:
        self.g = g
        self._constants: dict[str, str] = {}

    def __call__(self, op: str, *inputs: str, **attributes: Any) -> str:
        return self.g.node(op, list(inputs), f"deskew_{op.lower()}", **attributes)

    def const(self, name: str, value: Any, dtype: Any = np.float64) -> str:
        """The initializer ``deskew_<name>``: ``value`` in ``dtype`` (the builder's
        own weights are float32), added the first time it is asked for."""
        if name not in self._constants:
            unique = self.g.unique(f"deskew_{name}")
            array = np.asarray(value, dtype)
            self.g.initializers.append(numpy_helper.from_array(array, unique))
            self._constants[name] = unique
        return self._constants[name]

    def sum(self, x: str, axes: list[int]) -> str:
        axes_name = self.const("axes_" + "_".join(map(str, axes)), axes, np.int64)
        return self("ReduceSum", x, axes_name, keepdims=1)

    def where(self, condition: str, a: str, b: str) -> str:
        return self("Where", condition, a, b)


def _stroke_slant(op: _Ops, ink: str, h: int, w: int) -> str:
    """``-sum(gx gy) / sum(gx^2)`` over the near-vertical strokes, from (N, 1, H, W)
    float64 ``ink``: the Sobel sums by slices, as tinynet takes them."""

    def part(x: str, axis: int, start: int, stop: int) -> str:
        return op(
            "Slice",
            x,
            op.const(f"start_{start}", [start], np.int64),
            op.const(f"stop_{stop}", [stop], np.int64),
            op.const(f"axis_{axis}", [axis], np.int64),
        )

    def smooth(axis: int, size: int) -> str:  # x[:-2] + 2 x[1:-1] + x[2:] on axis
        middle = op("Mul", part(ink, axis, 1, size - 1), op.const("two", 2.0))
        ends = op("Add", part(ink, axis, 0, size - 2), part(ink, axis, 2, size))
        return op("Add", ends, middle)

    def difference(x: str, axis: int, size: int) -> str:  # x[2:] - x[:-2] on axis
        return op("Sub", part(x, axis, 2, size), part(x, axis, 0, size - 2))

    gx = difference(smooth(2, h), 3, w)
    gy = difference(smooth(3, w), 2, h)
    closer_to_upright = op("Less", op("Abs", gy), op("Abs", gx))
    upright = op("Cast", closer_to_upright, to=TensorProto.DOUBLE)
    gx_up = op("Mul", gx, upright)
    num = op.sum(op("Mul", gx_up, gy), [2, 3])
    den = op.sum(op("Mul", gx_up, gx), [2, 3])
    zero, one = op.const("zero", 0.0), op.const("one", 1.0)
    some = op("Greater", den, zero)
    ratio = op("Div", op("Neg", num), op.where(some, den, one))
    return op.where(some, ratio, zero)


def deskew_nodes(
    g: GraphBuilder,
    x: Flow,
    input_shape: tuple[int, ...],
    max_slant: float,
    by: str,
    opset: int,
) -> Flow:
    """Nodes that deskew ``x``, ``(N, *input_shape)`` float32 images: ``(H, W, 1)``,
    ``(H, W)`` or flattened square ``(S * S,)``; returns the deskewed tensor in the
    same shape."""
    if len(input_shape) == 1:
        side = int(round(np.sqrt(input_shape[0])))
        h = w = side
        if side * side != input_shape[0]:
            raise ValueError(
                f"to_onnx: the model deskews its inputs, but its input shape "
                f"{input_shape} is not a flattened square image"
            )
    elif len(input_shape) in (2, 3) and (len(input_shape) == 2 or input_shape[2] == 1):
        h, w = input_shape[0], input_shape[1]
    else:
        raise ValueError(
            f"to_onnx: the model deskews its inputs, which must be one-channel "
            f"images (H, W, 1), (H, W) or (S * S,), got {input_shape}"
        )
    op = _Ops(g)
    image = op("Reshape", x.name, op.const("nchw", [-1, 1, h, w], np.int64))
    ink = op("Cast", image, to=TensorProto.DOUBLE)
    r = op.const("rows", np.arange(h).reshape(1, 1, h, 1))
    zero, one = op.const("zero", 0.0), op.const("one", 1.0)

    rows = op.sum(ink, [3])  # (N, 1, H, 1)
    mass = op.sum(rows, [2])  # (N, 1, 1, 1)
    has_ink = op("Greater", mass, zero)
    safe = op.where(has_ink, mass, one)
    middle = op.const("middle", (h - 1) / 2.0)
    cy = op.where(has_ink, op("Div", op.sum(op("Mul", rows, r), [2]), safe), middle)
    if by == "moments":
        cols = op.sum(ink, [2])  # (N, 1, 1, W)
        c = op.const("cols", np.arange(w).reshape(1, 1, 1, w))
        cx = op("Div", op.sum(op("Mul", cols, c), [3]), safe)
        dr, dc = op("Sub", r, cy), op("Sub", c, cx)
        mu02 = op("Div", op.sum(op("Mul", rows, op("Mul", dr, dr)), [2]), safe)
        mu11 = op("Div", op.sum(op("Mul", ink, op("Mul", dr, dc)), [2, 3]), safe)
        floor = op.const("flat", 1e-6 * h * h)
        tall = op("And", has_ink, op("Greater", mu02, floor))
        skew = op.where(tall, op("Div", mu11, op.where(tall, mu02, one)), zero)
    else:
        skew = _stroke_slant(op, ink, h, w)
    # Rounding leaves ~1e-16 on a symmetric digit: no slant, as tinynet reads it.
    tiny = op("Less", op("Abs", skew), op.const("tiny", 1e-9))
    skew = op.where(tiny, zero, skew)
    limit = op.const("limit", max_slant)
    s = op("Max", op("Min", skew, limit), op("Neg", limit))  # (N, 1, 1, 1)

    # Where each output pixel reads from, normalised to [-1, 1] (align_corners=1):
    # column col + s (row - cy), row row.
    grid_rows = np.broadcast_to(np.arange(h).reshape(h, 1), (h, w))
    grid_cols = np.broadcast_to(np.arange(w).reshape(1, w), (h, w))
    source = op(
        "Add",
        op.const("grid_cols", grid_cols.reshape(1, 1, h, w)),
        op("Mul", s, op("Sub", op.const("grid_rows", grid_rows), cy)),
    )  # (N, 1, H, W)
    x_norm = op(
        "Sub",
        op("Mul", source, op.const("x_scale", 2.0 / max(w - 1, 1))),
        one,
    )
    y_grid = (2.0 * grid_rows / max(h - 1, 1) - 1).reshape(1, 1, h, w)
    y_norm = op(
        "Add",
        op("Mul", x_norm, zero),  # broadcast over the batch
        op.const("y", y_grid),
    )
    grid = op(
        "Cast",
        op("Transpose", op("Concat", x_norm, y_norm, axis=1), perm=[0, 2, 3, 1]),
        to=TensorProto.FLOAT,
    )  # (N, H, W, 2): (x, y) per output pixel
    sampled = op(
        "GridSample",
        image,
        grid,
        mode="linear" if opset >= 20 else "bilinear",  # renamed in opset 20
        padding_mode="zeros",
        align_corners=1,
    )
    clipped = op(
        "Clip",
        sampled,
        op.const("lo", 0.0, np.float32),
        op.const("hi", 1.0, np.float32),
    )
    shape = op.const("shape", [-1, *input_shape], np.int64)
    return Flow(op("Reshape", clipped, shape), x.rank, x.channels_first)


__all__ = ["MIN_OPSET", "deskew_nodes"]
