"""Writing conventions MNIST's writers rarely used, drawn onto digits by their label.

MNIST was written by American census staff and students. Writers elsewhere put a
flag (a long up-stroke) and a foot on their 1s, cross their 7s, close the top of
their 4s or start its arm above the stem, and give their 9s a g-like tail, a stem
that curves left or one that leaves the loop on its left (like a rho); a model that
never saw those reads such a 1 as a 7, a closed 4 as a 9 and those 9s as 3s or 8s.
:class:`StrokeConventions` draws these onto MNIST digits, each with its own
probability and random size and angle, so the model learns them as variants of the
same digit.

Each stroke is placed from the digit's own geometry (:func:`digit_geometry`: the ink
bounding box, the ink's column on a given row, the stroke width) and drawn as an
anti-aliased line of the digit's stroke width (:func:`draw_segments`): a few
whole-array NumPy operations on the chosen images, no loop over images.

:func:`break_strokes` draws another thing real strokes do and MNIST's rarely do: a
pen that skips or a scanner that drops a faint stretch, leaving gaps across a stroke.

Images are ``(N, H, W)`` float, white ink (up to 1.0) on black (0.0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DigitGeometry",
    "StrokeConventions",
    "break_strokes",
    "digit_geometry",
    "draw_segments",
    "shift_rows",
]

INK = 0.5
"""Threshold that separates ink from background when measuring a digit."""
# Boundary edges overcount a stroke's outline by 4/pi on average over directions
# (a diagonal edge of length L crosses L * (|cos| + |sin|) pixel sides).
_EDGES_PER_OUTLINE = 4.0 / np.pi


@dataclass(frozen=True)
class DigitGeometry:
    """Where each digit's ink is: every field is an ``(N,)`` float array.

    ``top``/``bottom`` are the first/last ink rows and ``left``/``right`` the
    first/last ink columns (inclusive); ``width`` is the stroke width in pixels
    (2 * area / outline length); ``peak`` the brightest ink value.
    """

    top: np.ndarray
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    width: np.ndarray
    peak: np.ndarray

    @property
    def height(self) -> np.ndarray:
        height: np.ndarray = self.bottom - self.top + 1.0
        return height

    def take(self, idx: np.ndarray) -> DigitGeometry:
        """The geometry of the digits ``idx`` only."""
        fields = DigitGeometry.__dataclass_fields__
        return DigitGeometry(*(np.asarray(getattr(self, f))[idx] for f in fields))


def digit_geometry(x: np.ndarray) -> DigitGeometry:
    """Bounding box, stroke width and ink level of each image ``(N, H, W)``.

    An image without ink gets the whole frame as its box and width 2.
    """
    n, h, w = x.shape
    ink = x > INK
    rows, cols = np.any(ink, axis=2), np.any(ink, axis=1)
    empty = ~np.any(rows, axis=1)
    top = np.where(empty, 0, rows.argmax(axis=1))
    bottom = np.where(empty, h - 1, h - 1 - rows[:, ::-1].argmax(axis=1))
    left = np.where(empty, 0, cols.argmax(axis=1))
    right = np.where(empty, w - 1, w - 1 - cols[:, ::-1].argmax(axis=1))
    area = ink.sum(axis=(1, 2))
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    edges = (padded[:, 1:, :] != padded[:, :-1, :]).sum(axis=(1, 2)) + (
        padded[:, :, 1:] != padded[:, :, :-1]
    ).sum(axis=(1, 2))
    width = 2.0 * area / np.maximum(edges / _EDGES_PER_OUTLINE, 1.0)
    return DigitGeometry(
        top=top.astype(np.float64),
        bottom=bottom.astype(np.float64),
        left=left.astype(np.float64),
        right=right.astype(np.float64),
        width=np.where(empty, 2.0, np.clip(width, 1.0, 5.0)),
        peak=np.where(empty, 1.0, x.max(axis=(1, 2))),
    )


def ink_column(x: np.ndarray, row: np.ndarray, band: int = 1) -> np.ndarray:
    """Ink-weighted mean column of each image near ``row`` (rows ``row ± band``).

    Parameters
    ----------
    x : (N, H, W) images. row : (N,) row per image (rounded, clipped to the image).

    Returns
    -------
    (N,) float column; the image centre where those rows hold no ink.
    """
    n, h, w = x.shape
    r = np.clip(np.round(row).astype(np.intp), 0, h - 1)
    offsets = np.arange(-band, band + 1)
    rows = np.clip(r[:, None] + offsets, 0, h - 1)  # (N, 2 band + 1)
    strip = np.take_along_axis(x, rows[:, :, None], axis=1).sum(axis=1)  # (N, W)
    mass = strip.sum(axis=1)
    centre = (strip * np.arange(w)).sum(axis=1) / np.maximum(mass, 1e-12)
    column: np.ndarray = np.where(mass > 0, centre, (w - 1) / 2.0)
    return column


def ink_extent(x: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last ink column of each image on ``row``: (N,) each, centre if none."""
    n, h, w = x.shape
    r = np.clip(np.round(row).astype(np.intp), 0, h - 1)
    line = x[np.arange(n), r] > INK  # (N, W)
    has = line.any(axis=1)
    first = np.where(has, line.argmax(axis=1), (w - 1) / 2.0)
    last = np.where(has, w - 1 - line[:, ::-1].argmax(axis=1), (w - 1) / 2.0)
    return first.astype(np.float64), last.astype(np.float64)


