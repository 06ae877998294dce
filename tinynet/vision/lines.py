"""Ruled and squared paper: find the printed lines in an ink mask and take them out.

A paper line is a straight, thin, faint run of ink that crosses (almost) the whole
image, near horizontal or near vertical (photos are rarely square to the page, so a few
degrees of tilt are allowed). Hough segments find them even where a digit's stroke
crosses them; only a thin band around each line is removed, so a stroke that crosses
a line keeps all but a line-wide gap, which the digit grouping bridges.
"""

from __future__ import annotations

import cv2
import numpy as np

SPAN = 0.85
"""A line runs across at least this fraction of the image (width or height)."""
MAX_TILT_DEG = 8.0
HOUGH_SIDE = 256
MAX_THICKNESS = 0.03
"""Thicker than this fraction of the image, it is not a printed line."""


def paper_lines(mask: np.ndarray, contrast: np.ndarray, max_level: float) -> np.ndarray:
    """Pixels of ``mask`` that belong to paper lines.

    Parameters
    ----------
    mask : (H, W) uint8
        1 = ink (or anything dark enough to be a line).
    contrast : (H, W) uint8
        Ink contrast above the paper.
    max_level : float
        Lines are printed or creases, fainter than the pen: a line whose median
        contrast is above this is a stroke (the long stem of a 7 in a tight crop).

    Returns
    -------
    (H, W) uint8, 1 on the line pixels found (all zero when there are none).
    """
    h, w = mask.shape
    out = np.zeros_like(mask)
    # Hough on a small copy (any ink in a cell counts): much faster, and the lines
    # get no thinner than one pixel there.
    f = max(1.0, max(h, w) / HOUGH_SIDE)
    small = mask
    if f > 1:
        size = (max(1, round(w / f)), max(1, round(h / f)))
        small = cv2.resize(mask * 255, size, interpolation=cv2.INTER_AREA)
        small = (small > 0).astype(np.uint8)
    shortest = int(SPAN * min(small.shape))
    if shortest < 20:
        return out
    segments = cv2.HoughLinesP(
        small,
        rho=1,
        theta=np.pi / 180,
        threshold=max(10, shortest // 2),
        minLineLength=shortest,
        maxLineGap=max(3, shortest // 25),
    )
    if segments is None:
        return out
    segments = segments.reshape(-1, 4).astype(np.float64) * f
    tilt = np.tan(np.radians(MAX_TILT_DEG))
    for x0, y0, x1, y1 in segments:
        dx, dy = abs(x1 - x0), abs(y1 - y0)
        horizontal = dy <= tilt * dx and dx >= SPAN * w - 2 * f
        vertical = dx <= tilt * dy and dy >= SPAN * h - 2 * f
        if not (horizontal or vertical):
            continue
        thickness = _thickness(mask, (x0, y0, x1, y1), horizontal)
        if thickness > MAX_THICKNESS * max(h, w):
            continue  # a thick bar: ink, not a printed line
        # Extend to the borders: the Hough segment can stop short of the line's ends.
        if horizontal:
            slope = (y1 - y0) / (x1 - x0 if x1 != x0 else 1.0)
            ends = ((0, y0 - slope * x0), (w - 1, y0 + slope * (w - 1 - x0)))
        else:
            slope = (x1 - x0) / (y1 - y0 if y1 != y0 else 1.0)
            ends = ((x0 - slope * y0, 0), (x0 + slope * (h - 1 - y0), h - 1))
        p, q = (tuple(int(round(v)) for v in e) for e in ends)
        line = cv2.line(np.zeros_like(mask), p, q, 1, thickness=int(thickness) + 2)
        line &= mask
        if line.any() and np.median(contrast[line > 0]) <= max_level:
            out |= line
    return out


def _thickness(mask: np.ndarray, seg: tuple, horizontal: bool) -> float:
    """Typical run of ink across the segment, sampled at 15 points along it."""
    x0, y0, x1, y1 = (int(v) for v in seg)
    h, w = mask.shape
    runs = []
    for t in np.linspace(0.05, 0.95, 15):
        x, y = int(round(x0 + t * (x1 - x0))), int(round(y0 + t * (y1 - y0)))
        line = mask[:, x] if horizontal else mask[y, :]
        i = y if horizontal else x
        if not line[i]:
            continue
        lo, hi = i, i
        while lo > 0 and line[lo - 1]:
            lo -= 1
        while hi < len(line) - 1 and line[hi + 1]:
            hi += 1
        runs.append(hi - lo + 1)
    # A low percentile: where a digit's stroke crosses the line the run is long.
    return float(np.percentile(runs, 25)) if runs else 1.0
