"""Moment-based deskewing: shear each digit so that its ink stands upright.

Handwriting leans by the writer's habit; MNIST's digits were left as written, while
other sets (USPS) were deslanted by their makers. Deskewing every image a network
reads, in training and in use, removes slant as a nuisance for any source (LeCun et
al.'s MNIST page: the preprocessing that helped most classifiers).

With the ink's centre of mass ``(cx, cy)`` and its central second moments
``mu11 = E[(x - cx)(y - cy)]`` and ``mu02 = E[(y - cy)^2]`` (weighted by the ink),
the slant is ``s = mu11 / mu02`` (columns per row, rows growing downwards), and

    x' = x - s (y - cy),    y' = y

moves each row sideways so that the principal direction becomes vertical; the centre
of mass stays where it was. ``s`` is clipped to ``[-max_slant, max_slant]`` (a flat
dash has a tiny ``mu02``, which would make ``s`` arbitrary). The shear is one
bilinear resampling (:func:`tinynet.warp.affine_transform`).

Images are ink bright on black, float in [0, 1], ``(N, H, W)`` or ``(N, H, W, 1)``
(or flattened square images ``(N, S * S)``, as an MLP reads them).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .warp import affine_transform, image_batch

MAX_SLANT = 0.5
"""Largest shear corrected, in columns per row (0.5: about 27 degrees)."""
SLANT_MEASURES = ("moments", "strokes")
"""How the slant is measured: the ink's second moments (the classic deskew), or the
direction of the near-vertical strokes alone (:func:`slant`)."""

__all__ = [
    "MAX_SLANT",
    "SLANT_MEASURES",
    "DeskewNotExported",
    "Deskewed",
    "as_read_by",
    "deskew",
    "deskew_pixels",
    "deskewing_of",
    "reads_deskewed",
    "slant",
]


def slant(x: np.ndarray, by: str = "moments") -> np.ndarray:
    """The unclipped slant of each image, in columns per row (0 for a blank one).

    ``by="moments"``: ``mu11 / mu02``, the lean of the ink's principal axis.
    ``by="strokes"``: the mean direction of the near-vertical strokes alone, from
    the image gradient (Sobel) where it is closer to horizontal than to vertical
    (a stroke within 45 degrees of upright): ``-sum(gx gy) / sum(gx^2)``. A long
    entry stroke or flag (a 1 written as a lambda) tilts the moments' axis but not
    the upright stem.

    x : (N, H, W), (N, H, W, 1) or (N, S * S) float. Returns (N,) float64;
    positive when the top of the digit leans left (columns grow as rows grow
    downwards).
    """
    x3, _ = image_batch(_as_images(x), "slant")
    return _slant(x3, by)


def _slant(x: np.ndarray, by: str) -> np.ndarray:
    if by == "moments":
        return _moments(x)[0]
    if by == "strokes":
        return _stroke_slant(x)
    raise ValueError(f"slant: by must be one of {SLANT_MEASURES}, got {by!r}")


def _stroke_slant(x: np.ndarray) -> np.ndarray:
    """Slant of the near-vertical strokes of each image of ``x`` (N, H, W)."""
    ink = x.astype(np.float64, copy=False)
    across = ink[:, :-2] + 2 * ink[:, 1:-1] + ink[:, 2:]  # Sobel: smooth the rows
    gx = across[:, :, 2:] - across[:, :, :-2]
    down = ink[:, :, :-2] + 2 * ink[:, :, 1:-1] + ink[:, :, 2:]
    gy = down[:, 2:] - down[:, :-2]
    upright = np.abs(gy) < np.abs(gx)  # the stroke is within 45 degrees of vertical
    num = (gx * gy * upright).sum(axis=(1, 2))
    den = (gx * gx * upright).sum(axis=(1, 2))
    skew = np.where(den > 0, -num / np.where(den > 0, den, 1.0), 0.0)
    skew[np.abs(skew) < 1e-9] = 0.0  # rounding on a symmetric digit
    return skew


def _as_images(x: np.ndarray) -> np.ndarray:
    """A batch of flattened square images ``(N, S * S)`` (an MLP's inputs) as
    ``(N, S, S)``; any other array as it is (checked by the caller)."""
    if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] > 0:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side == x.shape[1]:
            return x.reshape(len(x), side, side)
    return x


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slant, centre row) of each image of ``x`` (N, H, W); 0 and the middle row
    for blank images or ink on one row (no vertical extent to measure)."""
    n, h, w = x.shape
    ink = x.astype(np.float64, copy=False)
    rows = ink.sum(axis=2)  # (N, H): ink per row
    cols = ink.sum(axis=1)  # (N, W)
    mass = rows.sum(axis=1)
    r, c = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    has_ink = mass > 0
    safe = np.where(has_ink, mass, 1.0)
    cy = np.where(has_ink, rows @ r / safe, (h - 1) / 2.0)
    cx = cols @ c / safe
    dr, dc = r - cy[:, None], c - cx[:, None]  # (N, H), (N, W): about the centre
    mu02 = (rows * dr * dr).sum(axis=1) / safe
    mu11 = np.einsum("nhw,nh,nw->n", ink, dr, dc) / safe
    tall = has_ink & (mu02 > 1e-6 * h * h)
    skew = np.where(tall, mu11 / np.where(tall, mu02, 1.0), 0.0)
    # Rounding leaves ~1e-16 on a symmetric digit: no slant, and no resampling.
    skew[np.abs(skew) < 1e-9] = 0.0
    return skew, cy


def deskew(
    x: np.ndarray, max_slant: float = MAX_SLANT, *, by: str = "moments"
) -> np.ndarray:
    """Each image sheared upright about its centre of mass (see the module notes).

    Parameters
    ----------
    x : (N, H, W), (N, H, W, 1) or (N, S * S) float32/float64 in [0, 1], ink
        bright.
    max_slant : the largest shear applied, in columns per row (>= 0).
    by : how the slant is measured, ``"moments"`` or ``"strokes"`` (:func:`slant`).

    Returns
    -------
    A new array, same shape and dtype as ``x``, values in [0, 1]. An image with no
    measurable slant (upright, blank, or a single row of ink) comes back exactly.
    """
    x3, _ = image_batch(_as_images(x), "deskew")
    if isinstance(max_slant, bool) or not isinstance(max_slant, int | float):
        raise TypeError(f"deskew: max_slant must be a number, got {max_slant!r}")
    if not 0 <= max_slant < np.inf:
        raise ValueError(f"deskew: max_slant must be >= 0 and finite, got {max_slant}")
    skew, cy = _moments(x3)
    if by != "moments":
        skew = _slant(x3, by)
    s = np.clip(skew, -max_slant, max_slant)
    # Forward maps in (col, row): col' = col - s (row - cy), row' = row.
    maps = np.zeros((len(x3), 2, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = 1.0
    maps[:, 0, 1] = -s
    maps[:, 0, 2] = s * cy
    out = affine_transform(x3, maps)
    np.clip(out, 0.0, 1.0, out=out)  # bilinear rounding can overshoot by 1 ulp
    return out.reshape(x.shape)


def reads_deskewed(model: Any) -> float | None:
    """The largest slant ``model`` has its inputs deskewed with, or None.

    ``examples/mnist_train.py --deskew`` records it in the saved model's metadata
    (``"deskew"``); models without it (older files, other sources) read their inputs
    as they are. ValueError for a recorded value that is not a slant.
    """
    metadata = getattr(model, "metadata", None)
    if not isinstance(metadata, dict) or metadata.get("deskew") is None:
        return None
    value = metadata["deskew"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < np.inf
    ):
        raise ValueError(
            f"the model's metadata 'deskew' must be a slant >= 0, got {value!r}"
        )
    return float(value)


def deskewing_of(model: Any) -> tuple[float, str] | None:
    """``(max_slant, by)`` that ``model``'s inputs are deskewed with
    (:func:`reads_deskewed` and the metadata's ``"deskew_by"``, ``"moments"`` if
    absent), or None. ValueError for recorded values that are not valid."""
    max_slant = reads_deskewed(model)
    if max_slant is None:
        return None
    by = model.metadata.get("deskew_by", "moments")
    if by not in SLANT_MEASURES:
        raise ValueError(
            f"the model's metadata 'deskew_by' must be one of {SLANT_MEASURES}, "
            f"got {by!r}"
        )
    return max_slant, by


def as_read_by(model: Any, x: np.ndarray) -> np.ndarray:
    """MNIST-style inputs ``x`` (float in [0, 1], ink bright) as ``model`` reads
    them: deskewed when it was trained on deskewed digits (:func:`reads_deskewed`),
    else ``x`` itself. The digit readers pass every input through this."""
    settings = deskewing_of(model)
    if settings is None:
        return x
    max_slant, by = settings
    return deskew(x, max_slant, by=by)


class DeskewNotExported(UserWarning):
    """An exported network (ONNX, Keras) reads its inputs as given, while the
    model it came from has its readers deskew them."""


def warn_if_not_exported(model: Any, written: str) -> None:
    """Warn (:class:`DeskewNotExported`) that ``written``, an export of ``model``,
    does not deskew, if ``model``'s readers do; its user must deskew the inputs."""
    settings = deskewing_of(model)
    if settings is None:
        return
    max_slant, by = settings
    warnings.warn(
        f"{written} does not deskew its inputs, but the model was trained on "
        f"deskewed digits: deskew them first, as tinynet's readers do "
        f"(tinynet.deskew.deskew(x, {max_slant}, by={by!r}))",
        DeskewNotExported,
        stacklevel=3,
    )


def deskew_pixels(
    x: np.ndarray, max_slant: float = MAX_SLANT, *, by: str = "moments"
) -> np.ndarray:
    """:func:`deskew` for uint8 pixels (0-255): ``(N, H, W[, 1])`` uint8 in and out.

    For data sets kept as bytes (MNIST's training images are read a batch at a
    time, never copied whole as floats); rounding back to bytes moves a pixel by at
    most 1/510 of the range.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise TypeError(
            "deskew_pixels: expected a uint8 numpy array, got "
            f"{getattr(x, 'dtype', type(x).__name__)}"
        )
    out = deskew(x.astype(np.float32) / np.float32(255), max_slant, by=by)
    pixels: np.ndarray = np.rint(out * 255).astype(np.uint8)
    return pixels


class Deskewed:
    """A training-batch transform: ``augment`` (if any), then :func:`deskew`.

    Deskewing after the augmentation gives the network what a deskewing reader
    gives it: upright digits, whatever slant the augmentation (or the writer) drew.
    Called as ``fit``'s ``augment``: ``t(x, rng)`` or ``t(x, rng, labels)``.
    """

    def __init__(
        self, augment: Any = None, max_slant: float = MAX_SLANT, by: str = "moments"
    ) -> None:
        self.augment = augment
        self.max_slant = float(max_slant)
        self.by = by

    @property
    def uses_labels(self) -> bool:
        """True when the wrapped augmentation draws changes by label."""
        return bool(getattr(self.augment, "uses_labels", False))

    def __call__(
        self, x: np.ndarray, rng: np.random.Generator, labels: Any = None
    ) -> np.ndarray:
        if self.augment is not None:
            x = (
                self.augment(x, rng, labels)
                if self.uses_labels
                else self.augment(x, rng)
            )
        return deskew(x, self.max_slant, by=self.by)
