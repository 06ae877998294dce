"""Shared by the server tests: a tiny model, test images, and HTTP over loopback."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator

import cv2
import numpy as np

from tinynet.layers.conv import Conv2D
from tinynet.layers.dense import Dense
from tinynet.layers.pooling import MaxPool2D
from tinynet.layers.reshape import Flatten
from tinynet.model import Sequential
from tinynet.server import DigitServer
from tinynet.vision import read_digits


def tiny_cnn() -> Sequential:
    return Sequential(
        [
            Conv2D(4, 3, activation="relu"),
            MaxPool2D(2),
            Flatten(),
            Dense(10, activation="softmax"),
        ],
        input_shape=(28, 28, 1),
        seed=0,
        name="tiny_cnn",
    )


def digit_image(text: str, ext: str = ".png", size: int = 160) -> bytes:
    """Dark handwriting-like digits on light paper, encoded as an image file."""
    img = np.full((size, size * len(text)), 235, np.uint8)
    for i, ch in enumerate(text):
        cv2.putText(
            img, ch, (size * i + size // 5, size * 4 // 5),
            cv2.FONT_HERSHEY_SIMPLEX, size / 40, 20, thickness=size // 14,
            lineType=cv2.LINE_AA,
        )  # fmt: skip
    ok, data = cv2.imencode(ext, img)
    assert ok
    return data.tobytes()


def blank_png(h: int = 100, w: int = 100) -> bytes:
    return cv2.imencode(".png", np.full((h, w), 255, np.uint8))[1].tobytes()


IMAGES = {
    "seven.png": digit_image("7"),
    "three.jpg": digit_image("3", ".jpg"),
    "forty-two.png": digit_image("42"),
    "zero.bmp": digit_image("0", ".bmp", size=60),
}


@contextlib.contextmanager
def serving(model, **kwargs) -> Iterator[DigitServer]:
    """A :class:`DigitServer` on a free loopback port, serving until the block ends."""
    server = DigitServer(("127.0.0.1", 0), model, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def request(server, method, path, body=None, headers=None, timeout=60):
    """(status, headers, parsed JSON or raw bytes) over a fresh connection."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if resp.getheader("Content-Type", "").startswith("application/json"):
            data = json.loads(data)
        return resp.status, resp, data
    finally:
        conn.close()


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def expected(model, data: bytes, file: str, **kw) -> dict:
    """What ``mnist_predict.py --json`` prints for these bytes, via JSON."""
    return json.loads(json.dumps(read_digits(data, model, **kw).to_dict(file)))


IMAGES = {
    "seven.png": digit_image("7"),
    "three.jpg": digit_image("3", ".jpg"),
    "forty-two.png": digit_image("42"),
    "zero.bmp": digit_image("0", ".bmp", size=60),
}


def raw_exchange(
    server: DigitServer, *parts: bytes, timeout: float = 10
) -> tuple[int | None, dict[str, str], bytes]:
    """Send ``parts`` over one connection, close its sending side (the client is
    done), then read until the server closes the connection.

    Returns the first answer's status (None for a body-only HTTP/0.9 answer), its
    headers (lower-case names) and its body.
    """
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=timeout) as s:
        for part in parts:
            s.sendall(part)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
    return split_reply(reply)


def split_reply(reply: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """(status, headers, body) of the first HTTP answer in ``reply``."""
    if not reply.startswith(b"HTTP/"):
        return None, {}, reply
    head, _, rest = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return int(status_line.split()[1]), headers, rest[:length]