def draw_segments(
    x: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    width: np.ndarray,
    level: np.ndarray,
) -> np.ndarray:
    """Draw one anti-aliased straight stroke on each image, over the existing ink.

    Parameters
    ----------
    x : (N, H, W) images (not modified).
    start, end : (N, 2) end points as ``(row, col)`` in pixels (may lie outside).
    width : (N,) stroke width in pixels. level : (N,) ink value of the stroke.

    Returns
    -------
    (N, H, W) ``max(x, stroke)``: a pixel at distance d from the segment gets
    ``level * clip(width / 2 + 0.5 - d, 0, 1)``.
    """
    n, h, w = x.shape
    rows, cols = np.mgrid[:h, :w]
    a = start[:, :, None, None]
    ab = (end - start)[:, :, None, None]
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)  # (N, 1, 1)
    pr = rows - a[:, 0]
    pc = cols - a[:, 1]
    t = np.clip((pr * ab[:, 0] + pc * ab[:, 1]) / length2, 0.0, 1.0)
    dist = np.hypot(pr - t * ab[:, 0], pc - t * ab[:, 1])
    stroke = np.clip(0.5 * width[:, None, None] + 0.5 - dist, 0.0, 1.0)
    stroke *= level[:, None, None]
    out: np.ndarray = np.maximum(x, stroke.astype(x.dtype))
    return out


