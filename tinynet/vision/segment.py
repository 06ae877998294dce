"""Find the digits in an ink mask: drop specks and paper lines, group broken strokes,
order the digits as read (lines top to bottom, left to right in a line)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .ink import BLANK, find_ink
from .loading import ImageError
from .normalize import fit_mnist

SPLIT_ASPECT = 1.5
"""Multi-digit mode: ink wider than this times its height is cut (touching digits)."""
SPECK_FRACTION = 0.04
"""Less ink than this fraction of the largest component (and far smaller): a speck."""
MAX_DIGITS = 64
"""At most this many digits are read from one image; an image with more (a page of
text or of dots) is refused with a message rather than read for minutes."""
MAX_MARKS = 4 * MAX_DIGITS
"""Separate ink marks allowed before grouping (a digit is rarely more than four
pieces); grouping compares every pair, so this bounds its time (< 0.5 s)."""


@dataclass
class DigitCrop:
    """One digit found in an image.

    Attributes
    ----------
    box : (x, y, w, h)
        Bounding box in the pixels of the image given to :func:`segment_digits`.
    input : (28, 28) float32
        The MNIST-style network input (ink 1.0 on 0.0, 20x20 box, centred by mass).
    mask : (h, w) uint8
        The digit's binary ink mask (working resolution), cropped to the digit.
    """

    box: tuple[int, int, int, int]
    input: np.ndarray
    mask: np.ndarray


def preprocess(image: np.ndarray) -> np.ndarray:
    """A photo or scan of ONE digit -> MNIST-style input.

    Parameters
    ----------
    image : (H, W) uint8
        Grey image as from :func:`load_image` (either polarity).

    Returns
    -------
    (28, 28) float32 in [0, 1], ink bright, exactly like ``mnist_uint8 / 255``.

    Raises
    ------
    ImageError
        When no ink is found.
    """
    return segment_digits(image, multi=False)[0].input


def segment_digits(image: np.ndarray, *, multi: bool = True) -> list[DigitCrop]:
    """Find the digits of an image, in reading order.

    Parameters
    ----------
    image : (H, W) uint8
        Grey image (either polarity), e.g. from :func:`load_image`.
    multi : bool
        If False, the image holds one digit: everything that belongs to the main
        ink is one crop (one element in the list).

    Returns
    -------
    list of DigitCrop, at least one and at most :data:`MAX_DIGITS`.

    Raises
    ------
    ImageError
        When no ink is found, or more than :data:`MAX_MARKS` marks or
        :data:`MAX_DIGITS` digits are.
    """
    image = _check_grey(image)
    ink = find_ink(image)
    labels, stats, scale = ink.labels, ink.stats, ink.scale
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    contact = np.bincount(border, minlength=len(stats))
    comps = _keep_components(stats, ink.ids, contact, labels.shape, tiny=scale > 1)
    if not comps:
        raise ImageError(BLANK)
    if len(comps) > MAX_MARKS:
        raise ImageError(
            f"{len(comps)} separate ink marks, too many for the {MAX_DIGITS} digits "
            "read per image at most (a page of text or dots?); crop it to the digits"
        )
    groups = _drop_line_groups(_group(comps, stats), stats, labels.shape)
    if not multi:
        groups = [_main_digit(groups, stats)]

    # (x0, y0, mask) per digit, at working resolution
    pieces: list[tuple[int, int, np.ndarray]] = []
    for group in groups:
        x0, y0, x1, y1 = _bounds(group, stats)
        mask = np.isin(labels[y0:y1, x0:x1], group).astype(np.uint8)
        pieces += _split_wide(x0, y0, mask) if multi else [(x0, y0, mask)]
    if multi:
        pieces = _reading_order(_drop_small_pieces(pieces))
    if len(pieces) > MAX_DIGITS:
        raise ImageError(
            f"{len(pieces)} digits found, over the limit of {MAX_DIGITS} read per "
            "image; crop it to the digits"
        )

    H, W = labels.shape
    crops = []
    for x0, y0, mask in pieces:
        h, w = mask.shape
        box = (
            int(np.floor(x0 / scale)),
            int(np.floor(y0 / scale)),
            max(1, int(np.ceil(w / scale))),
            max(1, int(np.ceil(h / scale))),
        )
        fills = scale > 1 and w >= 0.9 * W and h >= 0.9 * H
        strength = None
        if ink.strength is not None:
            strength = ink.strength[y0 : y0 + h, x0 : x0 + w] * mask
        digit = fit_mnist(mask, fills_frame=fills, strength=strength)
        crops.append(DigitCrop(box=box, input=digit, mask=mask))
    return crops


def _check_grey(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"segment_digits: image must be a numpy array, got {type(image).__name__}"
        )
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image[:, :, :3].astype(np.uint8), cv2.COLOR_BGR2GRAY)
    if image.ndim != 2:
        raise ValueError(
            f"segment_digits: expected an (H, W) grey image, got {image.shape}"
        )
    if image.size == 0:
        raise ImageError(f"image has zero size {image.shape}")
    if image.dtype != np.uint8:
        lo, hi = float(image.min()), float(image.max())
        image = ((image - lo) * (255.0 / max(hi - lo, 1e-12))).astype(np.uint8)
    return image


# stats rows (indexed by component id): x, y, w, h, area, as OpenCV's CC_STAT_*.
def _keep_components(
    stats: np.ndarray,
    ids: np.ndarray,
    contact: np.ndarray,
    shape: tuple[int, int],
    *,
    tiny: bool = False,
) -> list[int]:
    """Ids of ink components that may belong to digits.

    Left out: specks; paper lines across the image; thin marks along the border (the
    edge of the sheet); and, in photos, ink lying along the border for a good length
    (a dark table or a shadow around the page) -- each only when other ink remains,
    since in a crop or a scan the digit itself can touch or fill the frame.
    """
    H, W = shape
    x, y, w, h, area = (stats[ids, i] for i in range(5))
    lines = np.array(
        [
            _line_like((a, b, a + c, b + d), shape)
            for a, b, c, d in zip(x, y, w, h, strict=True)
        ],
        bool,
    )
    frames = ~lines & ~np.full(len(ids), tiny) & (contact[ids] >= 0.2 * min(H, W))
    rest = ~lines & ~frames
    if not (rest & (np.maximum(w, h) >= 0.04 * min(H, W))).any():
        frames[:] = False  # the ink along the border is the digit
    if (lines | frames).all():  # the only ink is line-like (a "1" filling a scan)
        lines[:], frames[:] = False, False
    keep = ~lines & ~frames
    big = area[keep].max()
    big_side = max(np.maximum(w, h)[keep][area[keep].argmax()], 1)
    speck = (area < SPECK_FRACTION * big) & (np.maximum(w, h) < 0.3 * big_side)
    # The edge of the sheet or a shadow line along the border of a crop: thin,
    # elongated and touching the border (but never the main ink: a "1" in a scan).
    on_border = (x == 0) | (y == 0) | (x + w == W) | (y + h == H)
    thin = np.maximum(w, h) >= 6 * np.minimum(w, h)
    edge = on_border & thin & (area < big)
    return [int(k) for k in ids[keep & ~speck & ~edge & (area >= 3)]]


def _bounds(group: list[int], stats: np.ndarray) -> tuple[int, int, int, int]:
    s = stats[group]
    return (
        int(s[:, 0].min()),
        int(s[:, 1].min()),
        int((s[:, 0] + s[:, 2]).max()),
        int((s[:, 1] + s[:, 3]).max()),
    )


def _group(comps: list[int], stats: np.ndarray) -> list[list[int]]:
    """Merge components stacked over each other (broken strokes, a 5's detached bar)."""
    parent = {k: k for k in comps}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    changed = True
    while changed:  # repeat: a merged group can reach further components
        changed = False
        roots = sorted({find(k) for k in comps})
        members = {r: [k for k in comps if find(k) == r] for r in roots}
        boxes = {r: _bounds(members[r], stats) for r in roots}
        for i, a in enumerate(roots):
            for b in roots[i + 1 :]:
                if find(a) != find(b) and _belong_together(boxes[a], boxes[b]):
                    parent[find(b)] = find(a)
                    changed = True
    groups: dict[int, list[int]] = {}
    for k in comps:
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())


