"""The execution plan: which layers each composite step takes, and every composite
step computing what its layers compute one by one, gradients included (float64)."""

import numpy as np
import pytest

from tinynet import Sequential, gradcheck, optimizers
from tinynet.gradcheck import check_layer
from tinynet.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
)
from tinynet.plan import (
    ConvPool,
    DenseDropout,
    LayerStep,
    LossStep,
    SigmoidCrossEntropyStep,
    SoftmaxCrossEntropyStep,
)
from tinynet.plan.conv_pool import pools_directly

GRAD_TOL = 1e-6


def kinds(model: Sequential) -> list[str]:
    return [step.kind for step in model.plan]


def assert_covers_every_layer_once(model: Sequential) -> None:
    covered = [layer for step in model.plan for layer in step.layers]
    if model.plan.loss_step is not None:
        covered += model.plan.loss_step.layers
    assert covered == model.layers


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            [Conv2D(2, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(3)],
            ["ConvPool", "Flatten", "DenseStep"],
        ),
        ([Conv2D(2, 3), MaxPool2D(2)], ["ConvPool"]),  # linear conv
        ([Conv2D(2, 3, activation="tanh"), MaxPool2D(2)], ["Conv2D", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(3)], ["Conv2DStep", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(2, strides=1)], ["Conv2DStep", "MaxPool2D"]),
        ([Conv2D(2, 3), MaxPool2D(2, padding="same")], ["Conv2DStep", "MaxPool2D"]),
        ([Conv2D(2, 3, activation="relu"), AvgPool2D(2)], ["Conv2DStep", "AvgPool2D"]),
        ([MaxPool2D(2), Conv2D(2, 3)], ["MaxPool2D", "Conv2DStep"]),
    ],
)
def test_conv_pool_takes_only_conv_then_2x2_max_pool(layers, expected):
    model = Sequential(layers, input_shape=(9, 9, 2), seed=0)
    assert kinds(model) == expected
    assert_covers_every_layer_once(model)
    spec = Sequential(
        [type(la)(**la.get_config()) for la in layers],
        input_shape=(9, 9, 2),
        fuse=False,
    )
    assert all(isinstance(step, LayerStep) for step in spec.plan)


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (
            [Dense(4, activation="relu"), Dropout(0.2), Dense(3)],
            ["DenseDropout", "DenseStep"],
        ),
        # linear: y hides the mask
        ([Dense(4), Dropout(0.2)], ["DenseStep", "Dropout"]),
        ([Dense(4, activation="tanh"), Dropout(0.2)], ["DenseStep", "Dropout"]),
        ([Dense(4, activation="relu"), Dropout(0.0)], ["DenseStep", "Dropout"]),
        ([Dense(4), ReLU(), Dropout(0.2)], ["DenseStep", "ReLU", "Dropout"]),
        (
            [Dropout(0.2), Dense(4, activation="relu"), Dense(2)],
            ["Dropout", "DenseStep", "DenseStep"],
        ),
    ],
)
def test_dense_dropout_takes_only_dense_relu_then_dropout(layers, expected):
    model = Sequential(layers, input_shape=(5,), seed=0)
    assert kinds(model) == expected
    assert_covers_every_layer_once(model)


def convnet(conv_kwargs, shape, filters, kernel, fuse) -> Sequential:
    return Sequential(
        [
            Conv2D(filters, 3, activation="relu", **conv_kwargs),
            MaxPool2D(2),
            Conv2D(4, kernel, **conv_kwargs),  # linear, and it needs an input gradient
            MaxPool2D(2),
            Flatten(),
            Dropout(0.3),
            Dense(5, activation="softmax"),
        ],
        input_shape=shape,
        seed=1,
        dtype="float64",
        fuse=fuse,
    )


def one_step(model: Sequential, x, y, seed: int = 3):
    """Predictions, then loss, outputs and gradients of one training step."""
    probs = model.predict(x)
    for layer in model.layers:
        layer.rng = np.random.default_rng(seed)  # the same dropout masks
    loss, out = model.train_step(x, y)
    return loss, out, {k: v.copy() for k, v in model.gradients().items()}, probs


