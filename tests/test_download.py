"""Downloads, against an HTTP server on 127.0.0.1 only (never the internet).

The server has one route per mirror behaviour:
``/good/NAME`` serves the file, ``/bad/NAME`` serves corrupted bytes,
``/alt/NAME`` serves a valid file with other content (checksum mismatch),
``/missing/NAME`` answers 404, ``/cut/NAME`` announces the full length and then
hangs up halfway.
"""

import dataclasses
import gzip
import hashlib
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from tinynet.datasets import download as dl
from tinynet.datasets import mnist
from tinynet.datasets.idx import encode_idx
from tinynet.datasets.idx_dataset import IdxFile

REPO = Path(__file__).resolve().parents[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    alt: dict[str, bytes] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.hits.append(self.path)
        _, mode, name = self.path.split("/", 2)
        body = (self.alt if mode == "alt" else self.files).get(name)
        if mode == "missing" or body is None:
            self.send_error(404)
            return
        if mode == "bad":
            body = bytes(b ^ 0x5A for b in body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "cut" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "alt": {}, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, handler
    httpd.shutdown()
    httpd.server_close()


def _expect(content: bytes):
    def verify(path: Path) -> None:
        if path.read_bytes() != content:
            raise ValueError("content differs")

    return verify


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_falls_through_failing_mirrors(server, tmp_path):
    base, handler = server
    handler.files["f.bin"] = b"payload" * 1000
    mirrors = [f"{base}/missing/", f"{base}/bad/", f"{base}/cut/", f"{base}/good/"]
    path = dl.fetch_verified(
        "f.bin", tmp_path, mirrors, _expect(b"payload" * 1000), stream=None
    )
    assert path == tmp_path / "f.bin" and path.read_bytes() == b"payload" * 1000
    assert handler.hits == [f"/{m}/f.bin" for m in ("missing", "bad", "cut", "good")]
    assert _leftovers(tmp_path) == ["f.bin"]


def test_all_mirrors_fail_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files["f.bin"] = b"x" * 5000
    mirrors = [f"{base}/bad/", f"{base}/cut/", f"{base}/missing/"]
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch_verified("f.bin", tmp_path / "c", mirrors, _expect(b"x" * 5000))
    msg = str(info.value)
    for m in mirrors:
        assert m + "f.bin" in msg
    assert "content differs" in msg and "404" in msg
    assert len(info.value.attempts) == 3
    assert _leftovers(tmp_path / "c") == []


def test_interrupt_during_verify_leaves_nothing(server, tmp_path):
    base, handler = server
    handler.files["f.bin"] = b"y" * 100

    def verify(path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.fetch_verified("f.bin", tmp_path, [f"{base}/good/"], verify, stream=None)
    assert _leftovers(tmp_path) == []


def test_progress_bar_is_written(server, tmp_path, capsys):
    import sys

    base, handler = server
    handler.files["f.bin"] = b"z" * 300_000
    dl.fetch_verified(
        "f.bin", tmp_path, [f"{base}/good/"], _expect(b"z" * 300_000), stream=sys.stderr
    )
    err = capsys.readouterr().err
    assert "Downloading f.bin" in err and "100%" in err and "0.3/0.3 MB" in err


def test_cache_root_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dl.cache_root() == tmp_path / "tinynet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert dl.cache_root() == Path.home() / ".cache" / "tinynet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dl.cache_root() == Path.home() / ".cache" / "tinynet"


# ------------------------------------------------------- MNIST end to end


def _fake_mnist_payloads(seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 5, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    files, served = {}, {}
    for key, spec in mnist.SPEC.files.items():
        data = encode_idx(arrays[key])
        files[key] = IdxFile(spec.name, hashlib.sha256(data).hexdigest(), len(data))
        served[spec.name + ".gz"] = gzip.compress(data, mtime=0)
    return files, served, arrays


@pytest.fixture
def fake_env(monkeypatch, tmp_path, server):
    base, handler = server
    files, served, arrays = _fake_mnist_payloads()
    handler.files.update(served)
    handler.alt.update(_fake_mnist_payloads(seed=1)[1])
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = dataclasses.replace(mnist.SPEC, files=files)
    return base, handler, arrays, tmp_path / "tinynet" / "mnist", spec


def _with_mirrors(spec, *mirrors):
    return dataclasses.replace(spec, mirrors=mirrors)


def test_load_data_downloads_into_cache_once(fake_env):
    base, handler, arrays, cache, spec = fake_env
    spec = _with_mirrors(spec, f"{base}/bad/", f"{base}/good/")
    (x, y), (xt, yt) = spec.load_data()
    np.testing.assert_array_equal(x, arrays["train_images"])
    np.testing.assert_array_equal(yt, arrays["test_labels"])
    assert _leftovers(cache) == sorted(s.name + ".gz" for s in spec.files.values())
    n_hits = len(handler.hits)
    assert n_hits == 8  # each file: corrupt mirror, then the good one
    spec.load_data()
    assert len(handler.hits) == n_hits  # second call reads the cache


def test_load_data_only_fetches_missing_files(fake_env):
    base, handler, arrays, cache, spec = fake_env
    spec = _with_mirrors(spec, f"{base}/good/")
    spec.load_data()
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    handler.hits.clear()
    spec.load_data()
    assert handler.hits == ["/good/t10k-labels-idx1-ubyte.gz"]


def test_offline_error_names_mirrors_and_folders(fake_env):
    base, handler, arrays, cache, spec = fake_env
    # Port 9 (discard) on loopback: nothing listens, the connection is refused.
    mirrors = (f"{base}/missing/", "http://127.0.0.1:9/mnist/")
    spec = _with_mirrors(spec, *mirrors)
    with pytest.raises(mnist.MnistNotFoundError) as info:
        spec.load_data()
    msg = str(info.value)
    assert all(m in msg for m in mirrors)
    assert str(cache) in msg and "train-images-idx3-ubyte.gz" in msg
    assert _leftovers(cache) == []


def test_corrupt_everywhere_leaves_cache_empty(fake_env):
    base, handler, arrays, cache, spec = fake_env
    spec = _with_mirrors(spec, f"{base}/bad/", f"{base}/cut/")
    with pytest.raises(
        mnist.MnistNotFoundError, match="downloaded train-images.*magic"
    ):
        spec.load_data()
    assert _leftovers(cache) == []


def test_real_mnist_download_over_loopback(server, monkeypatch, tmp_path):
    root = os.environ.get("TINYNET_DATA") or str(REPO.parent / "shared" / "datasets")
    src = Path(root) / "mnist"
    if not (src / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {src} (set TINYNET_DATA)")
    base, handler = server
    for file in mnist.SPEC.files.values():
        handler.files[file.name + ".gz"] = (src / (file.name + ".gz")).read_bytes()
    # The served copy is re-gzipped (as mirrors do): only the payload hash holds.
    name = "t10k-labels-idx1-ubyte.gz"
    handler.files[name] = gzip.compress(gzip.decompress(handler.files[name]), 1)
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = _with_mirrors(mnist.SPEC, f"{base}/good/")
    (x, y), (xt, yt) = spec.load_data()
    assert x.shape == (60000, 28, 28) and yt.shape == (10000,)
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_checksum_mismatch_tries_next_mirror(fake_env):
    base, handler, arrays, cache, spec = fake_env
    spec = _with_mirrors(spec, f"{base}/alt/", f"{base}/good/")
    (x, _), _ = spec.load_data()
    np.testing.assert_array_equal(x, arrays["train_images"])
    assert sum(h.startswith("/alt/") for h in handler.hits) == 4


def test_checksum_mismatch_only_is_a_clear_error(fake_env):
    base, handler, arrays, cache, spec = fake_env
    spec = _with_mirrors(spec, f"{base}/alt/")
    with pytest.raises(mnist.MnistNotFoundError, match=r"alt/train-images.*SHA-256"):
        spec.load_data()
    assert _leftovers(cache) == []
