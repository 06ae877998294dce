"""examples/mnist_predict.py end to end, through a subprocess as a user runs it:
exit codes, one JSON line per image, one clear line per bad image, figures."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "mnist_predict.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small untrained tinynet MLP saved to disk (the CLI's --model)."""
    try:
        from tinynet.zoo import mnist_mlp
    except ImportError as exc:
        pytest.skip(f"tinynet models not importable: {exc}")
    path = tmp_path_factory.mktemp("model") / "mlp.npz"
    mnist_mlp(seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")

    def digit_image(text, w):
        img = np.full((200, w), 235, np.uint8)
        cv2.putText(img, text, (20, 160), cv2.FONT_HERSHEY_SIMPLEX, 5, 20, 12)
        return img

    files = {
        "seven": d / "seven.jpg",
        "number": d / "number.png",
        "missing": d / "missing.png",
        "text": d / "notes.png",
        "blank": d / "blank.png",
        "huge": d / "huge.png",
    }
    cv2.imwrite(str(files["seven"]), digit_image("7", 160))
    cv2.imwrite(str(files["number"]), digit_image("42", 300))
    files["text"].write_text("not an image at all\n")
    cv2.imwrite(str(files["blank"]), np.full((300, 200), 240, np.uint8))
    cv2.imwrite(str(files["huge"]), np.full((8000, 8000), 255, np.uint8))
    return files


EXAMPLE = [sys.executable, str(SCRIPT)]
COMMAND = [sys.executable, "-m", "tinynet.cli", "predict"]


def run(*args, command=EXAMPLE):
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def overflowing_model_file(tmp_path_factory):
    """An MLP whose finite but huge weights overflow: its probabilities are NaN."""
    from tinynet.zoo import mnist_mlp

    model = mnist_mlp(seed=0)
    for layer in model.layers:
        if "W" in layer.params:
            layer.params["W"][...] = 3e38 * np.sign(layer.params["W"])
    path = tmp_path_factory.mktemp("model") / "overflow.npz"
    model.save(path)
    return path


@contextlib.contextmanager
def fifo_fed_while(path: Path, stop: threading.Event):
    """A FIFO at ``path``; while it exists, whoever opens it to read gets some text
    (so a reader that does open it is never left waiting)."""
    os.mkfifo(path)

    def feed():
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.05)
                continue
            with contextlib.suppress(OSError):
                os.write(fd, b"not an image\n")
            os.close(fd)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("command", "as_json"),
    [(EXAMPLE, False), (COMMAND, True)],
    ids=["example-text", "tinynet-json"],
)
def test_special_files_and_a_broken_model_are_one_line_each(
    model_file, overflowing_model_file, images, tmp_path, command, as_json
):
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    json_flag = ["--json"] if as_json else []
    with fifo_fed_while(tmp_path / "fifo.png", threading.Event()) as fifo:
        bad = [folder, fifo, images["text"]]
        res = run(*bad, images["seven"], "--model", model_file, *json_flag,
                  command=command)  # fmt: skip
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr
    if as_json:
        records = [json.loads(line) for line in res.stdout.splitlines()]
        assert [r["file"] for r in records] == [str(p) for p in [*bad, images["seven"]]]
        errors = [r["error"] for r in records[:3]]
        assert records[3]["error"] is None and len(records[3]["digits"]) == 1
    else:
        errors = res.stderr.splitlines()
        assert res.stdout.startswith(f"{images['seven']}: ")
    assert len(errors) == 3
    for path, error in zip(bad, errors, strict=True):
        assert str(path) in error and "\n" not in error
    # A model that gives NaN: an error for each image, never "confidence nan".
    res = run(images["seven"], images["number"], "--model", overflowing_model_file,
              *json_flag, command=command)  # fmt: skip
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "Warning" not in res.stderr
    if as_json:
        records = [
            json.loads(line, parse_constant=refuse) for line in res.stdout.splitlines()
        ]
        assert [r["digits"] for r in records] == [None, None]
        errors = [r["error"] for r in records]
    else:
        assert res.stdout == ""
        errors = res.stderr.splitlines()
    assert len(errors) == 2 and all("non-finite probabilities" in e for e in errors)


def refuse(constant):
    raise AssertionError(f"not strict JSON: {constant}")


