"""fit / evaluate: learning, determinism, validation, bad input, NaN stop, progress."""

import numpy as np
import pytest
from model_helpers import mlp, spirals

from tinynet import Dense, Sequential, optimizers
from tinynet.training import split_validation


def trained(seed=0, epochs=30, **fit_kwargs):
    x, y = spirals()
    model = mlp(seed=seed)
    model.compile(
        optimizer=optimizers.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"]
    )
    history = model.fit(
        x, y, epochs=epochs, batch_size=32, seed=seed, verbose=0, **fit_kwargs
    )
    return model, history, (x, y)


def test_mlp_learns_the_spirals():
    model, history, (x, y) = trained()
    # The loss without dropout: the last epoch's training loss carries the noise of
    # the masks (0.19-0.43 over seeds 0-3).
    scores = model.evaluate(x, y)
    assert scores["loss"] < history["loss"][0] / 4
    assert scores["accuracy"] > 0.95
    assert set(history.history) == {"loss", "accuracy", "lr", "time"}


def test_same_seed_gives_bit_identical_weights_after_training():
    a, _, _ = trained(seed=3, epochs=3)
    b, _, _ = trained(seed=3, epochs=3)
    c, _, _ = trained(seed=4, epochs=3)
    for key, value in a.get_weights().items():
        np.testing.assert_array_equal(value, b.get_weights()[key])
    assert not np.array_equal(a.parameters()["0.W"], c.parameters()["0.W"])


def test_validation_split_is_random_not_the_tail():
    x = np.arange(100, dtype=np.float32)[:, None]
    y = np.arange(100)
    (x_tr, y_tr), (x_val, y_val) = split_validation(x, y, 0.2, np.random.default_rng(0))
    assert len(x_val) == 20 and len(x_tr) == 80
    assert sorted(np.concatenate([y_tr, y_val])) == list(range(100))
    assert y_val.min() < 80  # the tail would be exactly 80..99
    np.testing.assert_array_equal(x_val[:, 0], y_val)  # pairs stay together


def test_validation_metrics_are_logged():
    _, history, _ = trained(epochs=2, validation_split=0.25)
    assert {"val_loss", "val_accuracy"} <= set(history.history)
    assert len(history["val_loss"]) == 2


@pytest.mark.parametrize(
    ("x", "y", "error", "fragment"),
    [
        (np.zeros((10, 3), np.float32), np.zeros(10, int), ValueError, "(N, 2)"),
        (
            np.zeros((10, 2), np.float32),
            np.zeros(9, int),
            ValueError,
            "different lengths",
        ),
        (np.zeros((10, 2), np.float32), np.full(10, 3), ValueError, "[0, 2]"),
        (np.zeros((10, 2), np.float32), np.full(10, 0.5), TypeError, "integer"),
        (
            np.full((10, 2), np.inf, np.float32),
            np.zeros(10, int),
            ValueError,
            "infinite",
        ),
        (np.zeros((10, 2), np.float32), np.zeros((10, 4)), ValueError, "(N, 3)"),
    ],
)
def test_fit_rejects_bad_input(x, y, error, fragment):
    model = mlp()
    model.compile(loss="cross_entropy")
    with pytest.raises(error) as err:
        model.fit(x, y, verbose=0)
    assert fragment in str(err.value)


_X = np.zeros((4, 2), np.float32)
_LABELS = np.array([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("x", "y", "error", "fragments"),
    [
        (_X, _LABELS + 0.5, TypeError, ["integer class labels in [0, 2]", "0.5"]),
        (_X, np.where(_LABELS == 2, np.nan, _LABELS), TypeError, ["nan at index 2"]),
        (_X, _LABELS.astype(bool), TypeError, ["integer class labels", "bool"]),
        (_X, _LABELS.astype(str), TypeError, ["real numbers", "<U"]),
        (_X, _LABELS.astype(object), TypeError, ["real numbers", "object"]),
        (_X, _LABELS.astype(complex), TypeError, ["real numbers", "complex"]),
        (_X, 2 * np.eye(3)[_LABELS], ValueError, ["distribution", "sum 2"]),
        (_X, np.eye(3)[_LABELS] - 0.25, ValueError, ["distribution", "min -0.25"]),
        (_X + 1j, _LABELS, TypeError, ["x must be numeric", "complex"]),
        ([[0.0, 1.0], [2.0]] * 2, _LABELS, TypeError, ["array of numbers"]),
        (np.full((4, 2), np.nan), _LABELS, ValueError, ["x contains NaN"]),
    ],
)
def test_fit_names_what_it_expected_and_what_it_got(x, y, error, fragments):
    model = mlp()
    model.compile(loss="cross_entropy")
    with pytest.raises(error) as err:
        model.fit(x, y, verbose=0)
    assert all(fragment in str(err.value) for fragment in fragments), err.value


def test_whole_float_labels_and_soft_targets_are_accepted():
    model = mlp()
    model.compile(loss="cross_entropy")
    soft = np.full((4, 3), 1 / 3)
    for y in (_LABELS.astype(np.float64), soft, np.eye(3)[_LABELS].astype(bool)):
        assert len(model.fit(_X, y, verbose=0).epoch) == 1


def test_fit_needs_compile_and_sane_arguments():
    x, y = spirals(10)
    model = mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile()
    for kwargs in ({"epochs": 0}, {"batch_size": 0}, {"validation_split": 1.0}):
        with pytest.raises(ValueError):
            model.fit(x, y, verbose=0, **kwargs)


def test_one_hot_targets_train_like_labels():
    """Labels take the loss's kernel, one-hot targets its NumPy path. In float64:
    Adam turns a rounding-level difference in a near-zero gradient into a step of
    up to the learning rate, which in float32 reaches 2e-4 after two epochs."""
    x, y = spirals(30)
    a, b = mlp(seed=1, dropout=0.0), mlp(seed=1, dropout=0.0)
    for model, target in ((a, y), (b, np.eye(3)[y])):
        model.astype("float64")
        model.compile(optimizer="adam", loss="cross_entropy")
        model.fit(x, target, epochs=2, batch_size=16, seed=0, verbose=0)
    for key, value in a.parameters().items():
        np.testing.assert_allclose(value, b.parameters()[key], rtol=1e-9, atol=1e-11)
        assert not np.array_equal(value, mlp(seed=1).parameters()[key]), key


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_loss_stops_training_with_a_message(capsys):
    x, y = spirals(30)
    model = mlp(batchnorm=False)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e30), loss="cross_entropy")
    history = model.fit(x * 1e30, y, epochs=5, batch_size=8, verbose=0)
    assert history.stop_reason is not None and "loss became" in history.stop_reason
    assert "loss became" in capsys.readouterr().err
    assert len(history.epoch) < 5


