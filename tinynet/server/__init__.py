"""``tinynet serve``: a local web page and JSON API for trying the digit reader.

Standard library only (:mod:`http.server`, one thread per connection). Endpoints:

``GET /``
    The page (``tinynet/web/``): a drawing canvas and an upload / drop box.
``GET /api/info``
    ``{"model", "input_shape", "max_upload_bytes", "max_pixels", "version"}``.
``POST /api/predict``
    Body: the image file itself, or ``multipart/form-data`` with the file in the
    field ``image``. Answer: the object one ``examples/mnist_predict.py --json`` line
    holds (``file, digits, confidence, probabilities, top3, error``), made by the same
    :func:`tinynet.vision.read_digits`. Query options: ``file=NAME`` (the ``"file"``
    value for a raw body), ``single=1`` (all the ink is one digit), ``inputs=1`` (add
    ``"inputs"``, the 28x28 images the network saw as PNG data URLs, and ``"boxes"``,
    each digit's ``[x, y, w, h]`` in the uploaded image's pixels).

Status codes: 200 read; 400 not an image, an image with too many pixels, or a
malformed request; 411 no length; 413 body over the cap; 422 an image with no digit
in it; 500 an internal error (the server keeps running). Errors carry the same
object with ``"error"`` set to a one-line message.

Safety: binds to 127.0.0.1 unless told otherwise, and then answers only requests
whose ``Host`` is a loopback name (so a web page cannot reach it through DNS
rebinding); uploads are kept in memory only and capped; at most ``workers`` images
are decoded at once (bounding memory under many concurrent uploads) and model calls
are serialised (the Numba kernels' thread pool must not be entered concurrently).
"""

from .app import MAX_UPLOAD_BYTES, DigitServer, run
from .handler import parse_multipart
from .problem import HTTPProblem
from .reader import DigitReader

__all__ = [
    "MAX_UPLOAD_BYTES",
    "DigitReader",
    "DigitServer",
    "HTTPProblem",
    "parse_multipart",
    "run",
]
