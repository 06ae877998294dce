"""Sequential: building, naming, shapes, predict, summary, whole-model gradients."""

import numpy as np
import pytest

from tinynet.layers.activations import ReLU, Softmax
from tinynet.layers.dense import Dense
from tinynet.layers.dropout import Dropout
from tinynet.layers.normalization import BatchNorm
from tinynet.layers.reshape import Flatten
from tinynet.model import Sequential


def small_mlp(seed=0, dtype="float32"):
    return Sequential(
        [
            Flatten(),
            Dense(8, activation="relu"),
            Dropout(0.2),
            Dense(3, activation="softmax"),
        ],
        input_shape=(2, 3),
        seed=seed,
        dtype=dtype,
    )


def test_output_activation_becomes_its_own_layer_and_names_are_unique():
    model = small_mlp()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Flatten", "Dense", "Dropout", "Dense", "Softmax"]
    names = [layer.name for layer in model.layers]
    assert names == ["flatten", "dense", "dropout", "dense_1", "dense_1_softmax"]
    assert model.layers[1].get_config()["activation"] == "relu"  # hidden: kept
    assert model.layers[3].get_config()["activation"] is None  # output: split off
    assert model.plan.loss_step is None  # no loss compiled yet


def test_shape_mistake_fails_at_definition_naming_layer_and_shapes():
    with pytest.raises(ValueError) as err:
        Sequential([Dense(4)], input_shape=(28, 28))
    message = str(err.value)
    assert "Dense" in message and "28" in message


def test_duplicate_layer_object_and_non_layer_are_refused():
    d = Dense(2)
    with pytest.raises(ValueError, match="twice"):
        Sequential([d, d], input_shape=(2,))
    with pytest.raises(TypeError, match="not a Layer"):
        Sequential([Dense(2), "relu"], input_shape=(2,))


def test_same_seed_same_weights_bit_for_bit():
    a, b, c = small_mlp(seed=7), small_mlp(seed=7), small_mlp(seed=8)
    for key, value in a.parameters().items():
        assert np.array_equal(value, b.parameters()[key])
    assert not np.array_equal(a.parameters()["1.W"], c.parameters()["1.W"])


def test_parameters_are_keyed_by_layer_index():
    model = small_mlp()
    assert sorted(model.parameters()) == ["1.W", "1.b", "3.W", "3.b"]
    assert model.count_params() == 6 * 8 + 8 + 8 * 3 + 3


def test_predict_returns_probabilities_batched_like_unbatched():
    model = small_mlp()
    x = np.random.default_rng(0).random((50, 2, 3), dtype=np.float32)
    probs = model.predict(x, batch_size=7)
    assert probs.shape == (50, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # BLAS may round differently for another batch size: one float32 ulp
    np.testing.assert_allclose(probs, model.predict(x, batch_size=100), rtol=1e-6)
    assert_no_layer_keeps_a_cache(model)


@pytest.mark.parametrize(
    ("x", "error", "fragment"),
    [
        (np.zeros((4, 3, 2)), ValueError, "(N, 2, 3)"),
        (np.zeros((2, 3)), ValueError, "batch axis"),
        (np.full((1, 2, 3), np.nan), ValueError, "NaN"),
        (np.array([[["a"] * 3] * 2]), TypeError, "numeric"),
    ],
)
def test_predict_rejects_bad_input_with_clear_message(x, error, fragment):
    with pytest.raises(error) as err:
        small_mlp().predict(x)
    assert fragment in str(err.value)


def test_inputs_whose_sum_overflows_are_still_accepted_when_finite():
    x = np.full((1, 2, 3), np.finfo(np.float32).max, np.float32)
    np.testing.assert_array_equal(small_mlp().check_inputs(x), x)
    x[0, 1, 2] = -np.inf  # and an inf among them is still found
    with pytest.raises(ValueError, match="NaN or infinite"):
        small_mlp().check_inputs(x)


def test_summary_lists_every_layer_and_the_totals():
    model = Sequential([Dense(4), BatchNorm(), ReLU(), Dense(2)], input_shape=(3,))
    text = model.summary(print_fn=None)
    for name in (
        "dense (Dense)",
        "batch_norm (BatchNorm)",
        "re_lu (ReLU)",
        "dense_1 (Dense)",
    ):
        assert name in text
    assert "(None, 4)" in text
    trainable = 3 * 4 + 4 + 2 * 4 + 4 * 2 + 2
    assert f"Trainable params: {trainable:,}" in text
    assert "Non-trainable params: 8" in text


def test_set_weights_checks_everything_before_changing_anything():
    model = small_mlp()
    before = model.get_weights()
    bad = dict(before)
    bad["4.W"] = np.zeros((2, 2), np.float32)
    bad["1.W"] = before["1.W"] + 1
    with pytest.raises(ValueError, match="4.W"):
        model.set_weights(bad)
    np.testing.assert_array_equal(model.parameters()["1.W"], before["1.W"])


@pytest.mark.parametrize("first", ["dense", "conv", "batch_norm"])
def test_first_trained_layer_skips_its_input_gradient_only(first):
    """``backward(dout, need_dx=False)`` returns None and fills the same gradients;
    the plan asks it of the first layer with parameters, and of no other."""
    from tinynet.layers.conv import Conv2D

    head = {
        "conv": [Conv2D(3, 3), Flatten()],
        "dense": [Flatten(), Dense(6)],
        "batch_norm": [Flatten(), BatchNorm()],
    }[first]
    model = Sequential(
        [*head, ReLU(), Dense(4), Softmax()], input_shape=(5, 5, 1), seed=2
    )
    trained = model.layers[0 if first == "conv" else 1]
    assert model.plan.steps[model.plan.first_trained].layers == (trained,)
    rng = np.random.default_rng(0)
    x = rng.random((8, 5, 5, 1), dtype=np.float32)
    if first != "conv":
        x = model.layers[0].forward(x)
    dout = rng.standard_normal((8, *trained.output_shape)).astype(np.float32)
    trained.forward(x, training=True)
    assert trained.backward(dout, need_dx=False) is None
    skipped = {k: v.copy() for k, v in trained.grads.items()}
    assert trained.backward(dout).shape == x.shape
    for key, grad in trained.grads.items():
        np.testing.assert_array_equal(skipped[key], grad)


def assert_no_layer_keeps_a_cache(model: Sequential) -> None:
    """Every layer's backward refuses to run: nothing was kept for it."""
    for layer in model.layers:
        with pytest.raises(RuntimeError, match="without a preceding"):
            layer.backward(np.ones((1, *layer.output_shape), model.dtype))
