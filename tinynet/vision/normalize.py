"""From a grey photo to an ink mask, and from a digit's mask to an MNIST-style input.

MNIST digits (LeCun et al.) were made by size-normalising each binary NIST digit into a
20x20 box, keeping its aspect ratio (the resampling left grey, anti-aliased edges), and
placing it in a 28x28 field so that its centre of mass falls on the centre; ink is
bright (1.0) on a black (0.0) background. A photo is none of that, so this module:

1. brings the image to a working resolution (tiny scans are enlarged, photos shrunk);
2. decides the polarity (which grey level is paper) and makes ink bright;
3. subtracts the paper, estimated by a grey-level opening much wider than a stroke,
   which removes uneven lighting, shadows and a dark table around the page;
4. thresholds with hysteresis (Otsu / noise-based high threshold, half of it as the
   low one, so faint pencil and broken strokes stay joined to the strong parts);
5. (in :mod:`.segment`) keeps the digit's connected components;
6. normalises the stroke width to MNIST's, fits the mask into 20x20 with area
   averaging (grey edges like MNIST's) and centres it by centre of mass in 28x28.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .lines import paper_lines
from .loading import ImageError

WORK_MAX_SIDE = 1024
"""Longest side of the working image for photos (smaller digits would be too small)."""
TINY_SIDE = 96
"""Images smaller than this (16x16 scans, crops) are enlarged to at least this size."""
MIN_CONTRAST = 24.0
"""Ink must differ from the paper by at least this many grey levels (of 255)."""

LINE_CONTRAST = 0.6
"""Paper lines are removed only when fainter than this fraction of the ink contrast."""

MNIST_BOX = 20
MNIST_SIZE = 28
MNIST_CENTRE = (
    14.0  # mean centre of mass of MNIST training digits, (row, col) = (14, 14)
)
# Stroke width of MNIST digits in 28x28 pixels (2 * area / perimeter of the mask at
# threshold 0.5, measured on 3000 training digits): median 2.4, 5th-95th pct 1.6-3.7.
MNIST_STROKE = 2.4
STROKE_RANGE = (1.8, 3.6)
FRAME_ASPECT = 0.8


def working_image(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Resize to the working resolution; return it and its scale (working / input)."""
    h, w = grey.shape
    long_side = max(h, w)
    if long_side > WORK_MAX_SIDE:
        s = WORK_MAX_SIDE / long_side
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), s
    if long_side < TINY_SIDE:
        f = int(np.ceil(TINY_SIDE / long_side))
        return cv2.resize(grey, (w * f, h * f), interpolation=cv2.INTER_LINEAR), float(
            f
        )
    return grey, 1.0


