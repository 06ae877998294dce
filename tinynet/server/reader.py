"""Reading uploaded images safely from many threads at once."""

from __future__ import annotations

import base64
import threading
from typing import Any

import cv2
import numpy as np

from ..vision import ImageError, PredictionError, error_dict, read_digits
from ..vision.loading import MAX_PIXELS, load_image_scaled
from ..vision.normalize import WORK_MAX_SIDE


class DigitReader:
    """Thread-safe reading of uploaded images with one model.

    Decoding and preprocessing run in parallel, at most ``workers`` at a time; the
    model's ``predict`` runs under a lock. Passed to :func:`read_digits` as the model
    (it has ``input_shape`` and ``predict``).
    """

    def __init__(self, model: Any, *, max_pixels: int = MAX_PIXELS, workers: int = 2):
        if workers < 1:
            raise ValueError(f"DigitReader: workers must be >= 1, got {workers}")
        self.model = model
        self.max_pixels = int(max_pixels)
        self._predict_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(workers)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape)

    @property
    def metadata(self) -> dict[str, Any]:
        """The model's metadata (how it reads its inputs, e.g. deskewed)."""
        metadata: dict[str, Any] = getattr(self.model, "metadata", {})
        return metadata

    def predict(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        with self._predict_lock:
            probs: np.ndarray = self.model.predict(x, batch_size=batch_size)
        return probs

    def read(
        self, data: bytes, file: str, *, single: bool = False, details: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """Read the image in ``data``: ``(HTTP status, JSON object)``.

        400 not a readable image (or too many pixels), 422 no digit in it, 500 the
        model gave probabilities that are not finite (or not ``(k, 10)``).
        """
        with self._slots:
            try:
                image, scale = load_image_scaled(
                    data, max_pixels=self.max_pixels, max_side=WORK_MAX_SIDE
                )
            except ImageError as exc:
                return 400, error_dict(file, _message(exc, file))
            try:
                reading = read_digits(image, self, multi=not single)
            except ImageError as exc:  # decoded fine, but no digit in it
                return 422, error_dict(file, _message(exc, file))
            except PredictionError as exc:  # the model's fault, not the upload's
                return 500, error_dict(file, _message(exc, file))
        out = reading.to_dict(file)
        if details:
            out["inputs"] = [_png_data_url(x) for x in reading.inputs]
            out["boxes"] = [[round(v * scale) for v in box] for box in reading.boxes]
        return 200, out


def _message(exc: Exception, file: str) -> str:
    """First line of the error, naming the upload instead of ``<bytes>``/``<array>``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for placeholder in ("<bytes>", "<array>"):
        if text.startswith(placeholder):
            return file + text[len(placeholder) :]
    return text


def _png_data_url(x: np.ndarray) -> str:
    """(28, 28) float in [0, 1] -> ``data:image/png;base64,...``, ink white on black."""
    pixels = np.clip(np.asarray(x, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - encoding a small uint8 array does not fail
        raise RuntimeError("could not encode the network input as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