@pytest.mark.parametrize(
    ("conv_kwargs", "shape", "filters", "kernel", "winograd", "direct"),
    [
        # odd conv outputs: a row or column dropped
        ({}, (12, 11, 2), 3, 2, False, [False, False]),
        ({"padding": "same"}, (9, 8, 1), 3, 2, False, [False, False]),
        ({"strides": 2, "padding": "same"}, (17, 16, 3), 3, 2, False, [False, False]),
        # the second conv: 3x3 over 8 channels
        ({}, (14, 13, 2), 8, 3, True, [False, False]),
        ({"padding": "same"}, (10, 9, 1), 9, 3, True, [False, False]),
        # one input channel: the first conv direct, and the second, with an input
        # gradient, when it too has one
        ({}, (13, 12, 1), 3, 2, False, [True, False]),
        ({}, (15, 12, 1), 1, 2, False, [True, True]),
    ],
)
def test_conv_pool_training_step_equals_the_layers_one_by_one(
    conv_kwargs, shape, filters, kernel, winograd, direct
):
    """Same outputs, loss and gradients for every parameter, to float64 rounding:
    the fused steps add in another order or compute by Winograd's algorithm."""
    fused, spec = (
        convnet(conv_kwargs, shape, filters, kernel, f) for f in (True, False)
    )
    assert kinds(fused)[:2] == ["ConvPool", "ConvPool"]
    assert fused.plan.steps[1].winograd == winograd
    assert [pools_directly(step.conv) for step in fused.plan.steps[:2]] == direct
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((7, *shape)), rng.integers(0, 5, 7)
    results = []
    for model in (fused, spec):
        model.set_weights(fused.get_weights())
        model.compile(optimizer=optimizers.SGD(0.0))
        results.append(one_step(model, x, y))
    (loss, out, grads, probs), (loss_ref, out_ref, grads_ref, probs_ref) = results
    tight = {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(loss, loss_ref, **tight)
    np.testing.assert_allclose(out, out_ref, **tight)
    np.testing.assert_allclose(probs, probs_ref, **tight)
    assert grads.keys() == grads_ref.keys() == {"0.W", "0.b", "2.W", "2.b", "6.W",
                                                "6.b"}  # fmt: skip
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_ref[key], **tight, err_msg=key)


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("channels", [1, 2, 8])  # direct, im2col, Winograd
def test_conv_pool_passes_a_gradient_check(activation, channels):
    """Central differences in float64 on the step itself: input, kernel and bias."""
    # Small on purpose: the rounding error of a central difference grows with the
    # loss it differences, and on larger problems swamps the smallest entries of dx.
    shape = (6, 7, channels)
    model = Sequential(
        [Conv2D(3, 3, activation=activation), MaxPool2D(2)],
        input_shape=shape, seed=4, dtype="float64",
    )  # fmt: skip
    (step,) = model.plan
    assert isinstance(step, ConvPool) and step.winograd == (channels == 8)
    x = np.random.default_rng(6).standard_normal((2, *shape))
    errors = check_layer(step, x)
    assert set(errors) == {"x", "W", "b"}
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("channels", [1, 8])  # direct dW from the pool, Winograd
def test_conv_pool_without_input_gradient_gives_the_same_weight_gradients(channels):
    shape = (6, 7, channels)
    model = Sequential(
        [Conv2D(3, 3, activation="relu"), MaxPool2D(2)],
        input_shape=shape, seed=4, dtype="float64",
    )  # fmt: skip
    (step,) = model.plan
    x = np.random.default_rng(6).standard_normal((2, *shape))
    dout = np.random.default_rng(7).standard_normal((2, *step.output_shape))
    step.forward(x, training=True)
    assert step.backward(dout, need_dx=False) is None
    without = {k: v.copy() for k, v in step.grads.items()}
    step.forward(x, training=True)
    assert step.backward(dout).shape == x.shape
    for key, grad in step.grads.items():
        np.testing.assert_allclose(without[key], grad, rtol=1e-12, err_msg=key)


