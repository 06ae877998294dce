"""Weight averaging (model soups, SWA) and the exact BatchNorm refresh."""

import numpy as np
import pytest
from model_helpers import mlp, spirals

import tinynet
from tinynet.averaging import average_weights, refresh_batchnorm
from tinynet.callbacks import Callback, WeightAveraging


def small_cnn(seed=0):
    return tinynet.Sequential(
        [
            tinynet.Conv2D(4, 3, padding="same", use_bias=False),
            tinynet.BatchNorm(),
            tinynet.ReLU(),
            tinynet.MaxPool2D(2),
            tinynet.Conv2D(6, 3, use_bias=False),
            tinynet.BatchNorm(),
            tinynet.ReLU(),
            tinynet.Flatten(),
            tinynet.Dense(5, activation="softmax"),
        ],
        input_shape=(8, 8, 1),
        seed=seed,
    )


def test_average_weights_is_the_elementwise_mean_of_every_array():
    models = [mlp(seed=s) for s in range(3)]
    members = [m.get_weights() for m in models]
    averaged = average_weights(models)
    assert averaged.keys() == members[0].keys()
    for key, value in averaged.items():
        expected = (members[0][key] + members[1][key] + members[2][key]) / 3
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7)
        assert value.dtype == members[0][key].dtype
    # one model averages to itself, and the result goes straight into set_weights
    target = mlp(seed=9)
    target.set_weights(average_weights(models[:1]))
    for key, value in target.get_weights().items():
        np.testing.assert_array_equal(value, members[0][key])


def test_average_weights_refuses_other_architectures_and_nothing():
    with pytest.raises(ValueError, match="model 1 .* another architecture"):
        average_weights([mlp(), mlp(batchnorm=False)])
    with pytest.raises(ValueError, match="another architecture"):
        average_weights([mlp(classes=3), mlp(classes=4)])
    with pytest.raises(ValueError, match="no models"):
        average_weights([])


def test_refresh_batchnorm_gives_each_layer_the_exact_moments_of_its_input():
    model = small_cnn()
    x = np.random.default_rng(0).random((50, 8, 8, 1), dtype=np.float32)
    assert refresh_batchnorm(model, x, batch_size=16) == 2
    for index in (1, 5):  # the two BatchNorms, each fed by refreshed layers before it
        h = x.astype(np.float64)
        for layer in model.layers[:index]:
            h = layer.forward(h.astype(np.float32), training=False).astype(np.float64)
        h = h.reshape(-1, h.shape[-1])
        bn = model.layers[index]
        np.testing.assert_allclose(bn.buffers["moving_mean"], h.mean(0), rtol=1e-5)
        np.testing.assert_allclose(bn.buffers["moving_var"], h.var(0), rtol=1e-5)


def test_refresh_batchnorm_does_not_depend_on_the_batch_size():
    x = np.random.default_rng(1).random((37, 8, 8, 1), dtype=np.float32)
    one, many = small_cnn(), small_cnn()
    refresh_batchnorm(one, x, batch_size=37)
    refresh_batchnorm(many, x, batch_size=5)
    for key, value in one.buffers().items():
        np.testing.assert_allclose(many.buffers()[key], value, rtol=1e-5, atol=1e-7)


def test_after_a_refresh_inference_matches_training_mode_on_the_same_batch():
    """Training mode normalises by the batch's own moments; after a refresh on that
    batch the moving statistics are those moments, so both modes agree (up to the
    variance estimate's rounding)."""
    model = small_cnn()
    x = np.random.default_rng(2).random((40, 8, 8, 1), dtype=np.float32)
    refresh_batchnorm(model, x)
    inference = model.predict(x)
    training = model.forward(x, training=True)
    model.plan.clear()
    np.testing.assert_allclose(inference, training, atol=1e-4)


def test_refresh_batchnorm_checks_its_inputs():
    model = small_cnn()
    with pytest.raises(ValueError, match="expected x of shape"):
        refresh_batchnorm(model, np.zeros((3, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="at least one image"):
        refresh_batchnorm(model, np.zeros((0, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        refresh_batchnorm(model, np.zeros((2, 8, 8, 1), np.float32), batch_size=0)
    # a model without BatchNorm is left as it is
    plain = mlp(batchnorm=False)
    before = plain.get_weights()
    assert refresh_batchnorm(plain, np.zeros((4, 2), np.float32)) == 0
    for key, value in plain.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


class RecordParameters(Callback):
    def on_train_begin(self):
        self.seen = []

    def on_epoch_end(self, epoch, logs):
        self.seen.append(self.model.get_weights())


@pytest.mark.parametrize("start_epoch", [0, 2])
def test_weight_averaging_leaves_the_mean_of_the_epochs_from_start(start_epoch):
    x, y = spirals()
    model = mlp(seed=0)
    model.compile(tinynet.optimizers.Adam(1e-2), "cross_entropy")
    recorder, swa = RecordParameters(), WeightAveraging(start_epoch)
    model.fit(
        x, y, epochs=4, batch_size=32, seed=0, verbose=0, callbacks=[recorder, swa]
    )
    assert swa.averaged_epochs == list(range(start_epoch, 4))
    kept = recorder.seen[start_epoch:]
    for key, value in model.parameters().items():
        expected = np.mean([w[key] for w in kept], axis=0)
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
    # the BatchNorm statistics are the last epoch's, for refresh_batchnorm to redo
    for key, value in model.buffers().items():
        np.testing.assert_array_equal(value, recorder.seen[-1][key])


def test_weight_averaging_before_its_start_keeps_the_last_weights():
    x, y = spirals()
    model = mlp(seed=0)
    model.compile(tinynet.optimizers.Adam(1e-2), "cross_entropy")
    recorder, swa = RecordParameters(), WeightAveraging(start_epoch=5)
    model.fit(
        x, y, epochs=2, batch_size=32, seed=0, verbose=0, callbacks=[recorder, swa]
    )
    assert swa.averaged_epochs == []
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, recorder.seen[-1][key])
    with pytest.raises(ValueError, match="start_epoch"):
        WeightAveraging(-1)
