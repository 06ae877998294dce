"""Separate the ink from the paper in a grey photo or scan.

1. Work at a fixed resolution (:func:`.normalize.working_image`): photos shrunk to
   1024 px, tiny scans enlarged.
2. Decide the polarity (:func:`ink_is_dark`): ink is the side, dark or light, that
   departs most from the local paper level; a tiny scan that the digit fills is
   judged by its border, corners and area instead.
3. Make ink bright and subtract the paper, estimated by a grey-level opening a few
   strokes wide: uneven lighting, shadows and a dark table around the page go.
4. Threshold with hysteresis: the high threshold is Otsu's on the contrast image (and
   at least four noise deviations above the paper), the low one half of it, so faint
   pencil and broken strokes stay joined to their strong parts. Paper lines that
   cross the digit are taken out first (:mod:`.lines`).
5. A tiny grey scan (USPS-like, 16x16) also keeps its grey levels
   (:attr:`InkComponents.strength`): at a few pixels per stroke, a faint stroke and a
   stroke's edge are grey, and a threshold would either drop them or fatten them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .lines import remove_paper_lines
from .loading import ImageError
from .normalize import shrink, working_image

MIN_CONTRAST = 24.0
"""Ink must differ from the paper by at least this many grey levels (of 255)."""
LINE_CONTRAST = 0.6
"""Paper lines are removed only when fainter than this fraction of the ink contrast."""
LOW_SIDE = 128
"""The stroke width is judged on a copy this small (fast, and enough)."""
GREY_LOW = 0.25
"""In a tiny grey scan, ink down to this fraction of the high threshold joins the
strokes it touches (kept grey, so faint strokes stay faint instead of fattening)."""
STROKE_CORE = 90
"""Percentile of the strong ink's contrast taken as full-strength ink (1.0)."""

