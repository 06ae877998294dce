"""The digit-reader server through real HTTP on loopback, and the ``tinynet`` command.

The model is a tiny untrained CNN (its convolution and pooling run the Numba kernels,
whose thread pool must not be entered concurrently): what is checked is that the
server answers exactly what :func:`tinynet.vision.read_digits` gives for the same
bytes, refuses bad input with the right status, and stays correct under load.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from serve_helpers import (
    IMAGES,
    blank_png,
    expected,
    recv_all,
    request,
    serving,
    tiny_cnn,
)

from tinynet.server import parse_multipart
from tinynet.threads import USER_SETTINGS
from tinynet.vision import read_digits
from tinynet.vision.reading import SURE_CONFIDENCE
from tinynet.vision.report import describe

MAX_UPLOAD = 2 * 2**20
MAX_PIXELS = 4_000_000


@pytest.fixture(scope="module")
def model():
    return tiny_cnn()


@pytest.fixture(scope="module")
def server(model):
    with serving(
        model, max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS, quiet=True
    ) as srv:
        yield srv


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, (filename, content) in fields.items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------------ the page
def test_page_and_assets_are_local(server):
    status, resp, html = request(server, "GET", "/")
    assert status == 200
    assert resp.getheader("Content-Type").startswith("text/html")
    assert "default-src 'none'" in resp.getheader("Content-Security-Policy")
    html = html.decode()
    assert '<canvas id="pad"' in html and 'type="file"' in html
    for path, ctype in [("/app.js", "text/javascript"), ("/style.css", "text/css")]:
        status, resp, body = request(server, "GET", path)
        assert status == 200 and resp.getheader("Content-Type").startswith(ctype)
        assert b"http://" not in body and b"https://" not in body  # nothing fetched
    assert "http://" not in html.split("<footer>")[0]
    assert "https://" not in html


def test_info_and_unknown_routes(server, model):
    status, _, info = request(server, "GET", "/api/info")
    assert status == 200
    assert info["model"] == "tiny_cnn" and info["input_shape"] == [28, 28, 1]
    assert info["max_upload_bytes"] == MAX_UPLOAD
    assert request(server, "GET", "/nope")[0] == 404
    assert request(server, "POST", "/api/other", body=b"x")[0] == 404
    status, resp, body = request(server, "GET", "/api/predict")
    assert status == 405 and resp.getheader("Allow") == "POST"


def test_other_host_names_are_refused(server):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing."""
    status, _, body = request(
        server, "GET", "/api/info", headers={"Host": "evil.example"}
    )
    assert status == 403 and "not allowed" in body["error"]
    port = server.server_address[1]
    assert request(server, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200


# -------------------------------------------------------------- good images
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_raw_body_gives_the_mnist_predict_json_line(server, model, name):
    data = IMAGES[name]
    status, resp, out = request(server, "POST", f"/api/predict?file={name}", body=data)
    assert status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert out == expected(model, data, name)
    assert set(out) == {
        "file",
        "digits",
        "confidence",
        "probabilities",
        "top3",
        "sure",
        "runner_up",
        "sure_threshold",
        "error",
    }
    assert out["runner_up"] == [row[1] for row in out["top3"]]
    assert out["sure"] == [c >= out["sure_threshold"] for c in out["confidence"]]
    assert len(out["digits"]) == (2 if name == "forty-two.png" else 1)


def test_multipart_field_image(server, model):
    body, ctype = multipart(
        {"other": ("x.txt", b"ignored"), "image": ("7.png", IMAGES["seven.png"])}
    )
    status, _, out = request(
        server, "POST", "/api/predict", body=body, headers={"Content-Type": ctype}
    )
    assert status == 200
    assert out == expected(model, IMAGES["seven.png"], "7.png")


def test_single_option_reads_all_ink_as_one_digit(server, model):
    data = IMAGES["forty-two.png"]
    status, _, out = request(server, "POST", "/api/predict?single=1", body=data)
    assert status == 200
    assert out == expected(model, data, "upload", multi=False)
    assert len(out["digits"]) == 1


def test_inputs_option_returns_what_the_network_saw(server, model):
    data = IMAGES["forty-two.png"]
    status, _, out = request(server, "POST", "/api/predict?inputs=1", body=data)
    assert status == 200
    reading = read_digits(data, model)
    assert len(out["inputs"]) == 2 and len(out["boxes"]) == 2
    for url, x in zip(out["inputs"], reading.inputs, strict=True):
        prefix = "data:image/png;base64,"
        assert url.startswith(prefix)
        png = np.frombuffer(base64.b64decode(url[len(prefix) :]), np.uint8)
        seen = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
        assert seen.shape == (28, 28) and seen.dtype == np.uint8
        np.testing.assert_allclose(seen / 255.0, x, atol=0.5 / 255 + 1e-6)
    assert out["boxes"] == [list(b) for b in reading.boxes]
    # Boxes are in the upload's pixels: the 4 lies left of the 2, inside the image.
    (x4, _, w4, _), (x2, _, w2, _) = out["boxes"]
    assert 0 <= x4 < x4 + w4 <= x2 < x2 + w2 <= 320


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"this is a text file, not a picture", "not a readable image"),
        (IMAGES["seven.png"][:60], "not a readable image"),  # truncated PNG
        (b"\xff\xd8\xff\xe0" + bytes(200), "not a readable image"),  # broken JPEG
        (b"", "empty upload"),
    ],
)
def test_non_images_get_400_with_a_message(server, body, fragment):
    status, _, out = request(server, "POST", "/api/predict?file=bad.png", body=body)
    assert status == 400
    assert fragment in out["error"] and out["digits"] is None
    assert out["file"] == "bad.png"