def _belong_together(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    overlap_x = min(ax1, bx1) - max(ax0, bx0)
    narrower = min(ax1 - ax0, bx1 - bx0)
    if overlap_x < 0.5 * narrower:
        return False
    gap_y = max(ay0, by0) - min(ay1, by1)  # negative when they overlap vertically
    return gap_y <= 0.25 * max(ay1 - ay0, by1 - by0)


def _group_area(group: list[int], stats: np.ndarray) -> int:
    return int(stats[group, 4].sum())


def _line_like(box: tuple[int, int, int, int], shape: tuple[int, int]) -> bool:
    """Thin and running across (almost) the whole image: a paper line, not a digit."""
    x0, y0, x1, y1 = box
    H, W = shape
    w, h = x1 - x0, y1 - y0
    return (w >= 0.9 * W and h <= 0.08 * H) or (h >= 0.9 * H and w <= 0.08 * W)


def _drop_line_groups(
    groups: list[list[int]], stats: np.ndarray, shape: tuple[int, int]
) -> list[list[int]]:
    """Drop groups that together form a paper line (a line cut into pieces where other
    lines crossed it was removed), unless nothing else is left."""
    kept = [g for g in groups if not _line_like(_bounds(g, stats), shape)]
    return kept or groups


def _main_digit(groups: list[list[int]], stats: np.ndarray) -> list[int]:
    """Single-digit mode: the largest group plus sizeable groups right next to it.

    A neighbour joins only if the digit's box grows to at most 1.6 times its size
    each way (a 5's detached bar does; a stray line running past the digit does not).
    """
    areas = [_group_area(g, stats) for g in groups]
    order = np.argsort(areas)[::-1]
    main = list(groups[order[0]])
    x0, y0, x1, y1 = _bounds(main, stats)
    reach = 0.3 * max(x1 - x0, y1 - y0)
    for i in order[1:]:
        gx0, gy0, gx1, gy1 = _bounds(groups[i], stats)
        near = (
            gx0 <= x1 + reach
            and gx1 >= x0 - reach
            and gy0 <= y1 + reach
            and gy1 >= y0 - reach
        )
        ux0, uy0 = min(x0, gx0), min(y0, gy0)
        ux1, uy1 = max(x1, gx1), max(y1, gy1)
        compact = ux1 - ux0 <= 1.6 * (x1 - x0) and uy1 - uy0 <= 1.6 * (y1 - y0)
        if near and compact and areas[i] >= 0.15 * areas[order[0]]:
            main += groups[i]
    return main


def _split_wide(
    x0: int, y0: int, mask: np.ndarray
) -> list[tuple[int, int, np.ndarray]]:
    """Cut a blob far wider than one digit (touching digits) where least ink crosses.

    Fewer than 1% of MNIST digits are 1.5 times wider than tall; two touching digits
    usually are. The cut is the column with the least ink in the middle half, made
    only if each side is itself digit-like (at least a third as wide as tall, and a
    sixth of the ink); each side is cut again if it is still too wide. That finds a
    ligature or a light touch; digits that overlap (two rings drawn into each other)
    can be cut wrongly.
    """
    h, w = mask.shape
    if w <= SPLIT_ASPECT * h:
        return [(x0, y0, mask)]
    cols = mask.sum(axis=0).astype(np.float64)
    lo, hi = w // 4, w - w // 4
    # Among equally thin columns prefer the one nearest the middle.
    cost = cols[lo:hi] + 1e-3 * np.abs(np.arange(lo, hi) - w / 2)
    cut = lo + int(np.argmin(cost))
    total = cols.sum()
    sides = []
    for off, side in ((0, mask[:, :cut]), (cut, mask[:, cut:])):
        x, y, sw, sh = cv2.boundingRect(side)
        if sw < h / 3 or side.sum() < total / 6:
            return [(x0, y0, mask)]
        sides.append((x0 + off + x, y0 + y, side[y : y + sh, x : x + sw]))
    return [part for side in sides for part in _split_wide(*side)]


def _drop_small_pieces(
    pieces: list[tuple[int, int, np.ndarray]],
) -> list[tuple[int, int, np.ndarray]]:
    """Drop marks far shorter and lighter than the digits (dots, specks, ticks)."""
    heights = np.array([m.shape[0] for _, _, m in pieces])
    inks = np.array([int(m.sum()) for _, _, m in pieces])
    keep = (heights >= 0.4 * heights.max()) | (inks >= 0.25 * inks.max())
    return [p for p, k in zip(pieces, keep, strict=True) if k]


def _reading_order(
    pieces: list[tuple[int, int, np.ndarray]],
) -> list[tuple[int, int, np.ndarray]]:
    """Lines top to bottom (a digit joins a line its vertical centre falls in)."""
    boxes = [(x, y, x + m.shape[1], y + m.shape[0]) for x, y, m in pieces]
    by_centre = sorted(
        range(len(pieces)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2
    )
    lines: list[list[int]] = []
    span = (0.0, -1.0)
    for i in by_centre:
        centre = (boxes[i][1] + boxes[i][3]) / 2
        if lines and span[0] <= centre <= span[1]:
            lines[-1].append(i)
            span = (min(span[0], boxes[i][1]), max(span[1], boxes[i][3]))
        else:
            lines.append([i])
            span = (boxes[i][1], boxes[i][3])
    return [
        pieces[i] for line in lines for i in sorted(line, key=lambda i: boxes[i][0])
    ]
