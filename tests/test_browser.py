"""The digit-reader page in a real headless Chromium, driven over the W3C WebDriver
HTTP API of ``chromedriver`` with urllib (no Python dependency).

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them); the tests skip, saying so, when either is missing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tinynet.server import DigitServer
from tinynet.vision import read_digits

REPO = Path(__file__).resolve().parents[1]
REALDIGITS = REPO.parent / "shared" / "realdigits"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,1000",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser test needs the chromium and chromium-driver packages "
    "(apt-get install chromium chromium-driver)",
)


# ------------------------------------------------------------ a tiny WebDriver
class WebDriverError(RuntimeError):
    pass


class Browser:
    """Just enough of the W3C WebDriver protocol for these tests."""

    def __init__(self, driver_url: str, user_data_dir: str) -> None:
        self.base = driver_url
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [*CHROME_ARGS, f"--user-data-dir={user_data_dir}"],
            },
        }
        reply = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = f"/session/{reply['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.load(resp)["value"]
        except urllib.error.HTTPError as exc:
            raise WebDriverError(exc.read().decode(errors="replace")[:2000]) from None

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, self.session + path, body)

    def get(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def element(self, css: str) -> dict:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})

    def click(self, css: str) -> None:
        self.cmd("POST", f"/element/{_id(self.element(css))}/click", {})

    def send_file(self, css: str, path: Path) -> None:
        self.cmd(
            "POST", f"/element/{_id(self.element(css))}/value", {"text": str(path)}
        )

    def stroke(self, css: str, points: list[tuple[int, int]], kind: str = "mouse"):
        """Press at the first point, move through the rest, release (one stroke).

        Points are relative to the element's centre (WebDriver's element origin).
        """
        origin = self.element(css)
        x0, y0 = points[0]
        actions = [
            {"type": "pointerMove", "duration": 0, "origin": origin, "x": x0, "y": y0},
            {"type": "pointerDown", "button": 0, "pressure": 0.5},
        ]
        for x, y in points[1:]:
            actions.append(
                {
                    "type": "pointerMove",
                    "duration": 15,
                    "origin": origin,
                    "x": x,
                    "y": y,
                }
            )
        actions.append({"type": "pointerUp", "button": 0})
        source = {
            "type": "pointer",
            "id": f"{kind}-pointer",
            "parameters": {"pointerType": kind},
            "actions": actions,
        }
        self.cmd("POST", "/actions", {"actions": [source]})
        self.cmd("DELETE", "/actions")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def wait(self, script: str, timeout: float = 30.0):
        """Poll ``script`` until it returns something truthy."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for: {script}")

    def quit(self) -> None:
        try:
            self.cmd("DELETE", "")
        except (WebDriverError, OSError):
            pass