def test_too_many_pixels_gets_400_before_decoding(server):
    big = blank_png(2000, 2500)  # 5 MP, over this server's 4 MP (only ~10 kB)
    assert len(big) < MAX_UPLOAD
    status, _, out = request(server, "POST", "/api/predict?file=big.png", body=big)
    assert status == 400
    assert "megapixels" in out["error"] and out["error"].startswith("big.png:")


def test_blank_image_gets_422(server):
    status, _, out = request(server, "POST", "/api/predict", body=blank_png())
    assert status == 422 and "no ink" in out["error"]


def test_multipart_without_image_field_gets_400(server):
    body, ctype = multipart({"photo": ("7.png", IMAGES["seven.png"])})
    status, _, out = request(
        server, "POST", "/api/predict", body=body, headers={"Content-Type": ctype}
    )
    assert status == 400 and 'no field "image"' in out["error"]


def test_parse_multipart_keeps_binary_content():
    content = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    body, ctype = multipart({"image": ("a b.png", content)})
    assert parse_multipart(body, ctype) == (content, "a b.png")


def test_too_large_upload_gets_413_and_the_server_carries_on(server, model):
    status, resp, out = request(
        server, "POST", "/api/predict", body=bytes(MAX_UPLOAD + 1)
    )
    assert status == 413
    assert "upload too large" in out["error"] and "limit is 2 MB" in out["error"]
    assert resp.getheader("Connection") == "close"
    # Announced with Expect: 100-continue, a huge body is refused before it is sent.
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            b"POST /api/predict?file=huge.png HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n"
        )
        reply = recv_all(s)
    assert reply.startswith(b"HTTP/1.1 413")
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1]) == {
        "file": "huge.png", "digits": None, "confidence": None, "probabilities": None,
        "top3": None, "sure": None, "runner_up": None,
        "sure_threshold": SURE_CONFIDENCE,
        "error": "upload too large: 953.7 MB, the limit is 2 MB "
        "(downscale the image or raise --max-upload-mb)",
    }  # fmt: skip
    # Chunked bodies are counted as they arrive.
    chunk = bytes(2**20)
    chunks = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(3)]
    status, _, out = request(
        server, "POST", "/api/predict", body=iter(chunks + [b"0\r\n\r\n"]),
        headers={"Transfer-Encoding": "chunked"},
    )  # fmt: skip
    assert status == 413
    data = IMAGES["seven.png"]
    assert request(server, "POST", "/api/predict", body=data)[2] == expected(
        model, data, "upload"
    )


def test_chunked_upload_within_the_cap_is_read(server, model):
    data = IMAGES["three.jpg"]
    body = [
        f"{len(part):x}\r\n".encode() + part + b"\r\n"
        for part in (data[:100], data[100:])
    ]
    body.append(b"0\r\n\r\n")
    status, _, out = request(
        server, "POST", "/api/predict", body=iter(body),
        headers={"Transfer-Encoding": "chunked"},
    )  # fmt: skip
    assert status == 200 and out == expected(model, data, "upload")


def test_server_survives_broken_clients(server, model):
    host, port = server.server_address[:2]
    post = b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\n"
    junk = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),  # TLS hello
        b"GARBAGE\r\n\r\n",
        post + b"Content-Length: -5\r\n\r\n",
        post + b"Content-Length: 50\r\n\r\nab",  # cut short
        post + b"\r\n",  # no length
    ]
    replies = []
    for raw in junk:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)  # the client gives up mid-request
            replies.append(recv_all(s))
    # http.server answers lines without a version as HTTP/0.9: no status line.
    for reply in replies[:2]:
        assert json.loads(reply)["error"].startswith("Bad request syntax")
    assert (
        replies[2].startswith(b"HTTP/1.1 400") and b"bad Content-Length" in replies[2]
    )
    assert replies[3].startswith(b"HTTP/1.1 400") and b"cut short" in replies[3]
    assert replies[4].startswith(b"HTTP/1.1 411")
    data = IMAGES["zero.bmp"]
    status, _, out = request(server, "POST", "/api/predict", body=data)
    assert status == 200 and out == expected(model, data, "upload")


