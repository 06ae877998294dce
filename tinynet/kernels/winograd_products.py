"""The matrix products of a Winograd convolution: ``out[p] = a[p] @ b[p]`` for each
transformed-tile position ``p`` (``algorithm.points`` of them), one call for them
all. The drivers of :mod:`tinynet.kernels.winograd_conv` run three a chunk of
images: forward ``M = V U``, backward ``dU = V^T dM`` and ``dV = dM U^T``.

Why not ``np.matmul`` of the stacked planes: the products are small, (k x C) @ (C x
F) with k a few hundred tiles and C, F = 32 or 64 on the shipped CNN, and NumPy
makes one BLAS call per point. OpenBLAS ran them at 92-109 GFLOP/s (one thread,
operands in cache) and this kernel at 170-214, as LLVM compiles it for the CPU
(AVX-512 on the Zen 5 VM, where the environment pins OpenBLAS to its AVX2 kernels:
``OPENBLAS_CORETYPE=Haswell``, 128 GFLOP/s on a 1024 x 1024 product).

How: a pass computes ``ROWS[F]`` whole rows of ``out`` (F wide;
``ROWS_BY_COLUMNS[F]`` when ``a`` is a transposed view), summing over the shared
axis into an accumulator on the stack (:func:`~tinynet.kernels.stack_empty`), F
and the row count fixed when the kernel is compiled: LLVM then keeps it in vector
registers (4 x 32 or 2 x 64 floats: 8 zmm) and each row of ``b``, loaded once,
feeds every row of the pass. Rows left over (fewer than a pass) run in plain
loops, other widths and dtypes by ``np.matmul``, and so does everything when Numba
compiles without AVX-512 (:data:`AVX512`; :data:`enabled` is the switch): with 16
ymm registers the tile spills, and the kernel compiled for AVX2
(``NUMBA_CPU_NAME=haswell`` with AVX-512 taken out of ``NUMBA_CPU_FEATURES``, same
benchmark) ran at 62-72 GFLOP/s, against OpenBLAS's 93-112; 2 rows of 32 there
tied it (101-112), 1 or 2 of 64 lost (70-77). Each entry is summed in order over
the shared axis, so results do not depend on the chunking, only, in the last bits,
on the use of fused multiply-adds.

Measured (``benchmarks/winograd_products.py --rounds 7``: the chunk the drivers use
at batch 128, one thread, CPU time, AMD EPYC Zen 5 VM), GFLOP/s, np.matmul -> this
kernel, for ``M = V U``, ``dU = V^T dM``, ``dV = dM U^T``: the shipped CNN's first
Winograd conv (64 points, k = 176, 32 -> 32) 98 -> 195, 92 -> 214, 99 -> 196; the
second (64, 84, 32 -> 64) 102 -> 170, 97 -> 187, 103 -> 208; the third (36, 128,
64 -> 64) 108 -> 183, 105 -> 202, 109 -> 182.

Width 24 is for the speedrun net's Winograd conv (``tinynet.zoo.mnist_speedrun``:
F(6x6), 64 points, k = 256, 8 -> 24 channels; the same benchmark with ``--model
speedrun``): ``M = V U`` 65 -> 92 GFLOP/s, ``dU = V^T dM`` 61 -> 112. LLVM keeps 24
floats in three ymm registers, not zmm, hence the lower rates; 4 rows a pass either
way (scratch script, GFLOP/s against np.matmul's 46-70 in the same runs: 3 rows of
24 gave 58-80 against 75-95 for 4; 1, 2, 6, 8, 12 or 16 rows 10-42; by columns, 8
rows 70-97 against 100-122). Its ``dV = dM U^T`` is 8 wide and keeps
``np.matmul``: the kernel's best there, 12 rows of 8 (ymm), took 0.85-0.98 of
np.matmul's time over five runs (61-77 GFLOP/s); other row counts (8 rows compiled
to scalar FMAs) and two rows a zmm accumulator (``b`` duplicated side by side) ran
at 4-17.

With ``a`` a transposed view (``dU``: the rows a pass takes of ``a`` lie side by
side in memory), more rows a pass paid: the same benchmark before, with
:data:`ROWS` for it, gave 172, 179 and 148 GFLOP/s for the three ``dU``; with ``a``
C-contiguous, more rows lost (F = 32, 8 rows: 145-147 GFLOP/s against 190-195,
scratch script).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba.core import codegen, config
from numba.np.numpy_support import carray

from . import serial_kernel, stack_empty


def _compiles_for_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512 (32 vector registers of 16
    floats): the host's features, or those the user set (``NUMBA_CPU_FEATURES``)."""
    features = getattr(config, "CPU_FEATURES", None)
    if features is None:
        features = codegen.get_host_cpu_features()  # type: ignore[no-untyped-call]
    return "+avx512f" in str(features).split(",")


#: Whether Numba compiles for AVX-512, where the kernel pays.
AVX512 = _compiles_for_avx512()

#: Whether :func:`products` may run the kernel (else ``np.matmul``): by default
#: where :data:`AVX512`. Set it to compare the two, or to run the kernel elsewhere.
enabled = AVX512

#: Output widths (F) the kernel is compiled for, and the rows a pass computes: the
#: most measured fastest (4 x 32, 2 x 64 and 4 x 24 floats of accumulators) ...
ROWS = {24: 4, 32: 4, 64: 2}
#: ... and when ``a`` is a transposed view, its rows strided by 1 element.
ROWS_BY_COLUMNS = {24: 4, 32: 8, 64: 4}


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


_KERNELS = {
    (width, by_columns): _compile(rows, width)
    for by_columns, table in ((False, ROWS), (True, ROWS_BY_COLUMNS))
    for width, rows in table.items()
}


def _kernel_for(a: np.ndarray, out: np.ndarray) -> Callable[..., Any] | None:
    if not enabled or out.dtype not in (np.float32, np.float64):
        return None
    return _KERNELS.get((out.shape[2], a.strides[1] < a.strides[2]))


def takes_kernel(a: np.ndarray, out: np.ndarray) -> bool:
    """Whether ``products(a, b, out)`` runs the compiled kernel (else ``np.matmul``):
    :data:`enabled`, ``out`` float32 or float64 and a width it was compiled for."""
    return _kernel_for(a, out) is not None


def products(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[p] = a[p] @ b[p]`` for every ``p``, as ``np.matmul(a, b, out=out)``.

    Parameters
    ----------
    a : (points, k, inner), any strides (a transposed view: ``V^T``).
    b : (points, inner, F) C-contiguous.
    out : (points, k, F) C-contiguous, fully overwritten; F = 24, 32 or 64
        (:data:`ROWS`, :data:`ROWS_BY_COLUMNS`) by the kernel where :data:`enabled`,
        anything else by ``np.matmul`` (:func:`takes_kernel` tells which).

    Returns
    -------
    out
    """
    kernel = _kernel_for(a, out)
    if kernel is None:
        np.matmul(a, b, out=out)
        return out
    result: np.ndarray = kernel(a, b, out)
    return result


__all__ = ["AVX512", "ROWS", "ROWS_BY_COLUMNS", "enabled", "products", "takes_kernel"]