def test_verbose_zero_is_silent_and_verbose_one_reports_each_epoch(capsys):
    trained(epochs=2)
    assert capsys.readouterr().out == ""
    x, y = spirals(20)
    model = mlp()
    model.compile()
    model.fit(x, y, epochs=2, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    # Captured stdout is not a terminal: one plain line per epoch, like a log file.
    lines = out.splitlines()
    assert len(lines) == 2 and "\r" not in out
    assert lines[0].startswith("Epoch 1/2") and lines[1].startswith("Epoch 2/2")
    assert "loss" in out


def test_augment_receives_the_fit_generator_and_each_batch():
    x, y = spirals(20)
    calls = []

    def augment(batch, rng):
        calls.append((batch.shape, type(rng).__name__))
        return batch + 0.0

    model = mlp()
    model.compile()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, augment=augment)
    assert len(calls) == 4 and calls[0] == ((16, 2), "Generator")


def test_label_aware_augment_receives_each_batchs_labels():
    x, y = spirals(20)
    seen = []

    class ByLabel:
        uses_labels = True

        def __call__(self, batch, rng, labels):
            seen.append(labels.copy())
            return batch + 0.0

    model = mlp()
    model.compile()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, augment=ByLabel(), seed=0)
    assert [len(s) for s in seen] == [16, 16, 16, 12]
    # Every batch's labels are the labels of that batch's rows: all of y, once.
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(y))


def test_no_activation_memory_is_kept_after_fit():
    model, _, _ = trained(epochs=1)
    for layer in model.layers:
        with pytest.raises(RuntimeError, match="without a preceding"):
            layer.backward(np.ones((1, *layer.output_shape), model.dtype))


def pixel_spirals():
    """The spirals as uint8 "pixels" in [0, 255], and those pixels scaled to floats
    the way ``input_scale=1 / 255`` reads them."""
    x, y = spirals()
    pixels = np.round((x + 1) * 127.5).astype(np.uint8)
    return pixels, pixels.astype(np.float32) * np.float32(1 / 255), y


def test_input_scale_trains_on_integer_inputs_as_on_their_scaled_floats():
    pixels, floats, y = pixel_spirals()
    models, histories = [], []
    for x, scale in ((pixels, 1 / 255), (floats, None)):
        model = mlp(seed=2)
        model.compile(optimizer=optimizers.Adam(1e-2), metrics=["accuracy"])
        history = model.fit(
            x,
            y,
            epochs=3,
            batch_size=32,
            validation_split=0.25,
            seed=2,
            verbose=0,
            input_scale=scale,
        )
        models.append(model)
        histories.append(history.history)
    scaled, plain = models
    for key, value in plain.get_weights().items():
        np.testing.assert_array_equal(scaled.get_weights()[key], value)
    assert histories[0]["val_loss"] == histories[1]["val_loss"]
    assert scaled.evaluate(pixels, y, input_scale=1 / 255) == plain.evaluate(floats, y)
    np.testing.assert_array_equal(
        scaled.predict(pixels, batch_size=64, input_scale=1 / 255),
        plain.predict(floats, batch_size=64),
    )


def test_input_scale_never_copies_the_whole_set_as_floats():
    """tracemalloc sees NumPy's allocations: with input_scale, fit's peak stays far
    below the float32 copy of x (5 MB here) that converting it whole would take."""
    tracemalloc = pytest.importorskip("tracemalloc")
    x = np.random.default_rng(0).integers(0, 256, (20_000, 64), dtype=np.uint8)
    y = np.arange(len(x)) % 3
    model = Sequential([Dense(3, activation="softmax")], input_shape=(64,), seed=0)
    model.compile()
    model.fit(x[:64], y[:64], batch_size=32, verbose=0, input_scale=1 / 255)
    tracemalloc.start()
    try:
        model.fit(x, y, batch_size=32, verbose=0, input_scale=1 / 255)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.size * 4 / 4


@pytest.mark.parametrize(
    ("scale", "error"), [(float("nan"), ValueError), ("1/255", TypeError)]
)
def test_input_scale_must_be_a_finite_number(scale, error):
    pixels, _, y = pixel_spirals()
    model = mlp()
    model.compile()
    for call in (
        lambda: model.fit(pixels, y, verbose=0, input_scale=scale),
        lambda: model.evaluate(pixels, y, input_scale=scale),
        lambda: model.predict(pixels, input_scale=scale),
    ):
        with pytest.raises(error, match="input_scale"):
            call()