def test_50_concurrent_requests_all_answered_correctly(server, model):
    bad = {"bad.txt": b"not an image", "blank.png": blank_png()}
    cases = [(name, IMAGES[name]) for name in sorted(IMAGES)] * 10
    cases += [(name, bad[name]) for name in sorted(bad)] * 5
    assert len(cases) == 50
    want = {name: expected(model, data, name) for name, data in IMAGES.items()}
    gate = threading.Barrier(len(cases))

    def call(case):
        name, data = case
        gate.wait()  # every request starts together
        return request(server, "POST", f"/api/predict?file={name}", body=data)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(call, cases))
    for (name, _), (status, _, out) in zip(cases, results, strict=True):
        if name in want:
            assert (status, out) == (200, want[name])
        else:
            assert status == (400 if name == "bad.txt" else 422)
            assert out["file"] == name and out["error"]


def test_model_failure_gives_500_and_the_server_stays_up(model):
    class Flaky:
        input_shape = (28, 28, 1)
        name = "flaky"
        calls = 0

        def predict(self, x, batch_size=256):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom")
            return model.predict(x, batch_size=batch_size)

    with serving(Flaky(), quiet=True) as srv:
        data = IMAGES["seven.png"]
        status, _, out = request(srv, "POST", "/api/predict", body=data)
        assert status == 500 and out["error"].startswith("internal error")
        status, _, out = request(srv, "POST", "/api/predict", body=data)
        assert status == 200 and out == expected(model, data, "upload")


def test_non_finite_probabilities_give_500_with_a_message(model, capfd):
    class Overflowing:  # what a model with huge weights gives: inf - inf = NaN
        input_shape = (28, 28, 1)
        name = "overflowing"

        def predict(self, x, batch_size=256):
            return np.full((len(x), 10), np.nan, np.float32)

    with serving(Overflowing(), quiet=True) as srv:
        status, _, out = request(
            srv, "POST", "/api/predict?file=7.png", body=IMAGES["seven.png"]
        )
        assert status == 500 and out["digits"] is None
        assert out["error"].startswith("7.png: the model gave non-finite probabilities")
        assert request(srv, "GET", "/api/info")[0] == 200
    log = capfd.readouterr().err
    assert log == f"tinynet serve: {out['error']}\n"  # one line even when quiet


# --------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    model.save(path)
    return path


def console_script() -> list[str]:
    """The installed ``tinynet`` console script, else ``python -m tinynet.cli``."""
    script = Path(sys.executable).parent / "tinynet"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tinynet.cli"]


def test_cli_serve_prints_the_address_and_serves(model_file):
    proc = subprocess.Popen(
        [*console_script(), "serve", "--model", str(model_file),
         "--port", "0", "--quiet", "--max-upload-mb", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("tinynet: digit reader at http://127.0.0.1:"), line
        url = line.split()[4]
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/info")
        info = json.loads(conn.getresponse().read())
        assert info["model"] == "tiny_cnn" and info["max_upload_bytes"] == 2**19
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_errors_exit_2_with_a_message(tmp_path):
    missing = tmp_path / "missing.npz"
    run = subprocess.run(
        [sys.executable, "-m", "tinynet.cli", "serve", "--model", str(missing)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "cannot load" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "tinynet.cli", "serve", "--port", "70000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and "port must be in 0-65535" in run.stderr


def test_cli_predict_text(model, model_file, tmp_path):
    good = tmp_path / "42.png"
    good.write_bytes(IMAGES["forty-two.png"])
    run = subprocess.run(
        [sys.executable, "-m", "tinynet.cli", "predict", "--model", str(model_file),
         str(good)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    reading = read_digits(IMAGES["forty-two.png"], model)
    assert run.stdout == describe(str(good), reading) + "\n"  # as the example prints


def test_cli_predict_json_matches_read_digits(model, model_file, tmp_path):
    good = tmp_path / "seven.png"
    good.write_bytes(IMAGES["seven.png"])
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    run = subprocess.run(
        [sys.executable, "-m", "tinynet.cli", "predict", "--json",
         "--model", str(model_file), str(good), str(bad)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 1  # one image failed
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert first == expected(model, IMAGES["seven.png"], str(good))
    assert second["file"] == str(bad) and "not a readable image" in second["error"]


def test_cli_commands_run_with_one_blas_thread():
    """Single-image work: the tinynet command limits BLAS to one thread (unless the
    user set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS). In a fresh
    process: OpenBLAS ignores the limit while another thread that set its own
    count is alive (the servers' workers in this one)."""
    probe = (
        "import sys, threadpoolctl\n"
        "from tinynet import cli\n"
        "def fake_predict(args):\n"
        "    infos = threadpoolctl.threadpool_info()\n"
        "    print(max(i['num_threads'] for i in infos if i['user_api'] == 'blas'))\n"
        "    return 0\n"
        "cli._predict = fake_predict\n"
        "sys.exit(cli.main(['predict', 'x.png']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "1"
