"""Temperature scaling, its folding into the last Dense layer, and the ECE."""

from __future__ import annotations

import numpy as np
import pytest

import tinynet as tn
from tinynet.calibration import (
    apply_temperature,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    reliability_diagram,
    temperature_nll,
)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from that row's probabilities."""
    u = rng.random((len(probs), 1))
    return (probs.cumsum(axis=1) < u).sum(axis=1).clip(0, probs.shape[1] - 1)


def calibrated_logits(n: int, c: int = 10, seed: int = 0):
    """Logits z with labels drawn from softmax(z): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, (n, c))
    return z, sample_labels(softmax(z), rng)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_recovers_a_known_temperature(true_t):
    z, y = calibrated_logits(20_000)
    fitted = fit_temperature(z * true_t, y)  # a model over/under-confident by true_t
    assert fitted == pytest.approx(true_t, rel=0.05)
    # and it is the minimum of the NLL
    nll = temperature_nll(z * true_t, y, fitted)
    assert nll < temperature_nll(z * true_t, y, fitted * 1.1)
    assert nll < temperature_nll(z * true_t, y, fitted / 1.1)


def test_log_probabilities_fit_the_same_temperature_as_logits():
    z, y = calibrated_logits(5_000)
    from_probs = fit_temperature(logits_from_probabilities(softmax(2 * z)), y)
    assert from_probs == pytest.approx(fit_temperature(2 * z, y), rel=1e-4)


def test_fit_refuses_perfectly_separated_data_and_one_class():
    z = np.eye(3)[[0, 1, 2, 0]] * 5.0
    with pytest.raises(ValueError, match="edge of the range"):
        fit_temperature(z, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_temperature(np.zeros((4, 1)), np.zeros(4, int))
    with pytest.raises(ValueError, match="labels must be in"):
        fit_temperature(np.zeros((2, 3)), np.array([0, 3]))


def mlp(seed: int = 0, softmax_layer: bool = False) -> tn.Sequential:
    head = (
        [tn.Dense(4), tn.Softmax()]
        if softmax_layer
        else [tn.Dense(4, activation="softmax")]
    )
    return tn.Sequential(
        [tn.Flatten(), tn.Dense(8, activation="relu"), *head],
        input_shape=(3, 2),
        seed=seed,
        dtype="float64",
    )


@pytest.mark.parametrize("softmax_layer", [False, True])
def test_folding_equals_dividing_the_logits(softmax_layer):
    model = mlp(softmax_layer=softmax_layer)
    # larger weights, so that the probabilities are far from uniform
    dense = model.layers[2]
    dense.params["W"] *= 10
    dense.params["b"][:] = np.arange(4.0)
    x = np.random.default_rng(1).normal(size=(16, 3, 2))
    logits = logits_from_probabilities(model.predict(x))
    apply_temperature(model, 2.0)
    np.testing.assert_allclose(model.predict(x), softmax(logits / 2.0), atol=1e-12)
    assert model.metadata["temperature"] == 2.0
    apply_temperature(model, 1.5)
    assert model.metadata["temperature"] == pytest.approx(3.0)
    np.testing.assert_allclose(model.predict(x), softmax(logits / 3.0), atol=1e-12)


def test_folded_temperature_survives_save_and_load(tmp_path):
    model = mlp()
    x = np.random.default_rng(2).normal(size=(5, 3, 2))
    apply_temperature(model, 4.0)
    model.save(tmp_path / "m.npz", **model.metadata)
    loaded = tn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.metadata["temperature"] == 4.0


def test_calibrate_makes_an_overconfident_model_calibrated():
    # The model's own softmax, scaled up 3x, is the truth scaled down: labels are
    # drawn from softmax(logits / 3), so calibration must find T ~ 3.
    rng = np.random.default_rng(3)
    model = tn.Sequential(
        [tn.Dense(5, activation="softmax")], input_shape=(6,), seed=0, dtype="float64"
    )
    model.layers[0].params["W"] *= 6
    x = rng.normal(size=(20_000, 6))
    logits = logits_from_probabilities(model.predict(x))
    y = sample_labels(softmax(logits / 3.0), rng)
    before = expected_calibration_error(model.predict(x), y)
    temperature = calibrate(model, x, y)
    assert temperature == pytest.approx(3.0, rel=0.05)
    after = expected_calibration_error(model.predict(x), y)
    assert after < before / 3


@pytest.mark.parametrize(
    "layers",
    [
        [tn.Dense(4, activation="relu")],
        [tn.Dense(4, activation="sigmoid")],
        [tn.Dense(4, activation="relu"), tn.Softmax()],
        [tn.Dense(4)],
    ],
)
def test_folding_needs_a_dense_softmax_head(layers):
    model = tn.Sequential(layers, input_shape=(3,), seed=0)
    with pytest.raises(ValueError, match="must end in Dense \\+ softmax"):
        apply_temperature(model, 2.0)
    with pytest.raises(ValueError, match="must end in Dense \\+ softmax"):
        calibrate(model, np.zeros((2, 3), np.float32), np.array([0, 1]))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_temperature_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(mlp(), bad)


def test_ece_is_near_zero_for_calibrated_and_large_for_overconfident_data():
    z, y = calibrated_logits(50_000, seed=4)
    calibrated = expected_calibration_error(softmax(z), y)
    overconfident = expected_calibration_error(softmax(3 * z), y)
    assert calibrated < 0.01
    assert overconfident > 10 * calibrated


def test_ece_matches_its_definition_on_a_small_example():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    diagram = reliability_diagram(probs, labels, bins=2)
    # bin (0, 0.5]: nothing; bin (0.5, 1]: confidences .9 .8 .6 .55, 3 of 4 right
    assert diagram.counts.tolist() == [0, 4]
    assert np.isnan(diagram.accuracy[0]) and np.isnan(diagram.confidence[0])
    mean_conf = np.mean([0.9, 0.8, 0.6, 0.55])
    assert diagram.ece == pytest.approx(abs(0.75 - mean_conf))
    assert expected_calibration_error(probs, labels, bins=2) == diagram.ece
    record = diagram.to_dict()
    assert record["accuracy"][0] is None and record["counts"] == [0, 4]


def test_ece_with_one_class_and_with_empty_bins():
    # one class: every prediction has confidence 1 and is right
    assert expected_calibration_error(np.ones((7, 1)), np.zeros(7, int)) == 0.0
    # every label the same, confidences in only 2 of 15 bins
    probs = np.array([[0.95, 0.05]] * 10 + [[0.65, 0.35]] * 10)
    labels = np.zeros(20, int)
    diagram = reliability_diagram(probs, labels)
    assert (diagram.counts > 0).sum() == 2
    expected = 0.5 * (1 - 0.95) + 0.5 * (1 - 0.65)
    assert diagram.ece == pytest.approx(expected)


def test_ece_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape \\(N, C\\)"):
        expected_calibration_error(np.ones(3), np.zeros(3, int))
    with pytest.raises(ValueError, match="labels must have shape"):
        expected_calibration_error(np.full((3, 2), 0.5), np.zeros(2, int))
    with pytest.raises(TypeError, match="labels must be integers"):
        expected_calibration_error(np.full((3, 2), 0.5), np.zeros(3))
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        expected_calibration_error(np.full((3, 2), 0.5), np.zeros(3, int), bins=0)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        expected_calibration_error(np.full((3, 2), 2.0), np.zeros(3, int))


# ------------------------------------------------------- tinynet calibrate (CLI)
@pytest.fixture(scope="module")
def mnist_model_file(real_mnist_dir, tmp_path_factory):
    """Softmax regression trained briefly on MNIST, saved; and the data folder."""
    from tinynet.datasets import mnist

    (x, y), _ = mnist.load_data(real_mnist_dir)
    model = tn.Sequential(
        [tn.Flatten(), tn.Dense(10, activation="softmax")], input_shape=(28, 28, 1)
    )
    model.compile("adam")
    model.fit(x[:3000, ..., None] / 255.0, y[:3000], epochs=2, verbose=0, seed=0)
    path = tmp_path_factory.mktemp("calibrate") / "softmax.npz"
    model.save(path, note="kept")
    return path, real_mnist_dir


def test_cli_calibrates_on_the_trainers_validation_split(mnist_model_file, capsys):
    from tinynet.cli import main
    from tinynet.datasets import mnist
    from tinynet.training import split_validation

    path, data = mnist_model_file
    out = path.with_name("calibrated.npz")
    argv = ["calibrate", str(path), "--out", str(out), "--data-dir", str(data)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ECE validation: " in printed and "ECE test: " in printed
    original, calibrated = tn.load_model(path), tn.load_model(out)
    temperature = calibrated.metadata["temperature"]
    assert f"temperature {temperature:.4f}" in printed
    assert calibrated.metadata["note"] == "kept"  # earlier metadata survives
    (x, y), _ = mnist.load_data(data)
    x = (x / np.float32(255)).reshape(-1, 28, 28, 1)
    _, (x_val, y_val) = split_validation(x, y, 5000 / 60000, np.random.default_rng(0))
    logits = logits_from_probabilities(original.predict(x_val))
    np.testing.assert_allclose(
        calibrated.predict(x_val), softmax(logits / temperature), atol=1e-5
    )
    # the fitted temperature is the best one on that split
    best = temperature_nll(logits, y_val, temperature)
    assert best <= temperature_nll(logits, y_val, temperature * 1.05)
    assert best <= temperature_nll(logits, y_val, temperature / 1.05)


def test_cli_calibrate_takes_the_split_the_model_file_records(mnist_model_file):
    from tinynet.cli import main

    path, data = mnist_model_file
    recorded = path.with_name("recorded.npz")
    tn.load_model(path).save(recorded, seed=3, val_split=0.1)
    out = path.with_name("calibrated_recorded.npz")
    argv = ["calibrate", str(recorded), "--out", str(out), "--data-dir", str(data)]
    assert main(argv) == 0
    assert (
        tn.load_model(out)
        .metadata["calibrated_on"]
        .endswith("--val-split 0.1 --seed 3")
    )


def test_cli_calibrate_deskews_for_a_model_that_reads_deskewed_digits(
    mnist_model_file,
):
    from tinynet.cli import main
    from tinynet.datasets import mnist
    from tinynet.deskew import deskew
    from tinynet.training import split_validation

    path, data = mnist_model_file
    deskewing = path.with_name("deskewing.npz")
    tn.load_model(path).save(deskewing, deskew=0.5)
    out = path.with_name("calibrated_deskewing.npz")
    argv = ["calibrate", str(deskewing), "--out", str(out), "--data-dir", str(data)]
    assert main(argv) == 0
    original, calibrated = tn.load_model(deskewing), tn.load_model(out)
    assert calibrated.metadata["deskew"] == 0.5
    (x, y), _ = mnist.load_data(data)
    x = (x / np.float32(255)).reshape(-1, 28, 28, 1)
    _, (x_val, y_val) = split_validation(x, y, 5000 / 60000, np.random.default_rng(0))
    logits = logits_from_probabilities(original.predict(deskew(x_val, 0.5)))
    temperature = calibrated.metadata["temperature"]
    # the best temperature for the digits deskewed, as the model reads them
    best = temperature_nll(logits, y_val, temperature)
    assert best <= temperature_nll(logits, y_val, temperature * 1.02)
    assert best <= temperature_nll(logits, y_val, temperature / 1.02)


def test_cli_calibrate_errors_are_one_line(mnist_model_file, tmp_path, capsys):
    from tinynet.cli import main

    _, data = mnist_model_file
    relu_head = tn.Sequential([tn.Flatten(), tn.Dense(10, activation="relu")],
                              input_shape=(28, 28, 1))  # fmt: skip
    relu_head.save(tmp_path / "relu.npz")
    for model, phrase in (
        (tmp_path / "relu.npz", "must end in Dense + softmax"),
        (tmp_path / "missing.npz", "missing.npz"),
    ):
        argv = ["calibrate", str(model), "--out", str(tmp_path / "o.npz")]
        assert main([*argv, "--data-dir", str(data)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinynet calibrate: ") and phrase in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.npz").exists()


def test_the_module_is_reachable_from_tinynet():
    assert tn.calibration.calibrate is calibrate
