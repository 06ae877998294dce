"""The record of one Winograd algorithm F(m x m, 3x3): its tile size and its kernels,
which the algorithm-independent drivers of :mod:`tinynet.kernels.winograd_conv` run.
The instances live beside their kernels: :data:`tinynet.kernels.winograd.F2X2` and
:data:`tinynet.kernels.winograd43.F4X4` and :data:`tinynet.kernels.winograd63.F6X6`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from . import Kernel, serial_kernel


def transform_kernel(fn: Kernel) -> Kernel:
    """A Winograd transform as a :func:`~tinynet.kernels.serial_kernel` with fused
    multiply-adds: the transforms are short sums of constant multiples, which LLVM
    then emits as FMA instructions. Measured on the AMD EPYC VM (shipped CNN's
    26x26x32 -> 24x24x32 conv, batch 128, 1 thread, CPU time, medians of 15
    alternated rounds): F(4x4) output transform 4.0 -> 3.5 ms, input-transform
    adjoint 5.0 -> 4.3 ms, input transform 3.05 -> 2.9 ms, output-transform adjoint
    unchanged."""
    return serial_kernel(fn, fma=True)


def kernel_transform_by(gg: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``U[t a + b] = (G w G^T)[a, b]`` for every channel pair as one matrix
    product: ``gg = kron(G, G)`` (t^2, 9) times ``w`` (3, 3, C, F) as a (9, C F)
    matrix, -> (t^2, C, F), C-contiguous.

    Why one product: two ``tensordot`` calls, each with a transposed copy, took
    0.03-0.05 ms for 32 x 32 channels and 0.8 ms for 64 x 64 (F(4x4), 1 thread,
    called alone; 0.013 and 0.075 ms so), and a training step makes the transform
    three times per block, on the calling thread alone, between two batch splits
    (inside the shipped CNN's step, the gaps around its 64 x 64 block's calls
    shrank by 0.04-0.14 ms each).
    """
    u: np.ndarray = gg.astype(w.dtype, copy=False) @ w.reshape(9, -1)
    return u.reshape(gg.shape[0], *w.shape[2:])


def kernel_transform_adjoint_by(gg: np.ndarray, du: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`kernel_transform_by`: dU (t^2, C, F) -> dw (3, 3, C, F),
    ``dw = G^T dU G``, as ``kron(G, G)^T dU``."""
    dw: np.ndarray = gg.T.astype(du.dtype, copy=False) @ du.reshape(gg.shape[0], -1)
    return dw.reshape(3, 3, *du.shape[1:])


@dataclasses.dataclass
class Algorithm:
    """One Winograd algorithm F(m x m, 3x3): the tile size and the kernels the
    drivers of :mod:`tinynet.kernels.winograd_conv` run. ``tile`` outputs a side per
    tile, from a tile of ``tile + 2`` inputs a side, whose transform has
    ``points = (tile + 2)^2`` planes.

    The kernels are looked up on the instance at each call (not bound into the
    drivers), so a benchmark can wrap them to time them.
    """

    name: str
    tile: int
    kernel_transform: Callable[[np.ndarray], np.ndarray]
    kernel_transform_adjoint: Callable[[np.ndarray], np.ndarray]
    input_transform: Callable[..., np.ndarray]
    input_transform_adjoint: Callable[..., np.ndarray]
    output_transform: Callable[..., np.ndarray]
    output_transform_adjoint: Callable[..., tuple[np.ndarray, np.ndarray]]
    output_transform_pool: Callable[..., tuple[np.ndarray, np.ndarray]]

    @property
    def points(self) -> int:
        """Planes of the transformed tile (multiplications per tile and channel
        pair)."""
        return (self.tile + 2) ** 2

    def tiles(self, ho: int, wo: int) -> tuple[int, int]:
        """Tiles down and across an ``ho x wo`` output (the last ones partial when
        ``tile`` does not divide it)."""
        return -(-ho // self.tile), -(-wo // self.tile)

    def pooled_tiles(self, po: int, qo: int) -> tuple[int, int]:
        """Tiles down and across a ``po x qo`` 2x2-pooled output."""
        return self.tiles(2 * po, 2 * qo)
