"""Conv2D (linear) -> BatchNorm -> ReLU, optionally then MaxPool2D(2), as one step.

Why: the shipped CNN (``tinynet.zoo.mnist_cnn``) is four such blocks. Run as
layers, every block writes and re-reads its full-resolution activation five or six
times a training step (BatchNorm's mean, variance, ``xh``, ``y``; the ReLU's mask
and output; the pool), and its inference applies BatchNorm as a separate pass.

- Training: the convolution runs as in :class:`~tinynet.plan.Conv2DStep` (the
  batch-split im2col drivers, the im2col matrix kept in a workspace), or, for a
  3x3 stride-1 kernel over 8 or more channels with an even output, by Winograd
  over every output tile (``kernels.winograd_conv.conv3x3_forward``): F(6x6,
  3x3), F(4x4, 3x3) or F(2x2, 3x3), whichever needs the fewest multiplications
  per output (:attr:`ConvBNReLU.winograd_algorithm`; F(6x6) 5x fewer multiply-adds
  than im2col on the shipped CNN's 24x24 output); nothing kept but
  ``x``: backward transforms it again chunk
  by chunk, in cache, which beat writing the whole transformed input and reading
  it back, 38 MB on the second conv at batch 128, by 7% of that conv's training
  CPU time, and kept the memory); then one
  read of its output ``z`` gives the batch mean and variance, and one pass writes
  the normalised, rectified (and pooled) output (``tinynet.kernels.batchnorm``).
  Backward, one pass gives ``dbeta`` and ``dgamma`` of the ReLU-masked gradient
  (after a pool, over the pooled arrays and the winners' ``z``, which the
  normalisation keeps: a quarter of ``z`` to read), a second writes ``dz``,
  which the convolution's backward takes: by Winograd, chunk by chunk into a
  per-thread scratch that stays in cache, and after a pool straight from the
  pooled gradient and winners
  (``batchnorm.pooled_normalize_backward``), never unpooling it first.
- Inference: BatchNorm is folded into the convolution, ``W' = W * s``, ``b' = (b -
  moving_mean) * s + beta`` with ``s = gamma / sqrt(moving_var + eps)`` per
  filter, and the ReLU (and pool) run in the convolution's epilogue, as in
  ``Conv2DStep`` and ``ConvPool`` (Winograd where ``ConvPool`` would use it).

Measured on the 2-core Intel KVM machine, shipped CNN, batch 128, 2 threads,
``benchmarks/step_times.py --models cnn`` with the layer-by-layer plan of before
alternated, medians of 5 runs each: training step 111 -> 56 ms, ``predict``
3.4k -> 8.5k images/s. The convolutions take most of what is left (profiled in
one step: the second conv's Winograd forward and backward 14 and 17 ms); the batch
statistics and normalisation passes about 1 ms each per block. On the AMD EPYC
VM (2026-12-03, 1 thread, CPU time, ``benchmarks/cnn_step_profile.py``, load
average ~6) a step takes ~89 ms (117 ms with F(2x2) alone, load ~10): the Winograd
transforms ~29 ms, the BatchNorm/ReLU/pool passes ~18 ms, the first (1-channel,
im2col) block ~13 ms, the rest of the three Winograd convolutions (their matrix
products, mostly) ~28 ms. The first block now runs as
:class:`~tinynet.plan.FewTapsConvBNReLU` (``few_taps_conv_bn_relu.py``), which
stores neither ``z`` nor ``dz``.

The running statistics are updated exactly as ``BatchNorm.forward`` does.
``tests/test_conv_bn_relu.py`` checks both steps against the layers run one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from ..kernels import (
    batch_split,
    batchnorm,
    conv,
    window_placement,
    winograd,
    winograd_conv,
)
from ..kernels.winograd43 import F4X4
from ..kernels.winograd63 import F6X6
from ..kernels.winograd_algorithm import Algorithm
from ..layers.activations import ReLU
from ..layers.base import Layer
from ..layers.conv import Conv2D
from ..layers.geometry import float_input
from ..layers.normalization import BatchNorm
from ..layers.pooling import MaxPool2D
from .conv_pool import ConvPool, pools_by_winograd
from .step import Step, ThreadScratch, Workspace, write_conv_grads


class ConvBNReLUCache(NamedTuple):
    x: np.ndarray  # (N, H, W, C) the input
    kept: np.ndarray | None  # im2col rows (N*ho*wo, K); None by Winograd
    w: np.ndarray  # (kh, kw, C, F) in the input's dtype
    z: np.ndarray  # (N, ho, wo, F) the convolution's output
    mean: np.ndarray  # (F,) batch mean of z
    inv_std: np.ndarray  # (F,) 1 / sqrt(batch variance + eps)
    out: np.ndarray  # (N, ho, wo, F) the output, or (N, ho // 2, wo // 2, F) pooled
    argmax: np.ndarray | None  # pooled: (N, ho // 2, wo // 2, F) uint8 winners
    z_at_out: np.ndarray  # z at each output: z itself, or pooled, the winners' z


def _over_rows(work: Callable[[slice], np.ndarray], n: int, pixels: int) -> np.ndarray:
    """Run ``work(rows)`` on each thread's share of ``n`` images (``pixels`` rows of
    an (M, F) view each) and add up the (2, F) float64 sums it returns."""

    def share(start: int, stop: int) -> np.ndarray:
        return work(slice(start * pixels, stop * pixels))

    total: np.ndarray = np.sum(batch_split.run(share, n), axis=0)
    return total


def fewest_multiplications(ho: int, wo: int) -> Algorithm:
    """Of F(6x6, 3x3), F(4x4, 3x3) and F(2x2, 3x3) (``ho`` and ``wo`` even), the
    Winograd algorithm with the fewest multiplications per output of an ``ho x wo``
    convolution output, partial tiles counted (``points * tiles / outputs``); on a
    tie the smaller tile, which rounds less."""

    def cost(algorithm: Algorithm) -> tuple[float, int]:
        tiles_h, tiles_w = algorithm.tiles(ho, wo)
        return algorithm.points * tiles_h * tiles_w / (ho * wo), algorithm.tile

    return min((F6X6, F4X4, winograd.F2X2), key=cost)


class ConvBNReLU(Step):
    """``Conv2D`` (no activation) -> ``BatchNorm`` -> ``ReLU``: x : (N, H, W, C) ->
    (N, ho, wo, F), the numbers of the three layers run one by one; the gradients
    land in the conv's and the BatchNorm's ``grads``."""

    span = 3
    splits_batch = True

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        return (
            len(layers) >= cls.span
            and type(layers[0]) is Conv2D
            and layers[0].activation is None
            and type(layers[1]) is BatchNorm
            and type(layers[2]) is ReLU
        )

    def __init__(self, conv_layer: Conv2D, norm: BatchNorm, relu: ReLU) -> None:
        super().__init__(conv_layer, norm, relu)
        self.conv, self.norm = conv_layer, norm
        self._cache: ConvBNReLUCache | None = None
        # Scratch kept between training steps (Workspace says why): the conv input
        # as im2col rows (not by Winograd), its output z and dz. Called alone, the
        # shipped CNN's first block took 18 ms a training forward with a fresh z
        # (page faults) against 2.5 ms; inside a whole training step, where freed
        # arrays are recycled, the difference was within the noise.
        self._kept = Workspace()
        self._z = Workspace()
        self._dz = Workspace()
        self._dz_chunks = ThreadScratch()

    @property
    def winograd(self) -> bool:
        """Whether the training convolution runs by Winograd (see
        :attr:`winograd_algorithm`)."""
        return self.winograd_algorithm is not None

    @property
    def winograd_algorithm(self) -> Algorithm | None:
        """The Winograd algorithm of the training convolution, for a 3x3 stride-1
        kernel over ``winograd_conv.MIN_CHANNELS`` or more channels and an even
        output (else None: im2col): of F(6x6, 3x3), F(4x4, 3x3) and F(2x2, 3x3), the
        one with the fewest multiplications per output, partial tiles counted
        (``points * tiles / outputs``; on a tie the smaller tile, which rounds
        less). On the shipped CNN: F(6x6) for the 24x24 output (1.78 against
        F(4x4)'s 2.25) and the 10x10 one (2x2 partial tiles: 2.56, against 3.24
        and F(2x2)'s 4), F(4x4) for the 8x8 one (2.25, against 4 and 4). Measured
        there (``benchmarks/winograd_algorithms.py --rounds 15``: the conv's
        forward and backward, batch 128, 1 thread, CPU time): 24x24: F(6x6) 16.1
        ms, F(4x4) 18.7, F(2x2) 29.9; 10x10: 7.0, 8.1, 9.3; 8x8: 11.3, 6.5, 10.6
        -- the same order (:func:`fewest_multiplications`)."""
        shape = self.conv.output_shape
        if not pools_by_winograd(self.conv) or shape is None:
            return None
        if shape[0] % 2 or shape[1] % 2:
            return None
        return fewest_multiplications(shape[0], shape[1])

    def _placement(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(ho, wo, pad_top, pad_left)`` of the convolution."""
        layer = self.conv
        return window_placement(
            x_shape[1], x_shape[2], layer.kernel_size, layer.strides, layer.padding
        )

    def _conv_params(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
        params = self.conv.params
        w = params["W"].astype(dtype, copy=False)
        b = params["b"].astype(dtype, copy=False) if self.conv.use_bias else None
        return w, b

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self.conv.check_input(x)
        x = float_input(x, self.conv.dtype)
        if not training:
            self.clear()
            return self._folded_forward(x)
        w, b = self._conv_params(x.dtype)
        ho, wo, pt, pl = self._placement(x.shape)
        n, f = x.shape[0], self.conv.filters
        z = self._z.get((n, ho, wo, f), x.dtype)
        z2 = z.reshape(-1, f)
        kept: np.ndarray | None = None
        algorithm = self.winograd_algorithm
        if algorithm is not None:
            sums, shift = self._winograd_forward(x, w, b, pt, pl, z, algorithm)
        else:
            kept = self._kept.get((n * ho * wo, w.size // f), x.dtype)
            strides = self.conv.strides
            conv.conv2d_forward(x, w, b, *strides, pt, pl, ho, wo, kept, y=z)
            shift = z2[0].astype(np.float64)  # near the mean: E[d^2] - E[d]^2 exact

            def moments(rows: slice) -> np.ndarray:
                return batchnorm.channel_moments(z2[rows], shift, np.zeros((2, f)))

            sums = _over_rows(moments, n, ho * wo)
        mean, inv_std = self._batch_statistics(sums, shift, z2.shape[0], z.dtype)
        gamma = self.norm.params["gamma"].astype(x.dtype, copy=False)
        beta = self.norm.params["beta"].astype(x.dtype, copy=False)
        scale = gamma * inv_std
        out, argmax, z_at_out = self._normalize(z, mean, scale, beta)
        self._cache = ConvBNReLUCache(
            x, kept, w, z, mean, inv_std, out, argmax, z_at_out
        )
        return out

    def _winograd_forward(
        self,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray | None,
        pt: int,
        pl: int,
        z: np.ndarray,
        algorithm: Algorithm,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``z = conv3x3(x, w) + b`` by Winograd ``algorithm``, and ``(sums,
        shift)``: the (2, F) sums of ``z - shift`` and its square, with ``shift`` =
        ``z``'s first row.

        Each chunk's sums are taken right after its output transform, while it is
        in cache, about the chunk's own first row (chunks run in parallel), then
        moved to the common shift: ``sum (d + delta) = S1 + m delta``, ``sum (d +
        delta)^2 = S2 + 2 delta S1 + m delta^2``.
        """
        n, ho, wo, f = z.shape
        pixels = ho * wo
        z2 = z.reshape(-1, f)
        bias = np.zeros(f, x.dtype) if b is None else b
        # Per chunk, at its first image (zero for the other images).
        partial = np.zeros((n, 2, f))
        shifts = np.zeros((n, f))
        rows_of = np.zeros((n, 1))

        def epilogue(m: np.ndarray, s: int, e: int) -> None:
            algorithm.output_transform(m, bias, z[s:e])
            shifts[s] = z2[s * pixels]
            rows_of[s] = (e - s) * pixels
            batchnorm.channel_moments(
                z2[s * pixels : e * pixels], shifts[s], partial[s]
            )

        tiles_h, tiles_w = algorithm.tiles(ho, wo)
        winograd_conv.forward_chunks(
            x, w, pt, pl, tiles_h, tiles_w, None, epilogue, algorithm
        )
        delta = shifts - shifts[0]
        s1, s2 = partial[:, 0], partial[:, 1]
        sums = np.stack(
            [
                np.sum(s1 + rows_of * delta, axis=0),
                np.sum(s2 + 2 * delta * s1 + rows_of * delta * delta, axis=0),
            ]
        )
        return sums, shifts[0]

    def _batch_statistics(
        self, sums: np.ndarray, shift: np.ndarray, m: int, dtype: np.dtype
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean and ``1 / sqrt(var + eps)`` of each channel over the batch, in
        ``dtype``, from the (2, F) sums of ``z - shift`` and its square over ``m``
        rows; the BatchNorm's running statistics updated."""
        offset = sums[0] / m
        mean = (shift + offset).astype(dtype)
        var = np.maximum(sums[1] / m - offset * offset, 0.0).astype(dtype)
        norm = self.norm
        # As BatchNorm.forward: in place, so the arrays others hold stay the live ones.
        for key, stat in (("moving_mean", mean), ("moving_var", var)):
            moving = norm.buffers[key]
            moving *= norm.momentum
            moving += (1.0 - norm.momentum) * stat
        inv_std = (1.0 / np.sqrt(var + norm.epsilon)).astype(dtype)
        return mean, inv_std

    def _normalize(
        self, z: np.ndarray, mean: np.ndarray, scale: np.ndarray, beta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``max((z - mean) * scale + beta, 0)``, no winners (no pool), and ``z``
        at each output: ``z`` itself."""
        n, ho, wo, f = z.shape
        z2 = z.reshape(-1, f)
        y2 = np.empty_like(z2)

        def share(start: int, stop: int) -> None:
            rows = slice(start * ho * wo, stop * ho * wo)
            batchnorm.normalize_relu(z2[rows], mean, scale, beta, y2[rows])

        batch_split.run(share, n)
        return y2.reshape(z.shape), None, z

    def _folded_weights(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """``W * s`` and ``(b - moving_mean) * s + beta``, ``s = gamma / sqrt(moving_var
        + eps)``: the convolution that equals conv then BatchNorm at inference."""
        w, b = self._conv_params(dtype)
        norm = self.norm
        inv_std = 1.0 / np.sqrt(norm.buffers["moving_var"] + norm.epsilon)
        scale = (norm.params["gamma"] * inv_std).astype(dtype)
        shift = norm.params["beta"] - norm.buffers["moving_mean"] * scale
        folded_b = shift if b is None else b * scale + shift
        return w * scale, folded_b.astype(dtype)

    def _folded_forward(self, x: np.ndarray) -> np.ndarray:
        w, b = self._folded_weights(x.dtype)
        ho, wo, pt, pl = self._placement(x.shape)
        y, _ = conv.conv2d_forward(
            x, w, b, *self.conv.strides, pt, pl, ho, wo, None, relu=True
        )
        return y

    def backward(self, dout: np.ndarray, *, need_dx: bool = True) -> np.ndarray | None:
        cache = self._training_cache(self._cache)
        x, kept, w, z, mean, inv_std, out, argmax, _ = cache
        if dout.shape != out.shape:
            raise ValueError(
                f"{self.describe()}: backward expected a gradient of shape "
                f"{out.shape}, got {dout.shape}"
            )
        dout = np.ascontiguousarray(dout, dtype=x.dtype)
        n = z.shape[0]
        sums = self._gradient_sums(dout, cache)
        norm = self.norm
        norm.grads["beta"][...] = sums[0]
        norm.grads["gamma"][...] = sums[1]
        m = z.size // z.shape[3]
        scale = norm.params["gamma"].astype(z.dtype, copy=False) * inv_std
        mean_dbeta = (sums[0] / m).astype(z.dtype)
        mean_dgamma = (sums[1] / m).astype(z.dtype)

        def normalize_backward(start: int, stop: int, dz: np.ndarray) -> None:
            images = slice(start, stop)
            winners = None if argmax is None else argmax[images]
            self._normalize_backward(
                dout[images], out[images], winners, z[images], mean, inv_std, scale,
                mean_dbeta, mean_dgamma, dz,
            )  # fmt: skip

        _, _, pt, pl = self._placement(x.shape)
        algorithm = self.winograd_algorithm
        if algorithm is not None:
            # dz chunk by chunk, just before the output transform's adjoint reads it,
            # rather than in a pass of its own; in a per-thread scratch, which stays
            # in cache (a whole-batch dz went out to memory and back).
            def output_adjoint(dm: np.ndarray, s: int, e: int, db: np.ndarray) -> None:
                dz = self._dz_chunks.get((e - s, *z.shape[1:]), z.dtype)
                normalize_backward(s, e, dz)
                algorithm.output_transform_adjoint(dz, dm, db)

            tiles_h, tiles_w = algorithm.tiles(z.shape[1], z.shape[2])
            dx, dw, db = winograd_conv.backward_chunks(
                n, tiles_h, tiles_w, output_adjoint, None, x, w, pt, pl, x.shape,
                need_dx, z.dtype, algorithm,
            )  # fmt: skip
        else:
            if kept is None:  # the im2col forward always keeps its rows
                raise RuntimeError(f"{self.describe()}: no im2col rows were cached")
            dz = self._dz.get(z.shape, z.dtype)
            batch_split.run(lambda s, e: normalize_backward(s, e, dz[s:e]), n)
            strides = self.conv.strides
            dx, dw, db = conv.conv2d_backward(dz, x, kept, w, *strides, pt, pl, need_dx)
        write_conv_grads(self.conv, dw, db)
        return dx

    def _gradient_sums(self, dout: np.ndarray, cache: ConvBNReLUCache) -> np.ndarray:
        """``[dbeta, dgamma]`` (2, F): the sums of the gradient ``g`` reaching the
        BatchNorm's output and of ``g * xh`` over the batch. After a pool ``g`` is
        zero but at the winners, so the sums run over the pooled arrays and the
        winners' ``z``: the routed gradient is never written."""
        mean, inv_std, out, z = cache.mean, cache.inv_std, cache.out, cache.z_at_out
        f = z.shape[3]
        dy2, y2, z2 = dout.reshape(-1, f), out.reshape(-1, f), z.reshape(-1, f)

        def sums(rows: slice) -> np.ndarray:
            return batchnorm.normalize_backward_sums(
                dy2[rows], y2[rows], z2[rows], mean, inv_std, np.zeros((2, f))
            )

        return _over_rows(sums, z.shape[0], z.shape[1] * z.shape[2])

    def _normalize_backward(
        self,
        dout: np.ndarray,
        out: np.ndarray,
        argmax: np.ndarray | None,
        z: np.ndarray,
        mean: np.ndarray,
        inv_std: np.ndarray,
        scale: np.ndarray,
        mean_dbeta: np.ndarray,
        mean_dgamma: np.ndarray,
        dz: np.ndarray,
    ) -> None:
        """``dz`` of some images from their ``dout``, ``out`` and ``z`` (``argmax``
        is the pooled step's): ``batchnorm.normalize_backward``, masked by ``out``."""
        f = z.shape[3]
        batchnorm.normalize_backward(
            dout.reshape(-1, f), out.reshape(-1, f), z.reshape(-1, f), mean, inv_std,
            scale, mean_dbeta, mean_dgamma, dz.reshape(-1, f),
        )  # fmt: skip

    def clear(self) -> None:
        self._cache = None
        for workspace in (self._kept, self._z, self._dz, self._dz_chunks):
            workspace.clear()
        super().clear()

    def describe(self) -> str:
        names = " + ".join(layer.name or type(layer).__name__ for layer in self.layers)
        algorithm = self.winograd_algorithm
        how = "im2col" if algorithm is None else f"Winograd {algorithm.name}"
        return (
            f"{type(self).__name__}: {names} ({how}; batch statistics, normalisation "
            "and ReLU in one pass; BatchNorm folded into the kernel at inference)"
        )


class ConvBNReLUPool(ConvBNReLU):
    """``Conv2D`` (no activation) -> ``BatchNorm`` -> ``ReLU`` -> ``MaxPool2D(2)``
    (stride 2, valid): x : (N, H, W, C) -> (N, ho // 2, wo // 2, F); the full-size
    activation is never stored, the pool runs in the normalisation's pass."""

    span = 4

    @classmethod
    def matches(cls, layers: Sequence[Layer]) -> bool:
        return (
            super().matches(layers)
            and len(layers) >= cls.span
            and ConvPool.matches([layers[0], layers[3]])
        )

    def __init__(
        self, conv_layer: Conv2D, norm: BatchNorm, relu: ReLU, pool: MaxPool2D
    ) -> None:
        super().__init__(conv_layer, norm, relu)
        self.layers = (conv_layer, norm, relu, pool)

    def _normalize(
        self, z: np.ndarray, mean: np.ndarray, scale: np.ndarray, beta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The 2x2 max-pool of ``max((z - mean) * scale + beta, 0)``, its winners
        and their ``z``."""
        n, ho, wo, f = z.shape
        out = np.empty((n, ho // 2, wo // 2, f), dtype=z.dtype)
        argmax = np.empty(out.shape, dtype=np.uint8)
        winner_z = np.empty_like(out)

        def share(start: int, stop: int) -> None:
            images = slice(start, stop)
            batchnorm.normalize_relu_pool(
                z[images], mean, scale, beta, out[images], argmax[images],
                winner_z[images],
            )  # fmt: skip

        batch_split.run(share, n)
        return out, argmax, winner_z

    def _normalize_backward(
        self,
        dout: np.ndarray,
        out: np.ndarray,
        argmax: np.ndarray | None,
        z: np.ndarray,
        mean: np.ndarray,
        inv_std: np.ndarray,
        scale: np.ndarray,
        mean_dbeta: np.ndarray,
        mean_dgamma: np.ndarray,
        dz: np.ndarray,
    ) -> None:
        """``dz`` straight from the pooled arrays
        (``batchnorm.pooled_normalize_backward``): the routed gradient is never
        written."""
        batchnorm.pooled_normalize_backward(
            dout, out, self._winners(argmax), z, mean, inv_std, scale, mean_dbeta,
            mean_dgamma, dz,
        )  # fmt: skip

    def _winners(self, argmax: np.ndarray | None) -> np.ndarray:
        if argmax is None:  # the pooled forward always records the winners
            raise RuntimeError(f"{self.describe()}: no pool winners were cached")
        return argmax

    def _folded_forward(self, x: np.ndarray) -> np.ndarray:
        w, b = self._folded_weights(x.dtype)
        ho, wo, pt, pl = self._placement(x.shape)
        n, f = x.shape[0], self.conv.filters
        p = np.empty((n, ho // 2, wo // 2, f), dtype=x.dtype)
        argmax = np.empty(p.shape, dtype=np.uint8)
        if pools_by_winograd(self.conv):
            # The pooled conv output by the algorithm with the fewest
            # multiplications, as in training (forward only: the pooled F(4x4) and
            # F(6x6) kernels have no adjoint, training pools apart). The shipped
            # CNN's 24x24 -> 12x12 block: F(6x6) (F(4x4) before: predict 8.65k ->
            # 9.17k images/s, 1,024 images, alternated in one process).
            algorithm = fewest_multiplications(2 * p.shape[1], 2 * p.shape[2])
            return winograd_conv.conv3x3_pool_forward(
                x, w, b, pt, pl, True, None, p, argmax, algorithm
            )
        conv.conv2d_forward(
            x, w, b, *self.conv.strides, pt, pl, ho, wo, None, True, (p, argmax)
        )
        return p


__all__ = ["ConvBNReLU", "ConvBNReLUCache", "ConvBNReLUPool"]
