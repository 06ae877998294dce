"""The digit-reader server against hostile and broken clients, over real loopback HTTP.

Each refusal must be a one-line JSON error with the right 4xx status, read no more
than the upload cap, leave no traceback in the server's log, and leave the server
answering good requests. The server here has a small cap and short deadlines so that
slow clients are cut off within a second or two.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import (
    IMAGES,
    expected,
    raw_exchange,
    recv_all,
    request,
    serving,
    split_reply,
)
from serve_helpers import tiny_cnn as make_model

CAP = 64 * 1024
HEAD_SECONDS = 1.0
BODY_SECONDS = 1.5
CONNECTIONS = 4
SEVEN = IMAGES["seven.png"]
assert len(SEVEN) < CAP // 4


class CountingModel:
    """The tiny CNN, counting the images it is asked to read."""

    def __init__(self) -> None:
        self.inner = make_model()
        self.input_shape = self.inner.input_shape
        self.name = "counting"
        self.images = 0

    def predict(self, x, batch_size=256):
        self.images += len(x)
        return self.inner.predict(x, batch_size=batch_size)


@pytest.fixture(scope="module")
def model():
    return CountingModel()


@pytest.fixture(scope="module")
def server(model):
    with serving(
        model,
        max_upload_bytes=CAP,
        max_connections=CONNECTIONS,
        head_timeout=HEAD_SECONDS,
        body_timeout=BODY_SECONDS,
        quiet=False,  # the log is checked for tracebacks
    ) as srv:
        yield srv


@pytest.fixture(autouse=True)
def log_without_traceback(capfd):
    """Whatever a test's clients do, the server's log has no traceback."""
    yield
    assert "Traceback" not in capfd.readouterr().err


def post_head(*headers: str, path: str = "/api/predict?file=x.png") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def assert_refused(reply, status: int, fragment: str) -> None:
    """One JSON object with a one-line error containing ``fragment``, then close."""
    got, headers, body = reply
    assert got == status, body
    error = json.loads(body)["error"]
    assert fragment in error and "\n" not in error
    assert headers["connection"] == "close"


def assert_still_serving(server, model, timeout: float = 30) -> None:
    status, _, out = request(
        server, "POST", "/api/predict", body=SEVEN, timeout=timeout
    )
    assert (status, out) == (200, expected(model.inner, SEVEN, "upload"))


# ------------------------------------------------------------ Content-Length
@pytest.mark.parametrize(
    ("length", "status", "fragment"),
    [
        ("-5", 400, "bad Content-Length"),
        ("+5", 400, "bad Content-Length"),
        ("0x10", 400, "bad Content-Length"),
        ("1e3", 400, "bad Content-Length"),
        ("5, 5", 400, "bad Content-Length"),
        ("\xb2", 400, "bad Content-Length"),  # superscript 2: str.isdigit says yes
        ("", 400, "bad Content-Length"),
        (str(CAP + 1), 413, "limit is 0.0625 MB"),
        ("9" * 5000, 413, "upload too large"),  # past int()'s digit limit
    ],
)
def test_odd_content_length_is_refused_before_reading(
    server, model, length, status, fragment
):
    before = model.images
    reply = raw_exchange(server, post_head(f"Content-Length: {length}") + b"xxxxx")
    assert_refused(reply, status, fragment)
    assert model.images == before


def test_content_length_with_spaces_is_read(server, model):
    head = post_head(f"Content-Length:   {len(SEVEN)}  ", "Connection: close")
    status, _, body = raw_exchange(server, head + SEVEN)
    assert status == 200
    assert json.loads(body) == expected(model.inner, SEVEN, "x.png")


def test_ambiguous_framing_is_refused(server):
    n = len(SEVEN)
    repeated = post_head(f"Content-Length: {n}", f"Content-Length: {n}")
    assert_refused(raw_exchange(server, repeated + SEVEN), 400, "more than one")
    both = post_head(f"Content-Length: {n}", "Transfer-Encoding: chunked")
    assert_refused(raw_exchange(server, both + chunk(SEVEN)), 400, "send only one")
    gzip = post_head("Transfer-Encoding: gzip, chunked")
    assert_refused(raw_exchange(server, gzip), 501, "only chunked")


# ------------------------------------------------------------------- chunked
CHUNKED = "Transfer-Encoding: chunked"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"-5\r\nhello\r\n0\r\n\r\n", 400, "malformed chunk size"),
        (b"+a\r\n0123456789\r\n0\r\n\r\n", 400, "malformed chunk size"),
        (b"1_0\r\n" + bytes(16) + b"\r\n0\r\n\r\n", 400, "malformed chunk size"),
        (b"zz\r\n", 400, "malformed chunk size"),
        (b"\r\n", 400, "malformed chunk size"),
        (b"ffffffffffffffffffffffff\r\n", 413, "upload too large"),
        (f"{CAP + 1:x}\r\n".encode(), 413, "upload too large"),
        (b"4\r\nabcdefgh\r\n0\r\n\r\n", 400, "longer than its size"),
        (b"1;" + b"x" * 5000 + b"\r\n", 400, "longer than 4096 bytes"),
        (b"4\r\nab", 400, "cut short"),
        (b"1\r\na\r\n" * (CAP // 6 + 1) + b"0\r\n\r\n", 413, "upload too large"),
        (chunk(SEVEN) + b"0\r\n" + b"X-A: b\r\n" * 65 + b"\r\n", 400, "trailer"),
        (chunk(SEVEN) + b"0\r\n" + b"X: " + bytes(5000) + b"\r\n", 400, "trailer"),
    ],
    ids=[
        "negative", "signed", "underscore", "not-hex", "empty", "huge", "over-cap",
        "overlong-chunk", "long-extension", "cut-short", "framing-over-cap",
        "many-trailers", "long-trailer",
    ],
)  # fmt: skip
def test_bad_chunked_bodies_are_refused(server, model, body, status, fragment):
    before = model.images
    reply = raw_exchange(server, post_head(CHUNKED) + body)
    assert_refused(reply, status, fragment)
    assert model.images == before


def test_chunk_extensions_and_trailers_are_allowed(server, model):
    body = (
        b"10;name=value;flag\r\n" + SEVEN[:16] + b"\r\n"
        + f"{len(SEVEN) - 16:X} ; x=\"y\"\r\n".encode() + SEVEN[16:] + b"\r\n"
        + b"0\r\nX-Checksum: none\r\nX-Other: 1\r\n\r\n"
    )  # fmt: skip
    head = post_head(CHUNKED, "Connection: close")
    status, _, out = raw_exchange(server, head + body)
    assert status == 200
    assert json.loads(out) == expected(model.inner, SEVEN, "x.png")


# ------------------------------------------------------ Expect: 100-continue
def test_expect_100_continue_refuses_before_the_body_is_sent(server, model):
    host, port = server.server_address[:2]
    expect = "Expect: 100-continue"
    # A good upload gets "100 Continue", then its answer.
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            post_head(f"Content-Length: {len(SEVEN)}", expect, "Connection: close")
        )
        assert s.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(SEVEN)
        status, _, body = split_reply(recv_all(s))
    assert status == 200 and json.loads(body)["error"] is None
    # Refusals come at once, without "100 Continue" and without the body.
    cases = [
        ((f"Content-Length: {CAP + 1}", expect), 413, "upload too large"),
        (("Content-Length: -1", expect), 400, "bad Content-Length"),
        (("Content-Length: 9", "Content-Length: 9", expect), 400, "more than one"),
        ((CHUNKED, "Transfer-Encoding: gzip", expect), 501, "only chunked"),
        ((expect,), 411, "needs a Content-Length"),
        (("Content-Length: 9", "Origin: http://evil.example", expect), 403, "Origin"),
    ]
    for headers, status, fragment in cases:
        reply = raw_exchange(server, post_head(*headers))
        if status == 403:  # the page is refused, not the body: no error_dict
            assert reply[0] == 403 and fragment in json.loads(reply[2])["error"]
        else:
            assert_refused(reply, status, fragment)


# -------------------------------------------------------- other web pages
def test_requests_from_other_origins_get_403_and_no_work(server, model):
    port = server.server_address[1]
    before = model.images
    foreign = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # sandboxed frames, file:// pages
        {"Origin": f"http://localhost:{port + 1}"},  # another local port
        {"Origin": f"https://127.0.0.1:{port}"},
        {"Origin": "http://127.0.0.1"},  # port 80, not this one
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},
    ]
    for headers in foreign:
        for method, path, body in [
            ("POST", "/api/predict", SEVEN),
            ("GET", "/api/info", None),
        ]:
            status, _, out = request(server, method, path, body=body, headers=headers)
            assert status == 403, headers
            assert "other web pages" in out["error"]
    assert model.images == before
    # The server's own page, and a link followed from elsewhere, are answered.
    own = [
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"HTTP://LOCALHOST:{port}", "Host": f"localhost:{port}"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ]
    for headers in own:
        status, _, out = request(
            server, "POST", "/api/predict", body=SEVEN, headers=headers
        )
        assert status == 200 and out["error"] is None
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert request(server, "GET", "/", headers=link)[0] == 200


# ------------------------------------------------------------- slow clients
def trickle(server, head: bytes, stop: threading.Event) -> bytes:
    """Send ``head`` then one byte every 0.1 s until the server hangs up (or
    ``stop``); return what the server answered."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head)
        s.settimeout(0.1)
        for _ in range(300):  # at most ~30 s
            if stop.is_set():
                break
            try:
                reply = s.recv(65536)
                return reply + (s.recv(65536) if reply else b"")
            except TimeoutError:
                pass
            except ConnectionResetError:  # dropped to make room: also a hang-up
                break
            try:
                s.sendall(b"a")
            except OSError:  # the server hung up
                break
        return b""