def paper_residual(grey: np.ndarray) -> np.ndarray:
    """``grey`` minus a local median of it: the paper level, whatever the polarity.

    The median over a window half the image wide ignores the ink as long as ink covers
    less than half of the window, so it follows lighting gradients but not strokes.
    Returns (H, W) int16: ink shows as a strong tail on one side of 0.
    """
    h, w = grey.shape
    d = max(1.0, max(h, w) / 64.0)
    small = cv2.resize(
        grey, (max(1, round(w / d)), max(1, round(h / d))), interpolation=cv2.INTER_AREA
    )
    k = max(3, (min(small.shape) // 2) | 1)
    paper = cv2.medianBlur(small, min(k, 255))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(grey, paper, dtype=cv2.CV_16S)


def ink_is_dark(grey: np.ndarray, residual: np.ndarray, *, tiny: bool = False) -> bool:
    """True when the ink is darker than the paper.

    In a tiny scan (``tiny``) the digit fills the frame and may cover half of it: the
    paper is the Otsu class that dominates the border, the corners and the area
    together. Otherwise ink is the side of :func:`paper_residual` with the heavier
    tail beyond the noise (a border can be a dark table or shadow): dark ink leaves
    large negative residuals.
    """
    if tiny:
        _, light = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        b, c = max(1, max(grey.shape) // 32), max(1, max(grey.shape) // 8)
        sides = (light[:b], light[-b:], light[:, :b], light[:, -b:])
        corners = (light[:c, :c], light[:c, -c:], light[-c:, :c], light[-c:, -c:])
        ring = np.mean([x.mean() for x in sides])
        corner = np.mean([x.mean() for x in corners])
        # Border, corners and area vote: on 1000 MNIST digits squeezed into 8x8 this
        # picks the paper 98% of the time (any one cue alone: 73-95%).
        return bool((ring + corner + light.mean()) / 3 > 0.5)
    step = max(1, int(np.sqrt(residual.size / 50_000)))  # a subsample is plenty
    r = residual[::step, ::step].astype(np.float32)
    mad = float(np.median(np.abs(r - np.median(r))))
    thr = max(8.0, 4.0 * 1.4826 * mad)
    dark = float(np.maximum(-r - thr, 0.0).sum())
    light = float(np.maximum(r - thr, 0.0).sum())
    return dark >= light


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary mask: 2 * area / perimeter (in pixels)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * float(np.count_nonzero(mask)) / max(perimeter, 1.0)


def _thickest_stroke(mask: np.ndarray) -> float:
    """Width of the thickest strokes: twice the 90th percentile distance to paper."""
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return 2.0 * float(np.percentile(dist[mask > 0], 90))


def remove_background(x: np.ndarray, stroke: float) -> np.ndarray:
    """Ink-bright ``x`` minus the paper level (a grey opening wider than a stroke).

    Parameters
    ----------
    x : (H, W) uint8
        Ink bright, paper dark.
    stroke : float
        Rough stroke width in pixels; the opening is about three strokes wide.

    Returns
    -------
    (H, W) uint8: ink contrast above the local paper level (saturated at 0).
    """
    h, w = x.shape
    size = max(5.0, 3.0 * stroke + 3.0)
    # Open at low resolution (kernel about 9 px there): cheap, and the result is smooth.
    d = max(1.0, size / 9.0)
    small = cv2.resize(
        x, (max(1, round(w / d)), max(1, round(h / d))), interpolation=cv2.INTER_AREA
    )
    k = int(round(size / d)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.morphologyEx(
        small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE
    )
    paper = cv2.blur(paper, (3, 3))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(x, paper)


@dataclass
class InkComponents:
    """The ink of an image as connected components, at working resolution.

    Attributes
    ----------
    labels : (h, w) int32
        Component id of each pixel (0 = paper; ids not in ``ids`` are not ink either).
    stats : (n, 5) int32
        Per id: x, y, width, height, area (OpenCV's ``CC_STAT_*`` order).
    ids : (m,) int
        The ids that are ink.
    scale : float
        Working-image pixels per input-image pixel.
    """

    labels: np.ndarray
    stats: np.ndarray
    ids: np.ndarray
    scale: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def mask(self) -> np.ndarray:
        """(h, w) uint8, 1 where there is ink."""
        return np.isin(self.labels, self.ids).astype(np.uint8)


def find_ink(grey: np.ndarray) -> InkComponents:
    """Separate ink from paper in a grey image (either polarity).

    Thresholds with hysteresis: a component of pixels above the low threshold is ink
    if it holds a pixel above the high one (Otsu on the background-free image, at
    least four noise deviations above the paper), so faint pencil joins its strokes.

    Raises
    ------
    ImageError
        When no ink stands out from the paper (a blank page).
    """
    work, scale = working_image(grey)
    work = cv2.GaussianBlur(work, (3, 3), 0) if min(work.shape) >= 32 else work
    residual = paper_residual(work)
    if ink_is_dark(work, residual, tiny=scale > 1):
        work, residual = cv2.bitwise_not(work), -residual
    # A rough mask from the median residual, only to size the opening below.
    cut = max(MIN_CONTRAST, float(residual.max()) / 3)
    rough = (residual > cut).astype(np.uint8)
    stroke = min(_thickest_stroke(rough), 0.1 * max(work.shape)) if rough.any() else 3.0
    t = remove_background(work, stroke)

    hist = np.bincount(t.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist) / t.size
    top = float(np.searchsorted(cdf, 0.999)) if t.size > 1000 else float(t.max())
    if top < MIN_CONTRAST:
        raise ImageError("no ink found: the image looks blank (no digit stands out)")
    otsu = _otsu(hist[: int(top) + 1])
    levels = np.arange(len(hist), dtype=np.float64)
    below = hist[: int(otsu) + 1]
    mean = float((below * levels[: len(below)]).sum() / max(below.sum(), 1.0))
    noise = np.sqrt(
        float((below * (levels[: len(below)] - mean) ** 2).sum())
        / max(below.sum(), 1.0)
    )
    high = max(otsu, mean + 4.0 * noise, 0.5 * MIN_CONTRAST)
    low = 0.5 * high

    weak = (t > low).astype(np.uint8)
    strong_px = t > high
    if scale <= 1.0:  # (in a tiny scan a digit's stroke can span the whole frame)
        faint = LINE_CONTRAST * float(np.median(t[strong_px]))
        lines = paper_lines(weak, t, faint).astype(bool)
        left = np.count_nonzero(strong_px & ~lines)
        # Unless the "lines" are nearly all the ink there is (a lone "1" in a crop).
        if lines.any() and left >= 0.25 * np.count_nonzero(strong_px):
            weak[lines] = 0
            strong_px &= ~lines
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    strong = np.bincount(labels[strong_px], minlength=n)
    strong[0] = 0
    ids = np.flatnonzero(strong)
    if ids.size == 0:
        raise ImageError("no ink found: the image looks blank (no digit stands out)")
    return InkComponents(labels=labels, stats=stats, ids=ids, scale=scale)


def _otsu(hist: np.ndarray) -> float:
    """Otsu's threshold of a histogram (the level that best splits it in two)."""
    p = hist / max(hist.sum(), 1.0)
    levels = np.arange(len(p), dtype=np.float64)
    w0 = np.cumsum(p)
    m = np.cumsum(p * levels)
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m[-1] * w0 - m) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0.0
    return float(np.argmax(between))


def fit_mnist(mask: np.ndarray, *, fills_frame: bool = False) -> np.ndarray:
    """One digit's binary mask (tightly cropped) -> MNIST-style (28, 28) input.

    Parameters
    ----------
    mask : (h, w) uint8
        1 = ink, cropped to the digit's bounding box.

    Returns
    -------
    (28, 28) float32 in [0, 1]
        The digit's longest side is 20 px (aspect kept), grey anti-aliased edges, the
        centre of mass at pixel (14, 14), stroke width within MNIST's usual range.
    """
    h, w = mask.shape
    if fills_frame and w > FRAME_ASPECT * h:
        # A scan stretched to fill its frame lost the digit's real width: give it a
        # typical MNIST width instead (bounding boxes of MNIST digits: w/h ~ 0.8).
        mask = cv2.resize(
            mask, (max(1, round(FRAME_ASPECT * h)), h), interpolation=cv2.INTER_AREA
        )
    mask = _normalise_stroke(mask)
    h, w = mask.shape
    long_side = max(h, w)
    nh = max(1, round(h * MNIST_BOX / long_side))
    nw = max(1, round(w * MNIST_BOX / long_side))
    small = cv2.resize(mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
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


def _normalise_stroke(mask: np.ndarray) -> np.ndarray:
    """Thicken hairlines / thin down marker strokes towards MNIST's stroke width.

    Dilation and erosion by a disc of radius r are thresholds of a distance transform,
    which costs the same for any r.
    """
    long_side = max(mask.shape)
    px_per_mnist = long_side / MNIST_BOX
    width = _stroke_width(mask) / px_per_mnist
    lo, hi = STROKE_RANGE
    if lo <= width <= hi:
        return mask
    target = MNIST_STROKE if width < lo else hi
    radius = 0.5 * (target - width) * px_per_mnist  # grow (or shrink) each side
    if abs(radius) < 0.5:
        return mask
    pad = int(np.ceil(abs(radius))) + 1
    padded = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    if radius > 0:
        dist = cv2.distanceTransform(1 - padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out = (dist <= radius).astype(np.uint8)
    else:
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out = (dist > -radius).astype(np.uint8)
        if np.count_nonzero(out) < 0.4 * np.count_nonzero(mask):
            return mask  # eroding would break the digit apart
    x, y, w, h = cv2.boundingRect(out)
    return out[y : y + h, x : x + w]
