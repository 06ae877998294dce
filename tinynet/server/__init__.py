"""``tinynet serve``: a local web page and JSON API for trying the digit reader.

Standard library only (:mod:`http.server` for parsing and answering, one thread
watching connections until their request head arrives, a bounded pool of workers
serving one request per connection). Endpoints:

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
malformed request (bad framing included); 403 a request from another web page or
host name; 408 a request that did not arrive in time; 411 no length; 413 body over
the cap; 422 an image with no digit in it; 500 a model that gives non-finite
probabilities, or an internal error (the server keeps running); 501 a transfer
coding other than chunked. Errors carry the same object with ``"error"`` set to a
one-line message (other routes: ``{"error": ...}``); every answer is strict JSON.

Safety (each in its module):

- It binds to 127.0.0.1 unless told otherwise. :mod:`~tinynet.server.guard`: on a
  loopback address, answers only requests whose ``Host`` is a loopback name (DNS
  rebinding); refuses
  requests whose ``Origin`` is not the server's own or whose ``Sec-Fetch-Site`` is
  another site, so a web page elsewhere cannot make it work.
- :mod:`~tinynet.server.body`: the upload cap counts every byte of the body, chunk
  framing included; ambiguous framing is refused, not guessed at.
- :mod:`~tinynet.server.waiting`, :mod:`~tinynet.server.deadline`: a request's head
  and body must each arrive before a deadline; slow heads take no thread; at most
  ``max_connections`` workers, and a slow body makes room when they are all taken
  (:class:`DigitServer`).
- :mod:`~tinynet.server.reader`: uploads stay in memory; at most ``workers`` images
  are decoded at once, and model calls are serialised (the Numba kernels' thread
  pool must not be entered concurrently).
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
