"""The MNIST training example, run as a user would run it, on real data."""

import re
import subprocess
import sys

from conftest import REPO

import tinynet


def test_mlp_smoke_run_on_10000_real_images(real_mnist_dir, tmp_path):
    """One epoch of the MLP on the first 10,000 training images, evaluated on all
    10,000 test images. Measured: 0.922 test accuracy (seed 0); asserted >= 0.90."""
    out = tmp_path / "mlp.npz"
    plots = tmp_path / "plots"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "mnist_train.py"),
            "--model", "mlp", "--epochs", "1", "--limit", "10000",
            "--data-dir", str(real_mnist_dir),
            "--out", str(out), "--plots", str(plots), "--verbose", "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy >= 0.90
    assert "confusion matrix" in result.stdout
    assert "identical test predictions" in result.stdout
    assert sorted(p.name for p in plots.iterdir()) == [
        "confusion_matrix.png",
        "learning_curves.png",
        "misclassified.png",
    ]
    model = tinynet.load_model(out)
    assert abs(model.metadata["test_accuracy"] - accuracy) < 1e-4  # printed to 4 places
    assert model.metadata["command"].startswith("python examples/mnist_train.py")


def test_missing_data_folder_is_one_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "mnist_train.py"),
         "--data-dir", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_a_diverged_run_keeps_the_previous_model_file(real_mnist_dir, tmp_path):
    out = tmp_path / "mlp.npz"
    out.write_bytes(b"the previous model")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "mnist_train.py"),
            "--model", "mlp", "--epochs", "1", "--limit", "512",
            "--optimizer", "sgd", "--lr", "1e12", "--schedule", "constant",
            "--data-dir", str(real_mnist_dir), "--out", str(out), "--verbose", "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [f"error: training diverged, the weights are not finite; {out} "
                      "was not written"]  # fmt: skip
    assert out.read_bytes() == b"the previous model"


def test_init_from_a_file_that_is_not_a_model_is_one_clear_error(
    real_mnist_dir, tmp_path
):
    bad = tmp_path / "not_a_model.npz"
    bad.write_bytes(b"not a model")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "mnist_train.py"),
         "--init", str(bad), "--data-dir", str(real_mnist_dir), "--limit", "10"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--init" in result.stderr and "not_a_model" in result.stderr
    assert "Traceback" not in result.stderr