def test_slow_head_and_slow_body_get_408(server):
    stop = threading.Event()
    head = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    t0 = time.monotonic()
    status, _, body = split_reply(trickle(server, head, stop))
    assert status == 408 and "took longer than 1 s" in json.loads(body)["error"]
    body_head = post_head(f"Content-Length: {CAP}")
    status, _, body = split_reply(trickle(server, body_head, stop))
    assert status == 408 and "upload took longer than 1.5 s" in body.decode()
    assert time.monotonic() - t0 < 60  # both cut off long before the clients stop


def test_idle_connections_are_closed_quietly(server):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        assert s.recv(1024) == b""  # closed after head_timeout, no 408 for silence


def patient_server(model, **kwargs):
    """A server whose deadlines are far away (30 s): only what else it does can
    answer a good request while slow clients flood it."""
    settings = {"max_connections": CONNECTIONS, "quiet": True, **kwargs}
    return serving(model, head_timeout=30, body_timeout=30, **settings)


@contextlib.contextmanager
def slow_clients(server, heads: list[bytes]):
    """One client per head, each trickling a byte every 0.1 s after it."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=trickle, args=(server, head, stop), daemon=True)
        for head in heads
    ]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def test_slow_heads_take_no_thread_and_the_oldest_make_room(model):
    with patient_server(model, max_waiting=8) as srv:
        with slow_clients(srv, [SLOW_HEAD] * (3 * 8)):
            time.sleep(0.5)  # they are all connected (the oldest closed)
            for _ in range(3):
                assert_still_serving(srv, model, timeout=10)


def test_slow_bodies_make_room_when_every_thread_is_taken(model):
    with patient_server(model) as srv:
        slow_body = post_head(f"Content-Length: {CAP}")
        with slow_clients(srv, [slow_body] * (CONNECTIONS + 2)):
            time.sleep(0.5)  # every worker now reads a slow body
            for _ in range(3):
                # The slow bodies would go on for 30 s: answered in 10 s means one
                # was dropped to make room.
                assert_still_serving(srv, model, timeout=10)


def test_requests_beyond_the_queue_get_503_and_the_queue_is_served(model):
    with patient_server(model, max_connections=1, max_waiting=1) as srv:
        slow_body = post_head(f"Content-Length: {CAP}")
        with slow_clients(srv, [slow_body]):  # takes the only worker
            time.sleep(0.5)
            with ThreadPoolExecutor(1) as pool:  # queued behind it
                queued = pool.submit(request, srv, "GET", "/api/info", timeout=10)
                time.sleep(0.5)
                refused = raw_exchange(srv, b"GET /api/info HTTP/1.1\r\n\r\n")
                assert refused[0] == 503 and "busy" in json.loads(refused[2])["error"]
                assert queued.result()[0] == 200  # once the slow body was dropped


def test_clients_that_vanish_leave_one_log_line(server, model):
    host, port = server.server_address[:2]
    for _ in range(5):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(post_head(f"Content-Length: {len(SEVEN)}") + SEVEN)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        s.close()  # reset: the answer has nowhere to go
    assert_still_serving(server, model)