def _id(element: dict) -> str:
    return next(iter(element.values()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def model():
    """The shipped model when installed; otherwise a small MLP trained in seconds;
    an untrained one (the drawing tests then skip) when MNIST is not at hand either."""
    from tinynet import pretrained

    try:
        pretrained.pretrained_path("mnist")
        shipped = pretrained.load_pretrained("mnist")
        shipped.shipped = True
        return shipped
    except FileNotFoundError:
        pass
    from tinynet.datasets import mnist
    from tinynet.layers.dense import Dense
    from tinynet.layers.reshape import Flatten
    from tinynet.model import Sequential

    folder = Path(os.environ.get("TINYNET_DATA") or REPO.parent / "shared" / "datasets")
    try:
        (x, y), _ = mnist.load_data(folder / "mnist", download=False)
    except (OSError, ValueError) as exc:  # no local copy
        x = y = None
        untrained = str(exc).splitlines()[0]
    quick = Sequential(
        [Flatten(), Dense(128, activation="relu"), Dense(10, activation="softmax")],
        input_shape=(28, 28),
        seed=0,
        name="quick_mlp",
    )
    if x is None:
        quick.untrained = untrained
        return quick
    quick.compile("adam")
    quick.fit(x[:8000] / 255.0, y[:8000], epochs=2, batch_size=64, verbose=0, seed=0)
    return quick


@pytest.fixture(scope="module")
def server(model):
    srv = DigitServer(("127.0.0.1", 0), model, quiet=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tinynet-chromium-") as profile:
        log = open(os.path.join(profile, "chromedriver.log"), "wb")  # noqa: SIM115
        driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            end = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(url + "/status", timeout=2) as r:
                        if json.load(r)["value"]["ready"]:
                            break
                except OSError:
                    pass
                if time.monotonic() > end or driver.poll() is not None:
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.1)
            b = Browser(url, os.path.join(profile, "user-data"))
            try:
                yield b
            finally:
                b.quit()
        finally:
            driver.terminate()
            driver.wait(timeout=10)
            log.close()


@pytest.fixture()
def page(browser, server):
    browser.get(server.url)
    browser.wait("return document.readyState === 'complete'")
    return browser


RESULT = """return (() => {
const box = document.getElementById('result');
if (box.dataset.state !== 'done' && box.dataset.state !== 'error') return null;
const bars = [...document.querySelectorAll('.digit-card')].map(
  card => [...card.querySelectorAll('.bar .fill')].map(
    f => parseFloat(f.style.height)));
return {
  state: box.dataset.state,
  status: document.getElementById('status').textContent,
  digits: document.getElementById('digits').textContent,
  confidence: document.getElementById('confidence').textContent,
  bars: bars,
  top: [...document.querySelectorAll('.bar.top')].map(b => Number(b.dataset.digit)),
  unsure: document.getElementById('unsure').hidden ? null
    : document.getElementById('unsure').textContent,
  unsureCards: [...document.querySelectorAll('.digit-card')].map(
    card => card.classList.contains('not-sure')),
  badges: [...document.querySelectorAll('.unsure-badge')].map(b => b.textContent),
  seen: [...document.querySelectorAll('.seen img')].map(
    i => [i.complete, i.naturalWidth, i.naturalHeight]),
};
})();"""


def circle(cx: int, cy: int, rx: int, ry: int, n: int = 24) -> list[tuple[int, int]]:
    t = np.linspace(0, 2 * np.pi, n + 1) - np.pi / 2
    return [(round(cx + rx * np.cos(a)), round(cy + ry * np.sin(a))) for a in t]


# Strokes in canvas pixels from its centre (the canvas is 280x280 CSS pixels).
DRAWINGS = {
    "7": ("mouse", [[(-60, -80), (60, -80), (-5, 95)]]),
    "0": ("pen", [circle(0, 0, 55, 85)]),
    "1": ("touch", [[(5, -95), (-5, 95)]]),
}


def check_shown(result: dict, n_digits: int) -> None:
    """Confidence, ten bars per digit peaking at the digit read, 28x28 images."""
    assert result["state"] == "done", result["status"]
    assert len(result["bars"]) == n_digits and all(len(b) == 10 for b in result["bars"])
    for bars, top, digit in zip(
        result["bars"], result["top"], result["digits"], strict=True
    ):
        assert int(np.argmax(bars)) == top == int(digit)
        assert 99.0 <= sum(bars) <= 101.0  # percentages of probabilities summing to 1
    assert result["seen"] == [[True, 28, 28]] * n_digits
    assert result["confidence"].count("%") == n_digits


@pytest.mark.parametrize("digit", sorted(DRAWINGS))
def test_draw_a_digit_and_read_it(page, model, digit):
    if hasattr(model, "untrained"):
        pytest.skip(f"no trained model to read a drawing: {model.untrained}")
    kind, strokes = DRAWINGS[digit]
    for stroke in strokes:
        page.stroke("#pad", stroke, kind)
    result = page.wait(RESULT)
    assert result["digits"] == digit, result
    check_shown(result, 1)
    # Clear empties the canvas and the answer.
    page.click("#clear")
    ink = page.js(
        "const c = document.getElementById('pad');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "return d.some(v => v !== 255);"
    )
    assert ink is False
    shown = "return getComputedStyle(document.getElementById('answer')).display"
    assert page.js(shown) == "none"


def check_sureness(result: dict, want) -> None:
    """ "Not sure" is shown, with the runner-up, exactly for the digits under the
    threshold, in the line under the answer and on each such digit's card."""
    assert result["unsureCards"] == [not s for s in want.sure]
    runner_ups = [
        f"maybe {d} ({100 * p:.1f} %)"
        for sure, (d, p) in zip(want.sure, want.runner_up(), strict=True)
        if not sure
    ]
    assert result["badges"] == [f"not sure: {r}" for r in runner_ups]
    if all(want.sure):
        assert result["unsure"] is None
    else:
        assert result["unsure"].startswith("Not sure")
        assert all(r in result["unsure"] for r in runner_ups)


@pytest.fixture(scope="module")
def unsure_server():
    """An untrained model: every digit it reads is far under the threshold."""
    from tinynet.layers.dense import Dense
    from tinynet.layers.reshape import Flatten
    from tinynet.model import Sequential

    guesser = Sequential(
        [Flatten(), Dense(10, activation="softmax")], input_shape=(28, 28), seed=0
    )
    srv = DigitServer(("127.0.0.1", 0), guesser, quiet=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv, guesser
    srv.shutdown()
    srv.server_close()


def test_an_unsure_reading_says_not_sure_and_shows_the_runner_up(
    browser, unsure_server
):
    srv, guesser = unsure_server
    browser.get(srv.url)
    browser.wait("return document.readyState === 'complete'")
    browser.stroke("#pad", DRAWINGS["7"][1][0], "mouse")  # one stroke, one reading
    result = browser.wait(RESULT)
    assert result["state"] == "done", result["status"]
    assert result["unsure"] is not None and result["badges"]
    drawn = browser.js(
        "return document.getElementById('pad').toDataURL('image/png').split(',')[1]"
    )
    want = read_digits(base64.b64decode(drawn), guesser)
    assert result["digits"] == want.digits and not any(want.sure)
    check_sureness(result, want)
    # The warning stands out: it is styled (coloured), not plain text.
    colour = browser.js(
        "return getComputedStyle(document.getElementById('unsure')).backgroundColor"
    )
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent")


def real_photo(name: str) -> Path:
    path = REALDIGITS / name
    if not path.is_file():
        pytest.skip(f"{path} not found (the realdigits folder sits next to the repo)")
    return path


def test_upload_a_photo(page, server, model, tmp_path):
    photo = real_photo("3_desyrani_1.jpg")
    page.send_file("#file", photo)
    result = page.wait(RESULT)
    want = read_digits(photo, model)
    assert result["digits"] == want.digits
    check_shown(result, len(want.digits))
    assert photo.name in result["status"]
    if hasattr(model, "shipped"):  # a clear photo: the shipped model reads it right
        assert result["digits"] == photo.name[0]
    shown = [float(c.rstrip(" %")) for c in result["confidence"].split(" · ")]
    np.testing.assert_allclose(shown, np.multiply(want.confidence, 100), atol=0.051)
    check_sureness(result, want)
    # The uploaded photo is shown with a box around each digit read.
    boxes = page.js("return document.querySelectorAll('#boxes div').length")
    assert boxes == len(want.digits)
    shot = page.screenshot()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "upload.png").write_bytes(shot)


def test_drop_a_photo(page, model):
    photo = real_photo("8_wikunia_1.png")
    page.js(
        "const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));"
        "const dt = new DataTransfer();"
        "dt.items.add(new File([bytes], arguments[1], {type: 'image/png'}));"
        "const drop = document.getElementById('drop');"
        "drop.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));",
        base64.b64encode(photo.read_bytes()).decode(),
        photo.name,
    )
    result = page.wait(RESULT)
    want = read_digits(photo, model)
    assert result["digits"] == want.digits
    check_shown(result, len(want.digits))
    if hasattr(model, "shipped"):
        assert result["digits"] == photo.name[0]


def test_a_non_image_shows_the_server_message(page, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not really a picture")
    page.send_file("#file", bad)
    result = page.wait(RESULT)
    assert result["state"] == "error"
    assert "notes.png: not a readable image" in result["status"]