def _one_flag(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """From the top of a 1's stem down-left: 25-80% of its height, 20-65 degrees."""
    col = ink_column(x, g.top + 0.5 * g.width)
    length = g.height * (0.25 + 0.55 * u[:, 0])
    angle = np.deg2rad(20.0 + 45.0 * u[:, 1])
    start = np.stack([g.top + 0.3 * g.width, col], axis=1)
    end = start + np.stack([np.sin(angle), -np.cos(angle)], axis=1) * length[:, None]
    return draw_segments(x, start, end, g.width, g.peak)


def _one_foot(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A base through the bottom of a 1's stem: 0-35% of its height to the left,
    10-35% to the right, tilted up to 8 degrees."""
    row = g.bottom - 0.3 * g.width
    col = ink_column(x, g.bottom - 0.5 * g.width)
    left = g.height * 0.35 * u[:, 2]
    right = g.height * (0.1 + 0.25 * u[:, 3])
    slope = np.tan(np.deg2rad(8.0 * (2.0 * u[:, 0] - 1.0)))
    start = np.stack([row + slope * left, col - left], axis=1)
    end = np.stack([row - slope * right, col + right], axis=1)
    return draw_segments(x, start, end, g.width, g.peak)


def _seven_bar(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A short bar across a 7's stem at 45-65% of its height, tilted <= 12 degrees."""
    row = g.top + g.height * (0.45 + 0.2 * u[:, 0])
    col = ink_column(x, row) + g.height * 0.05 * (2.0 * u[:, 1] - 1.0)
    half = g.height * (0.15 + 0.15 * u[:, 2])
    lean = half * np.tan(np.deg2rad(12.0 * (2.0 * u[:, 3] - 1.0)))
    start = np.stack([row + lean, col - half], axis=1)
    end = np.stack([row - lean, col + half], axis=1)
    return draw_segments(x, start, end, g.width, g.peak)


def _four_closed_top(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """From the top of a 4's right stem to the left end of its crossbar.

    The crossbar is taken as the widest ink row between 45% and 80% of the height;
    the printed, closed 4 joins the two there. In 70% of them the open 4's left arm
    (the ink left of the new diagonal, above the crossbar) is erased, leaving the
    printed triangle; the others keep both.
    """
    n, h, w = x.shape
    stem_top = np.stack([g.top + 0.3 * g.width, g.right - 0.6 * g.width], axis=1)
    right_half = np.arange(w) >= ((g.left + g.right) / 2.0)[:, None]  # (N, W)
    top_right = ((x > INK) & right_half[:, None, :]).any(axis=2)  # (N, H)
    has = top_right.any(axis=1)
    first_row = np.where(has, top_right.argmax(axis=1), g.top)
    stem_top[:, 0] = first_row + 0.3 * g.width
    stem_top[:, 1] = ink_column(x * right_half[:, None, :], first_row + 0.5 * g.width)
    rows = np.arange(h)
    lo = g.top + 0.45 * g.height
    hi = g.top + 0.8 * g.height
    band = (rows >= lo[:, None]) & (rows <= hi[:, None])  # (N, H)
    span = (x > INK).sum(axis=2) * band
    bar_row = np.where(span.any(axis=1), span.argmax(axis=1), (lo + hi) / 2.0)
    bar_left, _ = ink_extent(x, bar_row)
    bar_end = np.stack([bar_row, bar_left + 0.3 * g.width * u[:, 0]], axis=1)
    # Column of the diagonal on every row, and what lies left of it above the bar.
    slope = (bar_end[:, 1] - stem_top[:, 1]) / np.maximum(bar_row - stem_top[:, 0], 1)
    diagonal = stem_top[:, 1, None] + slope[:, None] * (rows - stem_top[:, 0, None])
    arm = (np.arange(w) < (diagonal - 0.5 * g.width[:, None] - 1.0)[:, :, None]) & (
        rows < (bar_row - g.width)[:, None]
    )[:, :, None]  # (N, H, W)
    erase = (u[:, 1] < 0.7)[:, None, None] & arm
    return draw_segments(np.where(erase, 0, x), stem_top, bar_end, g.width, g.peak)


def _seven_serif(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A short down-stroke at the left end of a 7's top bar, 10-30% of its height."""
    row = g.top + 0.5 * g.width
    first, _ = ink_extent(x, row)
    start = np.stack([row, first + 0.3 * g.width], axis=1)
    length = g.height * (0.1 + 0.2 * u[:, 0])
    angle = np.deg2rad(90.0 + 30.0 * (2.0 * u[:, 1] - 1.0))
    end = start + np.stack([np.sin(angle), np.cos(angle)], axis=1) * length[:, None]
    return draw_segments(x, start, end, g.width, g.peak)


def _seven_bar_and_serif(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    return _seven_serif(_seven_bar(x, g, u), g, u)


def _nine_tail(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A g-like tail: from the bottom of a 9's stem a hook to the left and up.

    Two strokes: down-left to a low point halfway, then up-left; the hook reaches
    30-80% of the digit's width to the left and ends 5-35% of its height higher.
    """
    col = ink_column(x, g.bottom - 0.5 * g.width)
    start = np.stack([g.bottom - 0.3 * g.width, col], axis=1)
    reach = (g.right - g.left + 1.0) * (0.3 + 0.5 * u[:, 0])
    rise = g.height * (0.05 + 0.3 * u[:, 1])
    drop = g.height * 0.08 * u[:, 2]
    low = start + np.stack([drop, -0.5 * reach], axis=1)
    end = start + np.stack([-rise, -reach], axis=1)
    hooked = draw_segments(x, start, low, g.width, g.peak)
    return draw_segments(hooked, low, end, g.width, g.peak)


def break_strokes(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cut gaps across the strokes, as a skipping pen or a scan losing faint ink.

    Each gap is a disc centred on an ink pixel chosen at random, 1-3 px wider than
    the stroke, inside which the ink keeps 0-40% of its value.

    Parameters
    ----------
    x : (N, H, W) images (not modified).
    u : (N, G, 3) uniform [0, 1) numbers for up to G gaps per image: column 0 picks
        the ink pixel, 1 the disc's size, 2 how much ink survives. A gap whose
        column 0 is NaN is not cut.

    Returns
    -------
    (N, H, W) the images with their gaps.
    """
    n, h, w = x.shape
    ink = (x > INK).reshape(n, -1)
    counts = ink.sum(axis=1)  # (N,)
    wanted = ~np.isnan(u[:, :, 0]) & (counts[:, None] > 0)  # (N, G)
    # The k-th ink pixel in reading order, k uniform: the first index at which the
    # running count of ink pixels reaches k + 1.
    k = np.floor(np.nan_to_num(u[:, :, 0]) * counts[:, None]) + 1  # (N, G)
    running = np.cumsum(ink, axis=1)  # (N, H * W)
    flat = (running[:, None, :] < k[:, :, None]).sum(axis=2)  # (N, G)
    row, col = np.divmod(np.minimum(flat, h * w - 1), w)
    radius = 0.5 * digit_geometry(x).width[:, None] + 0.5 + u[:, :, 1]  # (N, G)
    kept = np.where(wanted, 0.4 * u[:, :, 2], 1.0)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    dist2 = (rows - row[:, :, None, None]) ** 2 + (cols - col[:, :, None, None]) ** 2
    inside = dist2 <= (radius**2)[:, :, None, None]  # (N, G, H, W)
    factor = np.where(inside, kept[:, :, None, None], 1.0).prod(axis=1)
    out: np.ndarray = x * factor.astype(x.dtype)
    return out


def shift_rows(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Move each row of each image sideways by its own (fractional) amount.

    Parameters
    ----------
    x : (N, H, W) images. shift : (N, H) pixels to move each row, positive to the
        right; sampled linearly, ink from outside the frame is 0.

    Returns
    -------
    (N, H, W) ``out[n, r, c] = x[n, r, c - shift[n, r]]``.
    """
    n, h, w = x.shape
    src = np.arange(w) - shift[:, :, None]  # (N, H, W) source column
    lo = np.floor(src).astype(np.intp)
    frac = (src - lo).astype(x.dtype)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))  # column -1 and w read as 0
    left = np.take_along_axis(padded, np.clip(lo + 1, 0, w + 1), axis=2)
    right = np.take_along_axis(padded, np.clip(lo + 2, 0, w + 1), axis=2)
    out: np.ndarray = (1 - frac) * left + frac * right
    return out


def _nine_curved_stem(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A stem that bends left as it descends (many European 9s).

    Rows below the loop (from 45-60% of the height down) move left, more the lower
    they are, as ``reach * t ** power`` with t from 0 at that row to 1 at the
    bottom: the stem's end moves 30-90% of the digit's width, along a curve.
    """
    h = x.shape[1]
    start = g.top + g.height * (0.45 + 0.15 * u[:, 0])
    reach = (g.right - g.left + 1.0) * (0.3 + 0.6 * u[:, 1])
    power = 1.5 + 1.5 * u[:, 2]
    t = (np.arange(h) - start[:, None]) / np.maximum(g.bottom - start, 1.0)[:, None]
    return shift_rows(x, -reach[:, None] * np.clip(t, 0.0, 1.0) ** power[:, None])


def _nine_rho(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A 9 written like a rho: the stem leaves the loop on its left. The digit is
    mirrored left-right in place (its bounding box stays where it was)."""
    n, h, _ = x.shape
    mirrored_left = x.shape[2] - 1 - g.right
    return shift_rows(x[:, :, ::-1], np.repeat((g.left - mirrored_left)[:, None], h, 1))


def _four_high_arm(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    """A 4 whose left arm starts higher than its stem: the stem's top 15-60% (the
    ink right of the digit's middle column, above that row) is erased."""
    n, h, w = x.shape
    cut = g.top + g.height * (0.15 + 0.45 * u[:, 0])
    middle = (g.left + g.right) / 2.0 + 0.5 * g.width
    above = np.arange(h)[None, :, None] < cut[:, None, None]
    right = np.arange(w)[None, None, :] > middle[:, None, None]
    out: np.ndarray = np.where(above & right, 0, x)
    return out


def _flag_and_foot(x: np.ndarray, g: DigitGeometry, u: np.ndarray) -> np.ndarray:
    return _one_foot(_one_flag(x, g, u), g, u)


Stroke = Callable[[np.ndarray, DigitGeometry, np.ndarray], np.ndarray]

# label -> the strokes one of which (picked uniformly) is drawn on that digit
_CONVENTIONS: dict[int, tuple[Stroke, ...]] = {
    1: (_one_flag, _one_foot, _flag_and_foot),
    4: (_four_closed_top, _four_high_arm),
    7: (_seven_bar, _seven_serif, _seven_bar_and_serif),
    9: (_nine_tail, _nine_curved_stem, _nine_rho),
}


class StrokeConventions:
    """Draw, per label and with probability ``prob``, one of the conventions.

    1: a flag, a foot, or both; 4: a closed top, or a left arm higher than the
    stem; 7: a bar through the stem, a serif down from the left end of its top, or
    both; 9: a g-like tail, a stem curving left, or a rho-like stem left of the
    loop. Other labels are never changed.

    Parameters
    ----------
    prob : probability that a digit whose label has conventions gets one.
    """

    labels = tuple(sorted(_CONVENTIONS))

    def __init__(self, prob: float = 0.3) -> None:
        if isinstance(prob, bool) or not isinstance(prob, (int, float)):
            raise TypeError(f"StrokeConventions: prob must be a number, got {prob!r}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"StrokeConventions: prob must be in [0, 1], got {prob!r}")
        self.prob = float(prob)

    def __call__(self, x: np.ndarray, labels: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Return ``x`` with strokes drawn on the chosen digits.

        Parameters
        ----------
        x : (N, H, W) images (not modified; returned as is if nothing is drawn).
        labels : (N,) integer labels.
        u : (N, 6) uniform [0, 1) numbers: column 0 chooses whether to draw,
            column 1 which convention, 2-5 the stroke's size and angle.
        """
        has_convention = np.isin(labels, self.labels) & (u[:, 0] < self.prob)
        chosen = np.flatnonzero(has_convention)
        if not chosen.size:
            return x
        out = x.copy()
        digits, g = out[chosen], digit_geometry(out[chosen])
        for label, strokes in _CONVENTIONS.items():
            mine = np.flatnonzero(labels[chosen] == label)
            which = (u[chosen[mine], 1] * len(strokes)).astype(np.intp)
            for k, stroke in enumerate(strokes):
                sel = mine[which == k]
                if sel.size:
                    digits[sel] = stroke(digits[sel], g.take(sel), u[chosen[sel], 2:])
        out[chosen] = digits
        return out
