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


def test_reports_every_set_and_writes_the_figures(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, digit in enumerate("3710"):
        img = np.full((120, 100), 235, np.uint8)
        cv2.putText(img, digit, (15, 100), cv2.FONT_HERSHEY_SIMPLEX, 3, 20, 9)
        cv2.imwrite(str(photos / f"{digit}_writer{i % 2}_1.png"), img)
    rng = np.random.default_rng(0)
    usps = tmp_path / "usps.gz"
    rows = np.hstack([np.arange(12)[:, None] % 10, rng.uniform(-1, 1, (12, 256))])
    with gzip.open(usps, "wt") as f:
        np.savetxt(f, rows)
    model = tn.Sequential(
        [tn.Flatten(), tn.Dense(10, activation="softmax")], input_shape=(28, 28, 1)
    )
    model.save(tmp_path / "model.npz")
    figures = tmp_path / "figures"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tmp_path / "model.npz"),
         "--data", str(photos), "--usps", str(usps),
         "--semeion", str(tmp_path / "none"), "--no-mnist", "--timing-runs", "0",
         "--figures", str(figures), "--json"],
        capture_output=True, text=True, timeout=300,
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