BLANK = "no ink found: the image looks blank (no digit stands out)"


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
    strength : (h, w) float32 in [0, 1], or None
        For a tiny grey scan, how strong the ink is at each pixel (its contrast over
        the stroke core's, :data:`STROKE_CORE`); None when the ink is read as
        binary: photos, and scans with only two grey levels (black and white).
    """

    labels: np.ndarray
    stats: np.ndarray
    ids: np.ndarray
    scale: float
    strength: np.ndarray | None = None


def find_ink(grey: np.ndarray) -> InkComponents:
    """Separate ink from paper in a grey image (either polarity).

    Parameters
    ----------
    grey : (H, W) uint8

    Raises
    ------
    ImageError
        When no ink stands out from the paper (a blank page).
    """
    work, scale = working_image(grey)
    tiny = scale > 1
    grey_scan = tiny and np.unique(grey).size > 2
    work = cv2.GaussianBlur(work, (3, 3), 0) if min(work.shape) >= 32 else work
    if ink_is_dark(work, tiny=tiny):
        work = cv2.bitwise_not(work)
    if tiny:  # a scan the digit fills: no room for uneven light, so one paper level
        _, light = cv2.threshold(work, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        # OpenCV takes a scalar for src2; its stubs list only arrays.
        paper = int(np.median(work[light == 0]))
        t = cv2.subtract(work, paper)  # type: ignore[call-overload]
    else:
        small, d = _low_res(work)
        rough = cv2.subtract(small, paper_level(small)) > MIN_CONTRAST
        stroke = min(
            _thickest_stroke(rough.astype(np.uint8)) * d, 0.1 * max(work.shape)
        )
        t = remove_background(work, stroke)

    hist = np.bincount(t.ravel(), minlength=256).astype(np.float64)
    cdf = np.cumsum(hist) / t.size
    top = float(np.searchsorted(cdf, 0.999)) if t.size > 1000 else float(t.max())
    if top < MIN_CONTRAST:
        raise ImageError(BLANK)
    if not tiny:
        # Thresholds from the central two thirds: a dark table around the page, far
        # stronger than a ballpoint digit, would otherwise pull Otsu above the ink.
        h, w = t.shape
        centre = t[h // 6 : h - h // 6, w // 6 : w - w // 6]
        hist = np.bincount(centre.ravel(), minlength=256).astype(np.float64)
    otsu = _otsu(hist[: int(top) + 1])
    levels = np.arange(int(otsu) + 1, dtype=np.float64)
    below = hist[: int(otsu) + 1]
    n_below = max(below.sum(), 1.0)
    mean = float((below * levels).sum() / n_below)
    noise = float(np.sqrt((below * (levels - mean) ** 2).sum() / n_below))
    high = max(otsu, mean + 4.0 * noise, 0.5 * MIN_CONTRAST)
    low = (GREY_LOW if grey_scan else 0.5) * high

    weak = (t > low).astype(np.uint8)
    strong = t > high
    found = None
    if not tiny:  # (in a tiny scan a digit's stroke can span the whole frame)
        # The pen is the strongest ink on the page, whatever the lines' share of it.
        faint = LINE_CONTRAST * float(np.percentile(t[strong], 99))
        lines = remove_paper_lines(weak, t, faint)
        if lines.any():
            found = _label(np.where(lines, 0, weak).astype(np.uint8), strong & ~lines)
            sides = np.maximum(found[1][found[2], 2], found[1][found[2], 3])
            if not (sides >= 0.04 * min(t.shape)).any():
                found = None  # the "lines" were the digit (a lone 1 in a crop)
    labels, stats, ids = found if found is not None else _label(weak, strong)
    if ids.size == 0:
        raise ImageError(BLANK)
    strength = None
    if grey_scan:
        core = full_strength(t[strong], floor=1.0)
        strength = np.minimum(t * np.float32(1.0 / core), np.float32(1.0))
    return InkComponents(
        labels=labels, stats=stats, ids=ids, scale=scale, strength=strength
    )


def full_strength(strong_ink: np.ndarray, *, floor: float) -> float:
    """The contrast read as full-strength ink (1.0) in a tiny grey scan: the
    :data:`STROKE_CORE` percentile of the strong ink's contrast, at least ``floor``.

    strong_ink : the contrast of the pixels above the high threshold (any shape).
    """
    return max(float(np.percentile(strong_ink, STROKE_CORE)), floor)


def _label(
    weak: np.ndarray, strong: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of ``weak`` that hold a ``strong`` pixel: labels, stats, their ids."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    has_strong = np.bincount(labels[strong], minlength=n)
    has_strong[0] = 0
    return labels, stats, np.flatnonzero(has_strong)


def _low_res(grey: np.ndarray, side: int = LOW_SIDE) -> tuple[np.ndarray, float]:
    """A copy at most ``side`` px long, and its factor (input px per copy px)."""
    d = max(1.0, max(grey.shape) / side)
    return shrink(grey, d), d


def paper_level(grey: np.ndarray) -> np.ndarray:
    """The paper's grey level around each pixel: a median over windows half the image
    wide, computed on a 64 px copy (the ink covers less than half of such a window,
    so the median follows the lighting, not the strokes). (H, W) uint8."""
    small, _ = _low_res(grey, 64)
    k = max(3, (min(small.shape) // 2) | 1)
    return cv2.resize(cv2.medianBlur(small, min(k, 255)), grey.shape[::-1])


def ink_is_dark(grey: np.ndarray, *, tiny: bool = False) -> bool:
    """True when the ink is darker than the paper.

    Ink is the side of ``grey - paper_level(grey)`` with the heavier tail beyond the
    noise. Only the central two thirds vote: near the border a dark table around the
    page pulls the median down and makes the paper look like light ink. A tiny scan
    (``tiny``) that the digit fills may be half ink: there the paper is the Otsu class
    that dominates the border, the corners and the area together.

    Measured (dark ink / the same images inverted): right on all 109 realdigits
    photos, and on 97-100% of synthetic photos with shadows, ruled paper or a table.
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
    paper = paper_level(grey)
    h, w = grey.shape
    centre = (slice(h // 6, h - h // 6), slice(w // 6, w - w // 6))
    residual = cv2.subtract(grey[centre], paper[centre], dtype=cv2.CV_16S)
    step = max(1, int(np.sqrt(residual.size / 50_000)))  # a subsample is plenty
    r = residual[::step, ::step].astype(np.float32)
    mad = float(np.median(np.abs(r - np.median(r))))
    thr = max(8.0, 4.0 * 1.4826 * mad)
    darker = float(np.maximum(-r - thr, 0.0).sum())
    lighter = float(np.maximum(r - thr, 0.0).sum())
    return darker >= lighter


def _thickest_stroke(rough: np.ndarray) -> float:
    """Width of the thickest strokes of a rough ink mask (in its pixels).

    Twice the 90th percentile distance to paper, leaving out ink that touches the
    border (a table edge, a shadow) when there is other ink. Lines one or two
    pixels wide may be what joins the digit to the border (squared paper, whose
    lines also hold most of the ink pixels): the ink that erasing them sets free
    is measured too, and the larger width kept.
    """
    if not rough.any():
        return 3.0
    free = _free_ink(rough)
    width = _stroke_width(rough if free is None else free)
    set_free = _free_ink(cv2.morphologyEx(rough, cv2.MORPH_OPEN, np.ones((3, 3))))
    if set_free is not None:
        width = max(width, _stroke_width(set_free))
    return width


def _stroke_width(mask: np.ndarray) -> float:
    """Twice the 90th percentile distance to paper of a 0/1 mask's ink."""
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    return max(1.0, 2.0 * float(np.percentile(dist[mask > 0], 90)))


def _free_ink(mask: np.ndarray) -> np.ndarray | None:
    """The components of a 0/1 mask clear of its border, unless all are specks."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    x, y, w, h = (stats[:, i] for i in range(4))
    H, W = mask.shape
    inner = (x > 0) & (y > 0) & (x + w < W) & (y + h < H)
    inner[0] = False
    # Specks are not enough to judge by: a digit that fills a crop touches the border.
    if not (inner & (np.maximum(w, h) >= 0.04 * min(H, W))).any():
        return None
    free: np.ndarray = inner[labels].astype(np.uint8)
    return free


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
    small = shrink(x, d)
    k = int(round(size / d)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    paper = cv2.morphologyEx(
        small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE
    )
    # One low-res pixel of dilation: upsampling blurs a step (the edge of a dark table
    # around the page), and without it the bright side of the step shows as a ridge.
    paper = cv2.blur(cv2.dilate(paper, np.ones((3, 3), np.uint8)), (3, 3))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(x, paper)


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