def test_conv_pool_keeps_nothing_in_inference_and_guards_backward():
    model = Sequential(
        [Conv2D(2, 3, activation="relu", name="c1"), MaxPool2D(2)],
        input_shape=(6, 6, 1), seed=0,
    )  # fmt: skip
    (step,) = model.plan
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float32)
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(np.ones((2, 2, 2, 2), np.float32))
    step.forward(x, training=True)
    with pytest.raises(ValueError, match="gradient of shape"):
        step.backward(np.ones((2, 3, 3, 2), np.float32))
    step.forward(x, training=False)
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(np.ones((2, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'c1'.*\(batch, 6, 6, 1\)"):
        step.forward(np.zeros((2, 5, 6, 1), np.float32))


# --------------------------------------------------------------- Conv2D on its own
@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize(
    ("conv_kwargs", "shape"),
    [({}, (7, 6, 2)), ({"strides": 2, "padding": "same"}, (9, 8, 3))],
)
def test_conv2d_step_equals_the_layer_and_passes_a_gradient_check(
    activation, conv_kwargs, shape
):
    layer = Conv2D(3, 3, activation=activation, **conv_kwargs)
    # Not the output layer, which would hand its activation to the loss step.
    model = Sequential([layer, Flatten()], input_shape=shape, seed=4, dtype="float64")
    step = model.plan.steps[0]
    assert step.kind == "Conv2DStep" and step.layers == (layer,)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, *shape))
    dout = rng.standard_normal((2, *layer.output_shape))
    for _ in range(2):  # the second step reuses the im2col workspace
        y = step.forward(x, training=True)
        dx = step.backward(dout)
        grads = {k: v.copy() for k, v in step.grads.items()}
        np.testing.assert_allclose(y, layer.forward(x, training=True), rtol=1e-13)
        np.testing.assert_allclose(dx, layer.backward(dout), rtol=1e-12, atol=1e-14)
        for key, grad in layer.grads.items():
            np.testing.assert_allclose(grads[key], grad, rtol=1e-12, err_msg=key)
    if activation is None:  # with the ReLU, equal to the gradient-checked layer
        errors = check_layer(step, x)
        assert set(errors) == {"x", "W", "b"}
        assert max(errors.values()) < GRAD_TOL, errors
    step.forward(x)  # inference keeps nothing
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(dout)


# ------------------------------------------------------------ Dense(relu) + Dropout
def mlp(dtype: str, fuse: bool) -> Sequential:
    return Sequential(
        [
            Flatten(),
            Dense(12, activation="relu"),
            Dropout(0.3),
            Dense(9, activation="relu", use_bias=False),
            Dropout(0.6),
            Dense(4, activation="softmax"),
        ],
        input_shape=(3, 5),
        seed=1,
        dtype=dtype,
        fuse=fuse,
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dense_dropout_training_equals_the_layers_one_by_one(dtype):
    """Bit for bit up to the loss: the same operations on the same numbers, and the
    same masks from the same generator."""
    fused, spec = mlp(dtype, True), mlp(dtype, False)
    assert kinds(fused)[1:3] == ["DenseDropout", "DenseDropout"]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 3, 5)).astype(dtype)
    y = rng.integers(0, 4, 16)
    weights = fused.get_weights()
    results = []
    for model in (fused, spec):
        model.set_weights(weights)
        model.compile(optimizer="adam")
        for layer in model.layers:
            layer.rng = np.random.default_rng(3)
        losses = [model.train_step(x, y)[0] for _ in range(3)]  # 3 masks, 3 updates
        results.append((losses, model.get_weights(), model.predict(x)))
    (losses, after, probs), (losses_ref, after_ref, probs_ref) = results
    # The loss steps differ (softmax + CE on the logits, or via the probabilities).
    tol = {"rtol": 1e-5 if dtype == "float32" else 1e-12}
    np.testing.assert_allclose(losses, losses_ref, **tol)
    np.testing.assert_allclose(probs, probs_ref, **tol)
    for key in after:
        np.testing.assert_allclose(after[key], after_ref[key], **tol, err_msg=key)
        assert not np.array_equal(after[key], weights[key]), key


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_dropout_passes_a_gradient_check(use_bias):
    dense = Dense(6, activation="relu", use_bias=use_bias)
    model = Sequential([dense, Dropout(0.4)], input_shape=(5,), seed=4, dtype="float64")
    (step,) = model.plan
    assert isinstance(step, DenseDropout)
    # Away from the ReLU's kink, where a central difference is not a derivative.
    x = np.random.default_rng(6).standard_normal((4, 5))
    z = x @ dense.params["W"] + (dense.params["b"] if use_bias else 0)
    x = x[np.all(np.abs(z) > 1e-3, axis=1)]
    assert len(x) >= 3
    errors = check_layer(step, x)
    assert set(errors) == {"x", "W"} | ({"b"} if use_bias else set())
    assert max(errors.values()) < GRAD_TOL, errors
    step.rng = np.random.default_rng(0)
    y = step.forward(x, training=True)
    assert 0 < np.count_nonzero(y) < y.size
    assert step.backward(np.ones_like(y), need_dx=False) is None


