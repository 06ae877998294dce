"""The MNIST training example, run as a user would run it, on real data."""

import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

import tinynet


def train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``examples/mnist_train.py`` with ``args`` in a fresh interpreter."""
    command = [sys.executable, str(REPO / "examples" / "mnist_train.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_mlp_smoke_run_on_10000_real_images(real_mnist_dir, tmp_path):
    """One epoch of the MLP on the first 10,000 training images, evaluated on all
    10,000 test images. Measured: 0.922 test accuracy (seed 0); asserted >= 0.90."""
    out = tmp_path / "mlp.npz"
    plots = tmp_path / "plots"
    result = train(
        "--model", "mlp", "--epochs", "1", "--limit", "10000",
        "--data-dir", str(real_mnist_dir),
        "--out", str(out), "--plots", str(plots), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy >= 0.90
    assert "confusion matrix" in result.stdout
    assert "identical test predictions" in result.stdout
    # The thread governor's account of the training steps.
    governed = r"threads: \('train', 128\): (all|one) threads now; \d+ of \d+ calls"
    assert re.search(governed, result.stdout)
    assert sorted(p.name for p in plots.iterdir()) == [
        "confusion_matrix.png",
        "learning_curves.png",
        "misclassified.png",
    ]
    model = tinynet.load_model(out)
    assert abs(model.metadata["test_accuracy"] - accuracy) < 1e-4  # printed to 4 places
    assert model.metadata["command"].startswith("python examples/mnist_train.py")
    # calibrated on the validation split by default, the temperature recorded
    temperature = float(re.search(r"temperature (\d+\.\d+)", result.stdout).group(1))
    assert model.metadata["temperature"] == pytest.approx(temperature, abs=5e-4)
    assert set(model.metadata["calibration_ece"]) == {"validation", "test"}


def test_no_calibrate_leaves_the_model_as_trained(real_mnist_dir, tmp_path):
    out = tmp_path / "mlp.npz"
    result = train(
        "--model", "mlp", "--epochs", "1", "--limit", "1000", "--no-calibrate",
        "--data-dir", str(real_mnist_dir), "--out", str(out), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "calibrated" not in result.stdout
    assert "temperature" not in tinynet.load_model(out).metadata


def test_speedrun_trains_on_its_recipe_and_saves(real_mnist_dir, tmp_path):
    """``--model speedrun`` takes its batch size, schedule and loss from
    ``zoo.SPEEDRUN_RECIPE`` and trains on every image it is given (the recipe was
    chosen on a validation split). Measured on 2,048 images: 0.80 test accuracy
    (seed 0); asserted > 0.5, far above chance."""
    out = tmp_path / "speedrun.npz"
    result = train(
        "--model", "speedrun", "--limit", "2048",
        "--data-dir", str(real_mnist_dir), "--out", str(out), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    recipe = tinynet.zoo.SPEEDRUN_RECIPE
    steps = recipe.total_steps(2048) // recipe.epochs
    assert (
        f"training on 2,048 images, validating on 0; {recipe.epochs} epochs of "
        f"{steps} steps; adam lr {recipe.peak_learning_rate}"
    ) in result.stdout
    accuracy = float(re.search(r"test accuracy (\d\.\d+)", result.stdout).group(1))
    assert accuracy > 0.5
    assert "identical test predictions" in result.stdout
    model = tinynet.load_model(out)
    assert model.name == "mnist_speedrun"
    assert abs(model.metadata["test_accuracy"] - accuracy) < 1e-4


def test_missing_data_folder_is_one_clear_error(tmp_path):
    result = train("--data-dir", str(tmp_path / "nowhere"), timeout=120)
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_handwriting_augmentation_is_refused_for_fashion_mnist():
    result = train("--dataset", "fashion", "--augment", timeout=120)
    assert result.returncode == 2
    assert "--augment" in result.stderr and "Traceback" not in result.stderr


def test_a_diverged_run_keeps_the_previous_model_file(real_mnist_dir, tmp_path):
    out = tmp_path / "mlp.npz"
    out.write_bytes(b"the previous model")
    result = train(
        "--model", "mlp", "--epochs", "1", "--limit", "512",
        "--optimizer", "sgd", "--lr", "1e12", "--schedule", "constant",
        "--data-dir", str(real_mnist_dir), "--out", str(out), "--verbose", "0",
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
    result = train(
        "--init", str(bad), "--data-dir", str(real_mnist_dir), "--limit", "10",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--init" in result.stderr and "not_a_model" in result.stderr
    assert "Traceback" not in result.stderr


def test_loading_kernels_in_the_background_leaves_the_model_untouched(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    import mnist_train

    model = tinynet.zoo.mnist_speedrun(seed=0)
    weights = {k: v.copy() for k, v in model.get_weights().items()}
    state = model.rng.bit_generator.state
    mnist_train.load_kernels_in_background(model, "adam", "cross_entropy").join()
    assert model.optimizer is None and model.rng.bit_generator.state == state
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, weights[key], err_msg=key)


def test_swa_fine_tune_from_a_calibrated_model(real_mnist_dir, tmp_path):
    """``--init`` starts from the network's own logits (the shipped file's
    temperature undone) and ``--swa`` leaves BatchNorm statistics computed exactly
    on the images trained on. With a learning rate of 1e-10 the weights do not move,
    so both are visible in the saved file."""
    from tinynet.averaging import refresh_batchnorm
    from tinynet.datasets import BY_NAME
    from tinynet.training import split_validation

    out = tmp_path / "swa.npz"
    shipped = tinynet.pretrained.pretrained_path("mnist")
    result = train(
        "--model", "cnn", "--init", str(shipped),
        "--epochs", "2", "--swa", "2", "--lr", "1e-10", "--schedule", "constant",
        "--limit", "256", "--val-split", "0.25", "--no-calibrate",
        "--data-dir", str(real_mnist_dir), "--out", str(out), "--verbose", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "weights averaged over the last 2 epochs" in result.stdout
    start, tuned = tinynet.load_pretrained("mnist"), tinynet.load_model(out)
    temperature = start.metadata["temperature"]
    assert tuned.metadata["init"]["temperature"] == temperature
    last_w = [k for k in start.parameters() if k.endswith(".W")][-1]
    np.testing.assert_allclose(
        tuned.parameters()[last_w], start.parameters()[last_w] * temperature, rtol=1e-5
    )
    (x, y), _ = BY_NAME["mnist"].load_data(real_mnist_dir)
    x = (x[:256] / np.float32(255)).reshape(-1, 28, 28, 1)
    (x_fit, _), _ = split_validation(x, y[:256], 0.25, np.random.default_rng(0))
    expected = tinynet.load_model(out)
    refresh_batchnorm(expected, x_fit)
    for key, value in expected.buffers().items():
        np.testing.assert_allclose(tuned.buffers()[key], value, rtol=1e-5, atol=1e-6)


def test_swa_longer_than_the_run_is_refused():
    result = train("--epochs", "2", "--swa", "3", timeout=120)
    assert result.returncode == 2
    assert "--swa must be in [1, --epochs=2], got 3" in result.stderr


def test_width_trains_a_wider_cnn_and_init_reads_the_width_from_the_file(
    real_mnist_dir, tmp_path
):
    wide = tmp_path / "wide.npz"
    common = ("--model", "cnn", "--epochs", "1", "--limit", "256", "--val-split",
              "0.25", "--no-calibrate", "--data-dir", str(real_mnist_dir),
              "--verbose", "0")  # fmt: skip
    result = train(*common, "--width", "1.5", "--out", str(wide))
    assert result.returncode == 0, result.stderr
    model = tinynet.load_model(wide)
    assert model.name == "mnist_cnn_w1.5" and model.metadata["width"] == 1.5
    assert tinynet.zoo.cnn_width(model) == 1.5

    tuned = tmp_path / "tuned.npz"
    result = train(*common, "--init", str(wide), "--out", str(tuned))
    assert result.returncode == 0, result.stderr
    assert tinynet.load_model(tuned).name == "mnist_cnn_w1.5"

    result = train(*common, "--init", str(wide), "--width", "1")
    assert result.returncode == 2
    assert "holds a CNN of width 1.5 (mnist_cnn_w1.5), not --width 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_width_is_for_the_cnn_only():
    result = train("--model", "mlp", "--width", "2", timeout=120)
    assert result.returncode == 2
    assert "--width is for --model cnn, not mlp" in result.stderr


def test_deskew_is_recorded_and_a_fine_tune_keeps_it(real_mnist_dir, tmp_path):
    first = tmp_path / "deskewed.npz"
    common = ("--model", "cnn", "--epochs", "1", "--limit", "256", "--val-split",
              "0.25", "--no-calibrate", "--data-dir", str(real_mnist_dir),
              "--verbose", "0")  # fmt: skip
    result = train(*common, "--augment", "--deskew", "--out", str(first))
    assert result.returncode == 0, result.stderr
    assert "deskewed by moments (slant <= 0.5)" in result.stdout
    recorded = tinynet.load_model(first).metadata
    assert recorded["deskew"] == 0.5 and recorded["deskew_by"] == "moments"

    tuned = tmp_path / "tuned.npz"
    result = train(*common, "--init", str(first), "--out", str(tuned))
    assert result.returncode == 0, result.stderr
    assert "deskewed by moments (slant <= 0.5)" in result.stdout
    assert tinynet.load_model(tuned).metadata["deskew"] == 0.5

    result = train(*common, "--init", str(first), "--deskew", "1")
    assert result.returncode == 2
    expected = "deskewed with at most 0.5 by moments, not --deskew 1 by moments"
    assert expected in result.stderr


def test_deskew_is_for_handwriting_only():
    result = train("--dataset", "fashion", "--deskew", timeout=120)
    assert result.returncode == 2
    assert "--deskew straightens handwriting" in result.stderr
