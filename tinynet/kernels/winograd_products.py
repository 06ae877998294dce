"""The matrix products of a Winograd convolution: ``out[p] = a[p] @ b[p]`` for each
transformed-tile position ``p`` (``algorithm.points`` of them), one call for them
all. The drivers of :mod:`tinynet.kernels.winograd_conv` run three a chunk of
images: forward ``M = V U``, backward ``dU = V^T dM`` and ``dV = dM U^T``.

Why not ``np.matmul`` of the stacked planes: the products are small, (k x C) @ (C x
F) with k a few hundred tiles and C, F = 32 or 64 on the shipped CNN, and NumPy
makes one BLAS call per point. OpenBLAS ran them at 98-116 GFLOP/s (one thread,
operands in cache) and this kernel at 180-196, as LLVM compiles it for the CPU
(AVX-512 on the Zen 5 VM, where the environment pins OpenBLAS to its AVX2 kernels:
``OPENBLAS_CORETYPE=Haswell``, 128 GFLOP/s on a 1024 x 1024 product).

How: a pass computes ``ROWS[F]`` whole rows of ``out`` (F wide), summing over the
shared axis into an accumulator on the stack, F and the row count fixed when the
kernel is compiled: LLVM then keeps it in vector registers (4 x 32 or 2 x 64
floats: 8 zmm) and each row of ``b``, loaded once, feeds every row of the pass.
Rows left over (fewer than ``ROWS[F]``) and other widths take ``np.matmul``'s
place in plain loops or ``np.matmul`` itself. Each entry is summed in order over
the shared axis, so results do not depend on the chunking, only, in the last bits,
on the use of fused multiply-adds.

Measured (``benchmarks/winograd_products.py``, AMD EPYC Zen 5 VM, one thread,
GFLOP/s, np.matmul -> this kernel): the shipped CNN's first Winograd conv (64 points,
k = 192, C = F = 32) 103 -> 196; the second (64, 96, 32 -> 64) 107 -> 192; the third
(36, 168, 64 -> 64) 116 -> 190.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba.np.numpy_support import carray

from . import serial_kernel, stack_empty

#: Output widths (F) the kernel is compiled for, and the rows a pass computes: the
#: most measured fastest (4 x 32 and 2 x 64 floats of accumulators).
ROWS = {32: 4, 64: 2}


def _compile(rows: int, width: int) -> Callable[..., Any]:
    """The kernel for ``out`` rows ``width`` wide, ``rows`` at a time (both
    constants of the compiled code)."""
    size = rows * width

    def products(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        points, k, inner = a.shape
        whole = k - k % rows
        for p in range(points):
            for r0 in range(0, whole, rows):
                acc = carray(stack_empty(out, size), (rows, width))
                x = carray(stack_empty(out, rows), (rows,))
                for i in range(rows):
                    for j in range(width):
                        acc[i, j] = 0.0
                for c in range(inner):
                    for i in range(rows):
                        x[i] = a[p, r0 + i, c]
                    for j in range(width):
                        y = b[p, c, j]
                        for i in range(rows):
                            acc[i, j] += x[i] * y
                for i in range(rows):
                    for j in range(width):
                        out[p, r0 + i, j] = acc[i, j]
            for r in range(whole, k):
                for j in range(width):
                    out[p, r, j] = 0.0
                for c in range(inner):
                    for j in range(width):
                        out[p, r, j] += a[p, r, c] * b[p, c, j]
        return out

    return serial_kernel(products, fma=True)


_KERNELS = {width: _compile(rows, width) for width, rows in ROWS.items()}


def products(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[p] = a[p] @ b[p]`` for every ``p``, as ``np.matmul(a, b, out=out)``.

    Parameters
    ----------
    a : (points, k, inner), any strides (a transposed view: ``V^T``).
    b : (points, inner, F) C-contiguous.
    out : (points, k, F) C-contiguous, fully overwritten; F = 32 or 64 (:data:`ROWS`)
        by the kernel, any other by ``np.matmul``.

    Returns
    -------
    out
    """
    kernel = _KERNELS.get(out.shape[2])
    if kernel is None or out.dtype not in (np.float32, np.float64):
        np.matmul(a, b, out=out)
        return out
    result: np.ndarray = kernel(a, b, out)
    return result


__all__ = ["ROWS", "products"]
