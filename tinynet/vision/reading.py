"""Read the digits of an image with a model: the function the CLI and web app call."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..deskew import as_read_by
from .loading import MAX_PIXELS, ImageError, load_image_scaled
from .normalize import WORK_MAX_SIDE
from .segment import segment_digits

#: A digit read with a lower confidence (the calibrated probability of the digit read)
#: is reported as "not sure", with the runner-up. The highest threshold (0.05 steps)
#: that flags at most 2% of MNIST's validation digits and 5% of USPS scans with the
#: shipped, calibrated model: it flags 1.5% and 4.1%, which hold 17 of 24 and 30 of 44
#: errors, and the flagged readings are right 78% and 64% of the time (2026-12-03;
#: docs/calibration.md, from ``python benchmarks/eval_realdigits.py --json``).
SURE_CONFIDENCE = 0.90


@dataclass
class Reading:
    """What :func:`read_digits` found in one image.

    Attributes
    ----------
    digits : str
        The digits in reading order, e.g. ``"42"``.
    confidence : list of float
        Per digit, the probability of the digit read (the largest probability).
    probabilities : (k, 10) float32
        Per digit, the model's probabilities for 0-9.
    inputs : (k, 28, 28) float32
        The MNIST-style inputs the network saw (ink 1.0 on 0.0).
    boxes : list of (x, y, w, h)
        Each digit's bounding box in the pixels of the original image (after its
        EXIF orientation is applied).
    image : (H, W) uint8
        The loaded grey image (shrunk to at most 1024 px per side for big photos;
        ``scale`` = original pixels per pixel of ``image``).
    scale : float
        Multiply a position in ``image`` by this to get one in the original.

    A digit is *sure* when its confidence is at least :data:`SURE_CONFIDENCE`;
    otherwise readers say "not sure" and show the runner-up (the second likeliest).
    """

    digits: str
    confidence: list[float]
    probabilities: np.ndarray
    inputs: np.ndarray
    boxes: list[tuple[int, int, int, int]]
    image: np.ndarray
    scale: float = 1.0

    def top3(self) -> list[list[tuple[int, float]]]:
        """Per digit, the three likeliest classes as ``(digit, probability)``."""
        order = np.argsort(-self.probabilities, axis=1)[:, :3]
        return [
            [(int(c), float(p[c])) for c in row]
            for row, p in zip(order, self.probabilities, strict=True)
        ]

    @property
    def sure(self) -> list[bool]:
        """Per digit, whether its confidence reaches :data:`SURE_CONFIDENCE`."""
        return [c >= SURE_CONFIDENCE for c in self.confidence]

    def runner_up(self) -> list[tuple[int, float]]:
        """Per digit, the second likeliest class as ``(digit, probability)``."""
        return [row[1] for row in self.top3()]

    def to_dict(self, file: str | None = None) -> dict[str, Any]:
        """The JSON-ready record of this reading (the CLI's ``--json`` line).

        ``{"file", "digits", "confidence", "probabilities", "top3", "sure",
        "runner_up", "sure_threshold", "error": None}``: ``sure`` is one bool per
        digit, ``runner_up`` one ``[digit, probability]`` per digit; floats rounded
        to 6 decimals.
        """
        return {
            "file": file,
            "digits": self.digits,
            "confidence": [round(float(c), 6) for c in self.confidence],
            "probabilities": np.round(self.probabilities.astype(float), 6).tolist(),
            "top3": [[[d, round(p, 6)] for d, p in row] for row in self.top3()],
            "sure": self.sure,
            "runner_up": [[d, round(p, 6)] for d, p in self.runner_up()],
            "sure_threshold": SURE_CONFIDENCE,
            "error": None,
        }


class PredictionError(ValueError):
    """The model's answer for an image cannot be used (wrong shape, or not finite).

    A fault of the model, not of the image: one line naming the image.
    """


def _check_probabilities(probs: np.ndarray, k: int, name: str) -> None:
    """``probs`` must be ``(k, 10)`` and finite: NaN would read as the digit 0 with
    "confidence nan", and NaN or infinity is not valid JSON."""
    if probs.shape != (k, 10):
        raise PredictionError(
            f"{name}: the model must return (k, 10) probabilities for k = {k} "
            f"digit(s), got shape {probs.shape}"
        )
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        digits = ", ".join(str(i + 1) for i in np.flatnonzero(bad)[:5])
        raise PredictionError(
            f"{name}: the model gave non-finite probabilities (NaN or infinity) "
            f"for digit {digits}: a fault of the model (check its weights)"
        )


def error_dict(file: str | None, message: str) -> dict[str, Any]:
    """The JSON-ready record of an image that could not be read."""
    return {
        "file": file,
        "digits": None,
        "confidence": None,
        "probabilities": None,
        "top3": None,
        "sure": None,
        "runner_up": None,
        "sure_threshold": SURE_CONFIDENCE,
        "error": str(message),
    }


@functools.lru_cache(maxsize=1)
def default_model() -> Any:
    """The reader shipped with tinynet (:func:`tinynet.pretrained.load_reader`),
    loaded once, then cached."""
    from ..pretrained import load_reader

    return load_reader("mnist")


def read_digits(
    source: str | os.PathLike[str] | bytes | np.ndarray,
    model: Any = None,
    *,
    multi: bool = True,
    max_pixels: int = MAX_PIXELS,
) -> Reading:
    """Load an image, find its digit(s) and classify them.

    Parameters
    ----------
    source : path, bytes of an image file, or (H, W) uint8 grey image
    model : tinynet.Sequential or None
        Anything with ``predict(x, batch_size=...) -> (k, 10)`` and ``input_shape``;
        None means the shipped reader (:func:`default_model`).
    multi : bool
        True: read every digit (a written number, rows of digits). False: the image
        shows one digit; all its ink is read as that digit.
    max_pixels : int
        Images with more pixels are refused (see :func:`load_image`).

    Returns
    -------
    Reading

    Raises
    ------
    ImageError
        For a file that is missing, not an image, too large, or shows no digit; the
        message is one line naming the file.
    PredictionError
        When the model's probabilities are not ``(k, 10)`` or not finite.
    """
    if isinstance(source, np.ndarray):
        image, scale, name = source, 1.0, "<array>"
    else:
        image, scale = load_image_scaled(
            source, max_pixels=max_pixels, max_side=WORK_MAX_SIDE
        )
        name = "<bytes>" if isinstance(source, bytes | bytearray) else str(source)
    try:
        crops = segment_digits(image, multi=multi)
    except ImageError as exc:
        raise ImageError(f"{name}: {exc}") from None
    if model is None:
        model = default_model()
    # Deskewed for a model trained on deskewed digits: what the network sees.
    inputs = as_read_by(model, np.stack([c.input for c in crops]).astype(np.float32))
    x = inputs.reshape(len(inputs), *model.input_shape)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # An overflow shows as non-finite probabilities, refused with one clear
        # line just below, instead of NumPy warnings first.
        probs = model.predict(x, batch_size=max(1, len(x)))
    probs = np.asarray(probs, dtype=np.float32)
    _check_probabilities(probs, len(inputs), name)
    pred = probs.argmax(axis=1)

    def original(v: int) -> int:  # back to the pixels of the image given
        return int(round(v * scale))

    boxes = [
        (original(x), original(y), original(w), original(h))
        for x, y, w, h in (c.box for c in crops)
    ]
    return Reading(
        digits="".join(str(int(d)) for d in pred),
        confidence=[float(p[d]) for p, d in zip(probs, pred, strict=True)],
        probabilities=probs,
        inputs=inputs,
        boxes=boxes,
        image=image,
        scale=scale,
    )