def test_json_lines_bad_images_reported_and_the_others_still_read(model_file, images):
    order = ["seven", "missing", "text", "number", "blank", "huge"]
    res = run(*[images[k] for k in order], "--model", model_file, "--json")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [rec["file"] for rec in lines] == [str(images[k]) for k in order]
    rec = dict(zip(order, lines, strict=True))
    for key, n in (("seven", 1), ("number", 2)):
        assert rec[key]["error"] is None
        assert isinstance(rec[key]["digits"], str) and len(rec[key]["digits"]) == n
        probs = np.array(rec[key]["probabilities"])
        assert probs.shape == (n, 10)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        assert rec[key]["confidence"] == pytest.approx(probs.max(axis=1).tolist())
    expected = {
        "missing": "no such file",
        "text": "not a readable image",
        "blank": "no ink found",
        "huge": "over the limit",
    }
    for key, phrase in expected.items():
        assert rec[key]["digits"] is None
        assert phrase in rec[key]["error"] and images[key].name in rec[key]["error"]
        assert "\n" not in rec[key]["error"]


def test_text_output_and_error_lines(model_file, images):
    res = run(
        images["seven"], images["number"], images["missing"], "--model", model_file
    )
    assert res.returncode == 1
    out = res.stdout.splitlines()
    assert out[0].startswith(f"{images['seven']}: ") and "top-3:" in out[0]
    assert out[1].startswith(f"{images['number']}: ")
    assert out[2].lstrip().startswith("digit 1:") and out[3].lstrip().startswith(
        "digit 2:"
    )
    assert res.stderr.strip() == f"error: {images['missing']}: no such file"


def test_all_good_exits_zero_and_single_mode_reads_one_digit(model_file, images):
    res = run(images["number"], "--model", model_file, "--json", "--single")
    assert res.returncode == 0, res.stderr
    (rec,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rec["digits"]) == 1


def test_plot_writes_one_figure_per_image(model_file, images, tmp_path):
    out = tmp_path / "fig.png"
    res = run(images["seven"], images["number"], "--model", model_file, "--plot", out)
    assert res.returncode == 0, res.stderr
    for stem in ("seven", "number"):
        assert (tmp_path / f"fig_{stem}.png").read_bytes()[:8] == PNG_MAGIC
    assert not out.exists()
    res = run(images["seven"], "--model", model_file, "--plot", out)
    assert res.returncode == 0 and out.read_bytes()[:8] == PNG_MAGIC


def test_unloadable_model_is_one_clear_line(images, tmp_path):
    res = run(images["seven"], "--model", tmp_path / "nope.npz")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("error: cannot load") and res.stderr.count("\n") == 1
    res = run()
    assert res.returncode == 2 and "usage" in res.stderr


@pytest.mark.parametrize("command", [EXAMPLE, COMMAND], ids=["example", "tinynet"])
def test_low_confidence_says_not_sure_with_the_runner_up(model_file, images, command):
    """The untrained model's confidences are far under the threshold."""
    from tinynet.vision.reading import SURE_CONFIDENCE

    res = run(images["number"], "--model", model_file, "--json", command=command)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)
    assert rec["sure_threshold"] == SURE_CONFIDENCE
    assert rec["sure"] == [c >= SURE_CONFIDENCE for c in rec["confidence"]]
    assert rec["sure"] == [False, False]
    assert rec["runner_up"] == [row[1] for row in rec["top3"]]
    lines = run(images["number"], "--model", model_file, command=command).stdout
    for line, (digit, p) in zip(lines.splitlines()[1:], rec["runner_up"], strict=True):
        assert f"not sure (runner-up {digit} {p:.3f})" in line


def test_several_models_are_read_as_the_mean_of_their_probabilities(
    model_file, images, tmp_path
):
    from tinynet.zoo import mnist_mlp

    other = tmp_path / "other.npz"
    mnist_mlp(seed=1).save(other)
    records = [
        json.loads(run(images["number"], *flags, "--json", command=COMMAND).stdout)
        for flags in (
            ("--model", model_file),
            ("--model", other),
            ("--model", model_file, "--model", other),
        )
    ]
    one, two, both = (np.array(r["probabilities"]) for r in records)
    np.testing.assert_allclose(both, (one + two) / 2, atol=2e-6)
    assert both.shape == (2, 10)
