"""Ruled and squared paper: find the printed lines in an ink mask and take them out.

A paper line is a long, thin, faint run of ink that crosses (almost) the whole image,
near horizontal or near vertical (a few degrees of tilt and a slight bend of the page
are allowed). Hough segments on a small copy find the candidates; each is then traced
at full resolution (its centre sampled along its length, a quadratic fitted) so that
only a thin band around the real line is removed. Where a digit's stroke crosses a
line, the band's pixels are given back when the stroke continues on both sides.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .normalize import shrink

SPAN = 0.6
"""A line runs across at least this fraction of the image (width or height)."""
MAX_TILT_DEG = 8.0
MAX_THICKNESS = 0.03
"""Thicker than this fraction of the image, it is not a printed line."""
HOUGH_SIDE = 256
SAMPLES = 48


def remove_paper_lines(
    weak: np.ndarray, contrast: np.ndarray, max_level: float
) -> np.ndarray:
    """Pixels of ``weak`` that belong to paper lines (after giving back crossings).

    Parameters
    ----------
    weak : (H, W) uint8
        1 = ink (or anything dark enough to be a line).
    contrast : (H, W) uint8
        Ink contrast above the paper.
    max_level : float
        Lines are printed or creases, fainter than the pen: a line whose median
        contrast is above this is a stroke (the long stem of a 7 in a tight crop).

    Returns
    -------
    (H, W) bool, True on the line pixels to remove (all False when there are none).
    """
    found = [
        (_draw(centre, horizontal, thickness, weak.shape) & weak, horizontal, thickness)
        for centre, horizontal, thickness in _candidates(weak)
    ]
    found = [f for f in found if f[0].any()]
    remove = np.zeros(weak.shape, bool)
    if not found:
        return remove
    rest = weak.copy()
    for band, _, _ in found:
        rest &= 1 - band
    # Where a stroke crosses a line, close the gap the band leaves in it: across the
    # line only (a vertical closing for horizontal lines), so that the line's own
    # pixels next to the digit are not given back as stubs.
    crossing = {}
    for horizontal in (True, False):
        widest = max((t for _, o, t in found if o == horizontal), default=0.0)
        k = 2 * int(round(widest)) + 7  # comfortably wider than the band
        kernel = np.ones((k, 1) if horizontal else (1, k), np.uint8)
        crossing[horizontal] = cv2.morphologyEx(rest, cv2.MORPH_CLOSE, kernel) > 0
    for band, horizontal, _ in found:
        line = (band > 0) & ~crossing[horizontal]
        # Judge the contrast on the line's own pixels, not the strokes crossing it.
        if line.any() and np.median(contrast[line]) <= max_level:
            remove |= line
    return remove


def _candidates(mask: np.ndarray) -> Iterator[tuple[np.ndarray, bool, float]]:
    """Yield (centre polynomial, horizontal?, thickness) per paper-line candidate."""
    h, w = mask.shape
    # Hough on a small copy (any ink in a cell counts): much faster, and the lines
    # get no thinner than one pixel there.
    f = max(1.0, max(h, w) / HOUGH_SIDE)
    small = mask if f == 1 else (shrink(mask * 255, f) > 0).astype(np.uint8)
    # Three pixels thick: Hough's walk along a slightly tilted (staircase) line then
    # does not step off it and end the segment early.
    small = cv2.dilate(small, np.ones((3, 3), np.uint8))
    shortest = int(SPAN * min(small.shape))
    if shortest < 20:
        return
    segments = cv2.HoughLinesP(
        small,
        rho=1,
        # Half-degree steps: with whole degrees, a line tilted half a degree spreads
        # its votes over several bins and can miss the threshold.
        theta=np.pi / 360,
        threshold=max(10, shortest // 3),
        minLineLength=shortest,
        maxLineGap=max(3, shortest // 25),
    )
    if segments is None:
        return
    tilt = np.tan(np.radians(MAX_TILT_DEG))
    seen: list[tuple[bool, float]] = []
    for x0, y0, x1, y1 in segments.reshape(-1, 4).astype(np.float64) * f:
        dx, dy = abs(x1 - x0), abs(y1 - y0)
        horizontal = dy <= tilt * dx and dx >= SPAN * w - 2 * f
        vertical = dx <= tilt * dy and dy >= SPAN * h - 2 * f
        if not (horizontal or vertical):
            continue
        traced = _trace(mask, (x0, y0, x1, y1), horizontal, search=2 * f + 2)
        if traced is None:
            continue
        centre, thickness = traced
        if thickness > MAX_THICKNESS * max(h, w):
            continue  # a thick bar: ink, not a printed line
        middle = float(np.polyval(centre, (w if horizontal else h) / 2))
        if any(o == horizontal and abs(m - middle) < 2 for o, m in seen):
            continue  # Hough often returns the same line twice
        seen.append((horizontal, middle))
        yield centre, horizontal, thickness


def _trace(
    mask: np.ndarray,
    seg: tuple[float, float, float, float],
    horizontal: bool,
    search: float,
) -> tuple[np.ndarray, float] | None:
    """Follow a line near a Hough segment; return (quadratic centre, thickness).

    The centre is y(x) for a horizontal line, x(y) for a vertical one. Sample
    points where a digit's stroke crosses give long runs; the thickness is the
    median of the runs that are not crossings, and the fit drops points far from
    the first fit.
    """
    img = mask if horizontal else mask.T
    x0, y0, x1, y1 = seg if horizontal else (seg[1], seg[0], seg[3], seg[2])
    length, across = img.shape[1], img.shape[0]
    slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
    xs_seen: list[float] = []
    ys_seen: list[float] = []
    runs_seen: list[int] = []
    for x in np.linspace(0.02, 0.98, SAMPLES) * (length - 1):
        xi = int(round(x))
        guess = y0 + slope * (x - x0)
        lo = max(0, int(guess - search))
        hi = min(across, int(guess + search) + 1)
        col = img[lo:hi, xi]
        if not col.any():
            continue
        on = np.flatnonzero(col) + lo
        # The run of ink nearest the guess.
        start = end = on[np.argmin(np.abs(on - guess))]
        while start > 0 and img[start - 1, xi]:
            start -= 1
        while end < across - 1 and img[end + 1, xi]:
            end += 1
        xs_seen.append(x)
        ys_seen.append((start + end) / 2)
        runs_seen.append(end - start + 1)
    if len(xs_seen) < SAMPLES // 2:
        return None
    xs, ys, runs = np.array(xs_seen), np.array(ys_seen), np.array(runs_seen)
    thin = runs <= np.percentile(runs, 50) + 1  # not where a stroke crosses
    if thin.sum() < 4:
        return None
    centre = np.polyfit(xs[thin], ys[thin], 2)
    close = thin & (np.abs(np.polyval(centre, xs) - ys) <= 1.5)
    if close.sum() >= 4:
        centre = np.polyfit(xs[close], ys[close], 2)
    return centre, float(np.median(runs[thin]))


def _draw(
    centre: np.ndarray, horizontal: bool, thickness: float, shape: tuple[int, int]
) -> np.ndarray:
    """A band ``thickness + 3`` px wide along the traced line, across the image."""
    h, w = shape
    length = w if horizontal else h
    t = np.linspace(0, length - 1, max(2, length // 16))
    c = np.polyval(centre, t)
    pts = np.stack([t, c] if horizontal else [c, t], axis=1)
    band = np.zeros(shape, np.uint8)
    width = int(round(thickness)) + 3  # the fit is good to about a pixel each side
    cv2.polylines(band, [np.round(pts).astype(np.int32)], False, 1, width)
    return band
