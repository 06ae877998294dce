"""benchmarks/eval_realdigits.py on small stand-in sets: its JSON and its figures."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import REPO

import tinynet as tn

SCRIPT = REPO / "benchmarks" / "eval_realdigits.py"


def write_usps(path, n, seed=0):
    """A stand-in USPS file: ``n`` rows of a label and 256 random grey levels."""
    rng = np.random.default_rng(seed)
    rows = np.hstack([np.arange(n)[:, None] % 10, rng.uniform(-1, 1, (n, 256))])
    with gzip.open(path, "wt") as f:
        np.savetxt(f, rows)
    return rows


def run_eval(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_reports_every_set_and_writes_the_figures(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, digit in enumerate("3710"):
        img = np.full((120, 100), 235, np.uint8)
        cv2.putText(img, digit, (15, 100), cv2.FONT_HERSHEY_SIMPLEX, 3, 20, 9)
        cv2.imwrite(str(photos / f"{digit}_writer{i % 2}_1.png"), img)
    usps = tmp_path / "usps.gz"
    write_usps(usps, 12)
    model = tn.Sequential(
        [tn.Flatten(), tn.Dense(10, activation="softmax")], input_shape=(28, 28, 1)
    )
    model.save(tmp_path / "model.npz")
    figures = tmp_path / "figures"
    result = run_eval(
        "--model", tmp_path / "model.npz", "--data", photos, "--usps", usps,
        "--semeion", tmp_path / "none", "--no-mnist", "--timing-runs", "0",
        "--figures", figures, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    res = json.loads(result.stdout)
    assert res["skipped"] == [f"semeion: no file {tmp_path / 'none'}"]
    for key, n in (("realdigits", 4), ("usps", 12)):
        r = res[key]
        cm = np.array(r["confusion_matrix"])
        assert cm.shape == (10, 10) and cm.sum() == n == r["n"]
        assert 0 <= r["ece"] <= 1 and r["nll"] > 0
        hits = sum(v["accuracy"] * v["n"] for v in r["per_class"].values())
        assert r["accuracy"] == pytest.approx(hits / n)
        ns = r["not_sure"]
        assert ns["errors"] == round(n * (1 - r["accuracy"]))
        assert r["thresholds"]["0.99"]["fraction"] >= ns["fraction"]
    assert set(res["realdigits"]["per_source"]) == {"writer0", "writer1"}
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["errors_realdigits.png", "errors_usps.png", "reliability.png"]
    assert res["figures"] == [str(figures / n) for n in
                              ("errors_realdigits.png", "errors_usps.png",
                               "reliability.png")]  # fmt: skip


def test_error_figures_show_each_scan_beside_its_network_input(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import eval_realdigits

    scans = np.full((2, 16, 16), 255, np.uint8)
    scans[0, :8, :8] = 0  # dark ink in the top-left quarter
    inputs = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    shown = eval_realdigits.beside_scans(scans, inputs)
    assert shown.shape == (2, 28, 58)
    np.testing.assert_array_equal(shown[:, :, 30:], inputs)
    assert shown[0, :14, :14].min() == 1.0 and shown[0, 14:, :28].max() == 0.0
    assert shown[1, :, :28].max() == 0.0


def test_members_reports_each_model_and_the_digits_all_misread(tmp_path):
    usps = tmp_path / "usps.gz"
    rows = write_usps(usps, 40, seed=1)
    paths, wrong = [], []
    scans = ((1.0 - rows[:, 1:].reshape(-1, 16, 16)) * 127.5).astype(np.uint8)
    x = np.stack([tn.vision.preprocess(s) for s in scans])[..., None]
    for seed in range(2):
        model = tn.Sequential(
            [tn.Flatten(), tn.Dense(10, activation="softmax")],
            input_shape=(28, 28, 1), seed=seed,
        )  # fmt: skip
        paths.append(tmp_path / f"m{seed}.npz")
        model.save(paths[-1])
        wrong.append(model.predict(x).argmax(axis=1) != rows[:, 0])
    result = run_eval(
        "--model", paths[0], "--model", paths[1], "--members", "--usps", usps,
        "--data", tmp_path / "none", "--semeion", tmp_path / "none",
        "--no-mnist", "--timing-runs", "0", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    r = json.loads(result.stdout)["usps"]
    assert [m["model"] for m in r["members"]] == ["m0.npz", "m1.npz"]
    assert [m["errors"] for m in r["members"]] == [int(w.sum()) for w in wrong]
    both = np.flatnonzero(wrong[0] & wrong[1]).tolist()
    assert 0 < len(both) < 40
    assert r["misread_by_all"] == {"count": len(both), "which": both}


def test_members_needs_several_models(tmp_path):
    result = run_eval("--members", "--no-mnist", "--timing-runs", "0")
    assert result.returncode == 2
    assert "--members needs two or more --model" in result.stderr
