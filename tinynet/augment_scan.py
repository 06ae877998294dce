"""Coarse-scan effects: a digit seen at 8-16 pixels, enlarged again.

Forms and old scanners store a digit in a 16x16 frame or less (USPS: 16x16 grey,
Semeion: 16x16 black and white), and the reader enlarges such a scan, thresholds it
(keeping the grey levels of a grey scan) and resamples it into MNIST's 20-pixel box:
the strokes come out with staircase edges, blocky widths and merged holes that
MNIST's anti-aliased digits never show. :func:`coarse_scan` makes the same trip:
area-average each image down so that its digit is ``resolution`` pixels tall,
enlarge it bilinearly as the reader enlarges a tiny image, threshold, and give the
mask (and a grey scan's ink) to the reader's own
:func:`~tinynet.vision.normalize.fit_mnist`, so training sees exactly the kind of
input a coarse scan produces at prediction time.

Resampling is separable, so each resize is a matrix product over the images of one
scan size; only ``fit_mnist`` (a few OpenCV calls) runs per image.
"""

from __future__ import annotations

import cv2
import numpy as np

from .vision.ink import GREY_LOW, full_strength
from .vision.normalize import MNIST_BOX, fit_mnist

__all__ = ["area_matrix", "coarse_scan", "linear_matrix"]

BROKEN_INK = 0.3
"""Ink threshold for counting a digit's pieces before the scan (faint edges count)."""


def area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` area-averaging weights (OpenCV's INTER_AREA when shrinking).

    Output pixel i covers input interval ``[i, i + 1) * n_in / n_out``; its weights
    are the overlaps with each input pixel, normalised to sum to 1.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    weights: np.ndarray = overlap / overlap.sum(axis=1, keepdims=True)
    return weights


def linear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` linear-interpolation weights, pixel centres aligned.

    Output pixel i samples the input at ``(i + 0.5) * n_in / n_out - 0.5``, clamped
    to the edge pixels (OpenCV's INTER_LINEAR).
    """
    src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1.0)
    left = np.minimum(np.floor(src).astype(np.intp), n_in - 2) if n_in > 1 else None
    weights = np.zeros((n_out, n_in))
    if left is None:
        weights[:, 0] = 1.0
        return weights
    frac = src - left
    rows = np.arange(n_out)
    weights[rows, left] = 1.0 - frac
    weights[rows, left + 1] = frac
    return weights


def coarse_scan(
    x: np.ndarray,
    resolution: np.ndarray,
    threshold: np.ndarray,
    binary_scan: np.ndarray,
    enlarge_to: int = 56,
) -> np.ndarray:
    """Each image as the reader would see it had its digit been scanned coarsely.

    Parameters
    ----------
    x : (N, H, W) float images, ink bright, the digit about ``MNIST_BOX`` px tall.
    resolution : (N,) ints >= 2, the digit's height in scan pixels (e.g. 8..16).
    threshold : (N,) ink threshold as a fraction of each scan's brightest pixel
        (the scan's own: thin strokes come out grey and dimmer than the original).
    binary_scan : (N,) bool; True thresholds at the scan's own resolution (a black
        and white scanner, as Semeion), False keeps the scan grey (as USPS) and
        reads it as the reader reads a grey scan: enlarged, its ink down to
        ``GREY_LOW`` times the threshold kept with its grey levels.
    enlarge_to : the scan is enlarged by a whole factor to at least this many
        pixels before it is thresholded.

    Returns
    -------
    (N, H, W) same dtype in [0, 1]: the reader's input for that scan, made by its own
    :func:`~tinynet.vision.normalize.fit_mnist` (MNIST-sized, centred, stroke width
    normalised). An image whose strokes the scan breaks into more pieces (or loses
    entirely) is returned unchanged.
    """
    n, h, w = x.shape
    out = x.copy()
    frame = np.maximum(2, np.round(np.asarray(resolution) * h / MNIST_BOX)).astype(int)
    for size in np.unique(frame):
        idx = np.flatnonzero(frame == size)
        size_w = max(2, round(size * w / h))
        # The reader enlarges tiny images (to 96 px) before thresholding; twice the
        # output size is enough for the staircase edges and costs a third.
        factor = int(np.ceil(enlarge_to / max(size, size_w)))
        down_r = area_matrix(size, h).astype(x.dtype)
        down_c = area_matrix(size_w, w).astype(x.dtype)
        up_r = linear_matrix(size * factor, size).astype(x.dtype)
        up_c = linear_matrix(size_w * factor, size_w).astype(x.dtype)
        scan = down_r @ x[idx] @ down_c.T  # (k, size, size_w)
        level = threshold[idx, None, None] * scan.max(axis=(1, 2), keepdims=True)
        binary = binary_scan[idx]
        scan[binary] = scan[binary] > level[binary]
        big = up_r @ scan @ up_c.T  # (k, size * factor, size_w * factor)
        # As the reader: a grey scan's fainter ink joins the strokes, kept grey.
        cut = np.where(binary[:, None, None], 0.5, GREY_LOW * level)
        masks = big > cut
        for j, (i, mask) in enumerate(zip(idx, masks, strict=True)):
            if not mask.any() or _pieces(mask) > _pieces(x[i] > BROKEN_INK):
                continue  # the scan lost or broke the strokes: not a readable scan
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(0))
            box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            strength = None
            if not binary[j]:
                core = full_strength(big[j][big[j] > level[j]], floor=1e-6)
                strength = np.minimum(big[j][box] / core, 1.0) * mask[box]
            out[i] = fit_mnist(mask[box].astype(np.uint8), strength=strength)
    return out


def _pieces(mask: np.ndarray) -> int:
    """Number of 8-connected ink pieces in a boolean mask."""
    count, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return int(count) - 1
