"""Resampling a batch of digit images, vectorised over the batch: one affine map
per image with bilinear sampling (an optional displacement field in the same pass),
and grey dilation and erosion by a small square.

The primitives under the augmentation (:mod:`tinynet.augment`) and deskewing
(:mod:`tinynet.deskew`); NumPy only. Images are ink on black, float; pixels brought
in from outside the frame are 0 (background).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["affine_transform", "dilate", "erode", "image_batch"]


def image_batch(x: Any, where: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Return ``x`` as ``(N, H, W)`` and its original shape, or say in one line
    (``where``: the caller's name) why it is not a batch of float images
    ``(N, H, W)`` or ``(N, H, W, 1)``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: expected a numpy array, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: expected float32 or float64 images, got {x.dtype}")
    if x.ndim == 4 and x.shape[-1] == 1:
        return x.reshape(x.shape[:3]), x.shape
    if x.ndim != 3 or min(x.shape[1:]) < 2:
        raise ValueError(
            f"{where}: expected images of shape (N, H, W) or (N, H, W, 1) with "
            f"H, W >= 2, got shape {x.shape}"
        )
    return x, x.shape


def affine_transform(
    x: np.ndarray, matrices: np.ndarray, displacement: np.ndarray | None = None
) -> np.ndarray:
    """Warp each image by its own affine map, with bilinear sampling.

    Parameters
    ----------
    x : (N, H, W) or (N, H, W, 1) float32/float64
    matrices : (N, 2, 3) forward maps in pixel coordinates ``(col, row)``:
        an input pixel at ``p`` moves to ``M[:, :2] @ p + M[:, 2]``.
    displacement : optional (N, H, W, 2) offsets ``(col, row)`` in input pixels
        added to where each output pixel is read from (an elastic distortion,
        :mod:`tinynet.augment_elastic`), in the same resampling.

    Returns
    -------
    (same shape and dtype as ``x``). Pixels that come from outside the image
    are 0. The identity map and integer shifts reproduce pixels exactly.
    """
    x3, shape = image_batch(x, "affine_transform")
    n, h, w = x3.shape
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.shape != (n, 2, 3):
        raise ValueError(
            f"affine_transform: expected matrices of shape ({n}, 2, 3), "
            f"got {matrices.shape}"
        )
    linear, offset = matrices[:, :, :2], matrices[:, :, 2]
    det = linear[:, 0, 0] * linear[:, 1, 1] - linear[:, 0, 1] * linear[:, 1, 0]
    if n and np.min(np.abs(det)) < 1e-8:
        raise ValueError("affine_transform: a matrix is singular (determinant ~0)")
    # Pull back: for each output pixel find its source p = L^-1 (q - offset).
    inv = np.empty_like(linear)
    inv[:, 0, 0], inv[:, 1, 1] = linear[:, 1, 1] / det, linear[:, 0, 0] / det
    inv[:, 0, 1], inv[:, 1, 0] = -linear[:, 0, 1] / det, -linear[:, 1, 0] / det
    # +1: sample from a copy padded by one zero pixel on each side.
    src_offset = 1.0 - np.einsum("nij,nj->ni", inv, offset)
    if displacement is not None and displacement.shape != (n, h, w, 2):
        raise ValueError(
            f"affine_transform: expected a displacement of shape ({n}, {h}, {w}, 2), "
            f"got {displacement.shape}"
        )
    return _sample(
        x3, inv.astype(x3.dtype), src_offset.astype(x3.dtype), displacement
    ).reshape(shape)


def _sample(
    x: np.ndarray,
    inv: np.ndarray,
    src_offset: np.ndarray,
    displacement: np.ndarray | None,
) -> np.ndarray:
    n, h, w = x.shape
    dt = x.dtype
    cols, rows = np.arange(w, dtype=dt), np.arange(h, dtype=dt)
    # Source coordinates of every output pixel, (N, H, W) each.
    sx = (
        inv[:, 0, 0, None, None] * cols
        + (inv[:, 0, 1, None] * rows + src_offset[:, 0, None])[:, :, None]
    )
    sy = (
        inv[:, 1, 0, None, None] * cols
        + (inv[:, 1, 1, None] * rows + src_offset[:, 1, None])[:, :, None]
    )
    if displacement is not None:
        sx += displacement[..., 0]
        sy += displacement[..., 1]
    padded = np.zeros((n, h + 2, w + 2), dt)
    padded[:, 1:-1, 1:-1] = x
    # Far-away coordinates clamp onto the zero border. Clamping to w + 1 with
    # the corner at w keeps x0 + 1 inside and gives weight 1 to the border.
    np.clip(sx, 0, w + 1, out=sx)
    np.clip(sy, 0, h + 1, out=sy)
    fx = np.minimum(np.floor(sx), w)
    fy = np.minimum(np.floor(sy), h)
    sx -= fx  # now the bilinear weights, kept in the image dtype
    sy -= fy
    fy *= w + 2
    fy += fx
    idx = fy.astype(np.intp)
    idx += (np.arange(n, dtype=np.intp) * ((h + 2) * (w + 2)))[:, None, None]
    flat = padded.reshape(-1)
    top, top_r = flat.take(idx), flat.take(idx + 1)
    bot, bot_r = flat.take(idx + (w + 2)), flat.take(idx + (w + 3))
    # a + t * (b - a): exactly a when t == 0, so identity maps are lossless.
    top_r -= top
    top_r *= sx
    top_r += top
    bot_r -= bot
    bot_r *= sx
    bot_r += bot
    bot_r -= top_r
    bot_r *= sy
    bot_r += top_r
    blended: np.ndarray = bot_r  # (N, H, W), in bot_r's memory
    return blended


def _morph(x: np.ndarray, size: int, op: np.ufunc) -> np.ndarray:
    """Grey dilation (``op=np.maximum``) or erosion (``np.minimum``), separable.

    ``size`` 3: centred 3x3 square; ``size`` 2: the 2x2 square at the pixel and
    its right/lower neighbours. Outside the image counts as background (0).
    """
    n, h, w = x.shape
    lo = (size - 1) // 2  # padding before: 3 -> 1, 2 -> 0; after is always 1
    p = np.zeros((n, h + size - 1, w + size - 1), x.dtype)
    p[:, lo : lo + h, lo : lo + w] = x
    rows = op(p[:, :, :w], p[:, :, 1 : w + 1])
    if size == 3:
        op(rows, p[:, :, 2 : w + 2], out=rows)
    out: np.ndarray = op(rows[:, :h], rows[:, 1 : h + 1])
    if size == 3:
        op(out, rows[:, 2 : h + 2], out=out)
    return out


def dilate(x: np.ndarray, size: int = 3) -> np.ndarray:
    """Grey dilation of each image ``(N, H, W)`` by a ``size``x``size`` square."""
    x3, shape = image_batch(x, "dilate")
    if size not in (2, 3):
        raise ValueError(f"dilate: size must be 2 or 3, got {size!r}")
    return _morph(x3, size, np.maximum).reshape(shape)


def erode(x: np.ndarray, size: int = 2) -> np.ndarray:
    """Grey erosion of each image ``(N, H, W)`` by a ``size``x``size`` square."""
    x3, shape = image_batch(x, "erode")
    if size not in (2, 3):
        raise ValueError(f"erode: size must be 2 or 3, got {size!r}")
    return _morph(x3, size, np.minimum).reshape(shape)
