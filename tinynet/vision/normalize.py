"""From a digit's ink mask to an MNIST-style input.

MNIST digits (LeCun et al.) were made by size-normalising each binary NIST digit into a
20x20 box, keeping its aspect ratio (the resampling left grey, anti-aliased edges), and
placing it in a 28x28 field so that its centre of mass falls on the centre; ink is
bright (1.0) on a black (0.0) background. :func:`fit_mnist` does the same to a digit's
mask (or, for a tiny grey scan, its grey ink), after bringing its stroke width into
MNIST's range.
"""

from __future__ import annotations

import cv2
import numpy as np

from .loading import ImageError

WORK_MAX_SIDE = 1024
"""Longest side of the working image for photos (smaller digits would be too small)."""
TINY_SIDE = 96
"""Images smaller than this (16x16 scans, crops) are enlarged to at least this size."""
MNIST_BOX = 20
MNIST_SIZE = 28
# Mean centre of mass of the MNIST training digits: (row, col) = (14.0, 14.0).
MNIST_CENTRE = 14.0
# Stroke width of MNIST digits in 28x28 pixels (2 * area / perimeter of the mask at
# threshold 0.5, measured on 3000 training digits): median 2.4, 5th-95th pct 1.6-3.7.
MNIST_STROKE = 2.4
STROKE_RANGE = (1.8, 3.6)
FRAME_ASPECT = 0.8


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` made ``factor`` times smaller (area averaging, at least 1 px)."""
    h, w = image.shape
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def working_image(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Resize to the working resolution; return it and its scale (working / input)."""
    h, w = grey.shape
    long_side = max(h, w)
    if long_side > WORK_MAX_SIDE:
        return shrink(grey, long_side / WORK_MAX_SIDE), WORK_MAX_SIDE / long_side
    if long_side < TINY_SIDE:
        f = int(np.ceil(TINY_SIDE / long_side))
        big = cv2.resize(grey, (w * f, h * f), interpolation=cv2.INTER_LINEAR)
        return big, float(f)
    return grey, 1.0


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask: 2 * area / perimeter (in pixels)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(np.count_nonzero(mask)) / max(perimeter, 1.0)


def fit_mnist(
    mask: np.ndarray, *, fills_frame: bool = False, strength: np.ndarray | None = None
) -> np.ndarray:
    """One digit's binary mask (tightly cropped) -> MNIST-style (28, 28) input.

    Parameters
    ----------
    mask : (h, w) uint8
        1 = ink, cropped to the digit's bounding box.
    fills_frame : bool
        The digit was scanned stretched to fill its frame: a width above
        :data:`FRAME_ASPECT` times the height is not the writer's, and is narrowed.
    strength : (h, w) float in [0, 1], or None
        The ink's grey levels in the same crop (a tiny grey scan; 0 off the mask).
        Resampled instead of the mask when the stroke width (of the ink at half
        strength or more) is already in MNIST's range, so faint strokes and soft
        edges stay grey; otherwise that half-strength mask, its strokes thinned or
        thickened, is used.

    Returns
    -------
    (28, 28) float32 in [0, 1]
        The digit's longest side is 20 px (aspect kept), grey anti-aliased edges, the
        centre of mass at pixel (14, 14), stroke width within MNIST's usual range.
    """
    h, w = mask.shape
    if strength is not None and strength.shape != mask.shape:
        raise ValueError(
            f"fit_mnist: strength {strength.shape} and mask {mask.shape} must have "
            "the same shape"
        )
    if fills_frame and w > FRAME_ASPECT * h:
        # A scan stretched to fill its frame lost the digit's real width: give it a
        # typical MNIST width instead (bounding boxes of MNIST digits: w/h ~ 0.8).
        size = (max(1, round(FRAME_ASPECT * h)), h)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
        if strength is not None:
            strength = cv2.resize(strength, size, interpolation=cv2.INTER_AREA)
    if strength is not None and (strength >= 0.5).any():
        # The stroke width of grey ink is judged at half strength, as MNIST's was.
        mask = (strength >= 0.5).astype(np.uint8)
    radius = _stroke_change(mask)
    if radius:
        ink = _normalise_stroke(mask, radius).astype(np.float32)
    elif strength is not None:
        ink = strength.astype(np.float32)
    else:
        ink = mask.astype(np.float32)
    h, w = ink.shape
    long_side = max(h, w)
    nh = max(1, round(h * MNIST_BOX / long_side))
    nw = max(1, round(w * MNIST_BOX / long_side))
    small = cv2.resize(ink, (nw, nh), interpolation=cv2.INTER_AREA)
    total = float(small.sum())
    if total <= 0:
        raise ImageError("no ink found in the digit crop")
    rows, cols = np.indices(small.shape)
    cy = float((rows * small).sum()) / total
    cx = float((cols * small).sum()) / total
    top = int(round(MNIST_CENTRE - cy))
    left = int(round(MNIST_CENTRE - cx))
    # A very lopsided digit could be pushed out of the field: keep it inside.
    top = min(max(top, 0), MNIST_SIZE - nh)
    left = min(max(left, 0), MNIST_SIZE - nw)
    out = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    out[top : top + nh, left : left + nw] = small
    return np.clip(out, 0.0, 1.0)


def _stroke_change(mask: np.ndarray) -> float:
    """How far to grow (> 0) or shrink (< 0) each side of the strokes, in mask
    pixels, to bring their width into :data:`STROKE_RANGE`; 0 when it is there."""
    px_per_mnist = max(mask.shape) / MNIST_BOX
    width = _stroke_width(mask) / px_per_mnist
    lo, hi = STROKE_RANGE
    if lo <= width <= hi:
        return 0.0
    target = MNIST_STROKE if width < lo else hi
    radius = 0.5 * (target - width) * px_per_mnist
    return radius if abs(radius) >= 0.5 else 0.0


def _normalise_stroke(mask: np.ndarray, radius: float) -> np.ndarray:
    """Thicken hairlines (``radius`` > 0) or thin down marker strokes (< 0) by
    ``radius`` mask pixels on each side, towards MNIST's stroke width.

    Dilation and erosion by a disc of radius r are thresholds of a distance transform,
    which costs the same for any r.
    """
    pad = int(np.ceil(abs(radius))) + 1
    padded = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if radius > 0:
        dist = cv2.distanceTransform(1 - padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out: np.ndarray = (dist <= radius).astype(np.uint8)
    else:
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out = (dist > -radius).astype(np.uint8)
        if np.count_nonzero(out) < 0.4 * np.count_nonzero(mask):
            return mask  # eroding would break the digit apart
    x, y, w, h = cv2.boundingRect(out)
    return out[y : y + h, x : x + w]