def test_dense_dropout_keeps_nothing_in_inference_and_guards_backward():
    dense, drop = Dense(6, activation="relu", name="d1"), Dropout(0.5)
    model = Sequential([dense, drop], input_shape=(5,), seed=0)
    (step,) = model.plan
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(step.forward(x), dense.forward(x))  # identity
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(np.ones((3, 6), np.float32))
    step.forward(x, training=True)
    with pytest.raises(ValueError, match=r"d1.*gradient of shape"):
        step.backward(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'd1'.*\(batch, 5\)"):
        step.forward(np.zeros((3, 4), np.float32), training=True)


# ----------------------------------------------------- output activation + its loss
def classifier(last, fuse: bool, units: int = 4) -> Sequential:
    return Sequential(
        [Dense(5, activation="tanh"), Dense(units), last],
        input_shape=(3,),
        seed=1,
        dtype="float64",
        fuse=fuse,
    )


@pytest.mark.parametrize(
    ("last", "loss", "make_target"),
    [
        (Softmax, "cross_entropy", lambda rng: rng.integers(0, 4, 6)),
        (Softmax, "cross_entropy", lambda rng: rng.dirichlet(np.ones(4), 6)),
        (Sigmoid, "binary_crossentropy", lambda rng: rng.random((6, 4))),
    ],
)
def test_output_loss_step_equals_the_activation_then_the_loss(last, loss, make_target):
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((6, 3)), make_target(rng)
    results = []
    for fuse in (True, False):
        model = classifier(last(), fuse)
        model.compile(optimizer=optimizers.SGD(0.0), loss=loss)
        assert model.plan.loss_step.layers == (model.layers[-1],)
        value, out = model.train_step(x, target)
        results.append((value, out, model.gradients(), model.evaluate(x, target)))
    (value, out, grads, ev), (value_ref, out_ref, grads_ref, ev_ref) = results
    np.testing.assert_allclose(value, value_ref, rtol=1e-12)
    np.testing.assert_allclose(out, out_ref, rtol=1e-12)
    np.testing.assert_allclose(ev["loss"], ev_ref["loss"], rtol=1e-12)
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_ref[key], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_training_step_gradients_match_finite_differences(fuse, smoothing):
    """Every parameter's gradient of the whole training step, the output activation
    and loss step included, against centred differences of the loss."""
    from tinynet.layers import BatchNorm
    from tinynet.losses import SoftmaxCrossEntropy

    rng = np.random.default_rng(3)
    model = Sequential(
        [Dense(5, use_bias=False), BatchNorm(), ReLU(), Dense(4), Softmax()],
        input_shape=(3,), seed=1, dtype="float64", fuse=fuse,
    )  # fmt: skip
    model.compile(optimizers.SGD(0.0), loss=SoftmaxCrossEntropy(smoothing))
    x, y = rng.standard_normal((6, 3)), rng.integers(0, 4, size=6)

    def loss() -> float:
        return model.plan.loss_and_gradients(x, y)[0]

    model.train_step(x, y)
    analytic = {k: v.copy() for k, v in model.gradients().items()}
    for key, param in model.parameters().items():
        numeric = gradcheck.numerical_gradient(loss, param)
        assert gradcheck.rel_error(analytic[key], numeric) < GRAD_TOL, key


def test_spec_plan_runs_every_layer_on_its_own():
    model = mlp("float32", fuse=False)
    model.compile()
    assert kinds(model) == ["Flatten", "Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert type(model.plan.loss_step).__name__ == "LossStep"
    assert "fuse=False" in model.summary(print_fn=None)
    model.fuse = True
    assert "DenseDropout" in model.summary(print_fn=None)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize(
    ("last", "loss", "make_target"),
    [
        (Softmax, "cross_entropy", lambda rng: rng.integers(0, 4, 5)),
        (Softmax, "cross_entropy", lambda rng: rng.dirichlet(np.ones(4), 5)),
        (Sigmoid, "binary_crossentropy", lambda rng: rng.random((5, 4))),
    ],
)
def test_loss_steps_pass_a_gradient_check(fuse, last, loss, make_target):
    """dL/dz of each loss step (fused or the activation then the loss) against
    centred differences of its value, z being the logits."""
    model = classifier(last(), fuse)
    model.compile(loss=loss)
    step = model.plan.loss_step
    fused = {Softmax: SoftmaxCrossEntropyStep, Sigmoid: SigmoidCrossEntropyStep}[last]
    assert type(step) is (fused if fuse else LossStep)
    rng = np.random.default_rng(4)
    z, target = rng.standard_normal((5, 4)) * 2, make_target(rng)
    _, dz = step.value_and_grad(z, target)
    numeric = gradcheck.numerical_gradient(lambda: step.value_and_grad(z, target)[0], z)
    assert gradcheck.rel_error(dz, numeric) < GRAD_TOL
