"""Real images of handwritten digits -> MNIST-style network inputs (OpenCV).

``read_digits(path)`` does everything: load (any common format, EXIF orientation,
alpha, 16-bit), find the digits, turn each into a 28x28 input made the way MNIST was
made, and classify them with the shipped model. The steps are public too:
``load_image`` -> ``segment_digits`` / ``preprocess`` -> ``model.predict``.
"""

from .loading import MAX_PIXELS, ImageError, load_image
from .reading import PredictionError, Reading, default_model, error_dict, read_digits
from .segment import DigitCrop, preprocess, segment_digits

__all__ = [
    "MAX_PIXELS",
    "DigitCrop",
    "ImageError",
    "PredictionError",
    "Reading",
    "default_model",
    "error_dict",
    "load_image",
    "preprocess",
    "read_digits",
    "segment_digits",
]
