"""The plan's Conv2D -> BatchNorm -> ReLU (-> MaxPool2D) steps against the layers run
one by one (float64), a gradient check of each, and their kernels against the naive
twins in ``tinynet.kernels.reference``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import Sequential, optimizers, zoo
from tinynet.gradcheck import check_layer, numerical_gradient, rel_error
from tinynet.kernels import batchnorm, conv, reference, winograd_conv, winograd_products
from tinynet.layers import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
)
from tinynet.plan import ConvBNReLU, ConvBNReLUPool, few_taps_conv_bn_relu
from tinynet.plan.conv_pool import pools_by_winograd

GRAD_TOL = 1e-6
TIGHT = {"rtol": 1e-11, "atol": 1e-13}


def kinds(model: Sequential) -> list[str]:
    return [step.kind for step in model.plan]


def block(filters: int = 3, **conv_kwargs) -> list:
    return [Conv2D(filters, 3, **conv_kwargs), BatchNorm(momentum=0.8), ReLU()]


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        (block(), ["ConvBNReLU"]),
        ([*block(), MaxPool2D(2)], ["ConvBNReLUPool"]),
        ([*block(), MaxPool2D(3)], ["ConvBNReLU", "MaxPool2D"]),
        ([*block(), MaxPool2D(2, padding="same")], ["ConvBNReLU", "MaxPool2D"]),
        # The conv's own ReLU before BatchNorm is another model.
        (block(activation="relu"), ["Conv2DStep", "BatchNorm", "ReLU"]),
        (
            [Conv2D(3, 3), BatchNorm(), LeakyReLU()],
            ["Conv2DStep", "BatchNorm", "LeakyReLU"],
        ),  # fmt: skip
        ([Conv2D(3, 3), BatchNorm()], ["Conv2DStep", "BatchNorm"]),
        ([Conv2D(3, 3), ReLU(), MaxPool2D(2)], ["Conv2DStep", "ReLU", "MaxPool2D"]),
    ],
)
def test_conv_bn_relu_takes_only_linear_conv_batchnorm_relu(layers, expected):
    model = Sequential([*layers, Flatten()], input_shape=(8, 8, 4))
    assert kinds(model)[:-1] == expected


@pytest.mark.parametrize(
    ("kernel_size", "channels", "expected"),
    [((3, 3), 1, True), ((3, 3), 3, True), ((4, 4), 2, True), ((3, 3), 4, False)],
)
def test_blocks_with_few_taps_run_as_few_taps_steps(kernel_size, channels, expected):
    """Up to 32 taps (kh * kw * C) per output; a pool after the block is the pooled
    step's, whatever the taps."""
    taps = kernel_size[0] * kernel_size[1] * channels
    assert (taps <= few_taps_conv_bn_relu.MAX_TAPS) == expected
    layers = [Conv2D(4, kernel_size), BatchNorm(), ReLU()]
    model = Sequential([*layers, Flatten()], input_shape=(8, 8, channels))
    assert kinds(model)[0] == ("FewTapsConvBNReLU" if expected else "ConvBNReLU")
    model = Sequential([*block(), MaxPool2D(2)], input_shape=(8, 8, channels))
    assert kinds(model) == ["ConvBNReLUPool"]


def cnn(
    conv_kwargs: dict, shape: tuple, fuse: bool, dtype: str = "float64"
) -> Sequential:
    """Two blocks as in ``tinynet.zoo.mnist_cnn``: the first pooled, the second
    not and needing an input gradient (36 taps: im2col)."""
    return Sequential(
        [
            *block(4, **conv_kwargs),
            MaxPool2D(2),
            Conv2D(9, 3, padding="same", use_bias=False),
            BatchNorm(momentum=0.5, epsilon=1e-2),
            ReLU(),
            Flatten(),
            Dense(5, activation="softmax"),
        ],
        input_shape=shape,
        seed=1,
        dtype=dtype,
        fuse=fuse,
    )


def few_taps_cnn(
    conv_kwargs: dict, shape: tuple, fuse: bool, dtype: str = "float64"
) -> Sequential:
    """Two blocks with few taps: the first needs no input gradient (the
    step's one-pass backward), the second (2x2 over 6 channels, 24 taps) does."""
    return Sequential(
        [
            *block(6, **conv_kwargs),
            Conv2D(3, 2, use_bias=False),
            BatchNorm(momentum=0.5, epsilon=1e-2),
            ReLU(),
            Flatten(),
            Dense(5, activation="softmax"),
        ],
        input_shape=shape,
        seed=1,
        dtype=dtype,
        fuse=fuse,
    )


def train_both(fused: Sequential, spec: Sequential, x: np.ndarray, tol: dict) -> None:
    """Loss, output, every gradient, the running statistics and predictions after
    two training steps of ``fused`` and of ``spec`` (given ``fused``'s weights, each
    fed ``x`` in its own dtype) are equal to ``tol``."""
    spec.set_weights(fused.get_weights())
    y = np.random.default_rng(3).integers(0, 5, len(x))
    results = []
    for model in (fused, spec):
        model.compile(optimizer=optimizers.SGD(0.1))
        for _ in range(2):  # the second step sees updated weights and statistics
            loss, out = model.train_step(x.astype(model.dtype), y)
        grads = {k: v.copy() for k, v in model.gradients().items()}
        probs = model.predict(x.astype(model.dtype))
        results.append((loss, out, grads, model.get_weights(), probs))
    (loss, out, grads, weights, probs), ref = results
    np.testing.assert_allclose(loss, ref[0], **tol)
    np.testing.assert_allclose(out, ref[1], **tol)
    assert {"0.W", "1.gamma", "1.beta"} <= grads.keys()
    assert grads.keys() == ref[2].keys()
    for key in grads:
        # Relative to the largest entry: a conv bias's true gradient is 0 under
        # BatchNorm, so its entries are rounding noise.
        atol = tol["atol"] * max(1.0, np.abs(ref[2][key]).max())
        np.testing.assert_allclose(
            grads[key], ref[2][key], rtol=tol["rtol"], atol=atol, err_msg=key
        )
    # get_weights holds the running statistics too, and they moved.
    assert weights.keys() == ref[3].keys()
    for key in weights:
        np.testing.assert_allclose(weights[key], ref[3][key], **tol, err_msg=key)
    norm = fused.layers[1]
    assert not np.allclose(norm.buffers["moving_mean"], 0)
    np.testing.assert_allclose(probs, ref[4], **tol)


@pytest.mark.parametrize(
    ("conv_kwargs", "shape"),
    [
        ({}, (12, 11, 2)),  # an odd conv output: the pool drops a column
        ({"use_bias": False, "padding": "same"}, (9, 8, 1)),
        ({"strides": 2, "padding": "same"}, (17, 16, 3)),
        ({}, (10, 10, 8)),  # 3x3 over 8 channels: F(4x4, 3x3) in training
        ({}, (12, 12, 8)),  # 10x10 output: F(6x6, 3x3) in training, partial tiles
        ({}, (14, 14, 8)),  # 12x12: F(6x6), whole tiles
        ({"padding": "same"}, (2, 2, 8)),  # 2x2: F(2x2, 3x3)
        ({"padding": "same"}, (8, 8, 9)),  # F(4x4), padded tiles
    ],
)
def test_training_and_inference_equal_the_layers_one_by_one(conv_kwargs, shape):
    """To float64 rounding."""
    fused, spec = (cnn(conv_kwargs, shape, f) for f in (True, False))
    assert kinds(fused)[:2] == ["ConvBNReLUPool", "ConvBNReLU"]
    assert kinds(spec)[:4] == ["Conv2D", "BatchNorm", "ReLU", "MaxPool2D"]
    # Winograd in training needs an even conv output, at inference not.
    assert fused.plan.steps[0].winograd == (shape[2] >= 8)
    assert pools_by_winograd(fused.layers[0]) == (shape[2] >= 8)
    x = np.random.default_rng(2).standard_normal((6, *shape)) + 0.5
    train_both(fused, spec, x, TIGHT)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("conv_kwargs", "shape", "offset"),
    [
        ({"use_bias": False}, (11, 10, 1), 0.5),
        ({"strides": 2, "padding": "same"}, (9, 8, 2), 0.5),  # and a bias
        # Far from zero, as raw pixels are: the im2col columns are centred.
        ({"use_bias": False}, (8, 8, 1), 100.0),
    ],
)
def test_few_taps_steps_equal_the_layers_one_by_one(conv_kwargs, shape, offset, dtype):
    """A first block on images of 1 or 2 channels and a second with few taps,
    against the layers in float64: to its rounding (scaled by the offset, which
    the layers' BatchNorm subtracts back), or float32's. (At offset 100 the
    layers in float32 are 100x further from float64 than this step: 7e-4 against
    3e-6 on the first kernel's gradient.)"""
    fused = few_taps_cnn(conv_kwargs, shape, True, dtype)
    spec = few_taps_cnn(conv_kwargs, shape, False, "float64")
    assert kinds(fused)[:2] == ["FewTapsConvBNReLU"] * 2
    x = np.random.default_rng(2).standard_normal((6, *shape)) + offset
    if dtype == "float64":
        tol = {"rtol": 1e-11 * offset / 0.5, "atol": 1e-13 * offset / 0.5}
    else:
        tol = {"rtol": 1e-4, "atol": 1e-5}
    train_both(fused, spec, x, tol)


def test_few_taps_step_with_more_sums_than_registers_equals_the_layers(monkeypatch):
    """The backward for blocks whose ``(K + 1) * F`` sums would not fit
    ``batchnorm.relu_mask_products``: ``g`` written, then multiplied."""
    monkeypatch.setattr(batchnorm, "MAX_MASK_PRODUCTS", 0)
    fused = few_taps_cnn({"use_bias": False}, (11, 10, 1), True)
    spec = few_taps_cnn({"use_bias": False}, (11, 10, 1), False)
    x = np.random.default_rng(2).standard_normal((6, 11, 10, 1)) + 0.5
    train_both(fused, spec, x, {"rtol": 1e-11, "atol": 1e-13})


@pytest.mark.parametrize(
    ("shape", "algorithm"),
    [
        ((10, 10, 8), "F(4x4, 3x3)"),  # 8x8 output: 2.25 multiplications an output
        ((12, 12, 8), "F(6x6, 3x3)"),  # 10x10: 2.56 (F(4x4) 3.24, F(2x2) 4)
        ((26, 26, 8), "F(6x6, 3x3)"),  # 24x24: 1.78 (F(4x4) 2.25)
        ((16, 16, 8), "F(4x4, 3x3)"),  # 14x14: 2.94 either way; the smaller tile
        ((4, 4, 8), "F(2x2, 3x3)"),  # 2x2: 4 (F(4x4) 9)
        ((11, 11, 8), None),  # 9x9: im2col
        ((10, 10, 7), None),  # too few channels
    ],
)
def test_training_winograd_algorithm_by_output_size(shape, algorithm):
    step = cnn({}, shape, True).plan.steps[0]
    chosen = step.winograd_algorithm
    assert (chosen and chosen.name) == algorithm
    assert (algorithm or "im2col") in step.describe()


@pytest.mark.parametrize(
    "shape", [(10, 10, 8), (12, 12, 8), (14, 14, 8), (4, 4, 8)]
)  # F(4x4), F(6x6) with partial and whole tiles, F(2x2)
def test_float32_training_step_is_near_the_float64_layers(shape):
    """The fused float32 step (Winograd) against the layers one by one in float64:
    the output, loss and every gradient within 3e-5 of their largest magnitude
    (measured: <= 2e-6 with F(4x4, 3x3), <= 3e-6 with F(6x6, 3x3) (7e-6 on a 26x26
    input), <= 7e-7 with F(2x2, 3x3))."""
    fused, spec = cnn({}, shape, True, "float32"), cnn({}, shape, False)
    spec.set_weights({k: v.astype(np.float64) for k, v in fused.get_weights().items()})
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, *shape)) + 0.5
    y = rng.integers(0, 5, 6)
    results = []
    for model, inputs in ((fused, x.astype(np.float32)), (spec, x)):
        model.compile(optimizer=optimizers.SGD(0.1))
        loss, out = model.train_step(inputs, y)
        results.append((np.array(loss), out, model.gradients()))
    (loss, out, grads), (loss64, out64, grads64) = results
    assert out.dtype == np.float32
    pairs = [(loss, loss64), (out, out64)]
    pairs += [(grads[key], grads64[key]) for key in grads64]
    for got, want in pairs:
        scale = np.max(np.abs(want))
        if scale < 1e-12:  # a conv bias before BatchNorm, whose gradient is 0
            assert np.max(np.abs(got)) < 1e-6
            continue
        assert np.max(np.abs(got - want)) / scale < 3e-5


def test_winograd_training_in_chunks_of_one_image(monkeypatch):
    """Every image its own chunk: the batch statistics, summed chunk by chunk about
    each chunk's first row, and the chunked backward still equal the layers'."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    assert conv.images_per_chunk(6, 100) == 1
    test_training_and_inference_equal_the_layers_one_by_one({}, (10, 10, 8))


def test_speedrun_net_with_its_products_in_the_kernel_equals_the_layers(monkeypatch):
    """The speedrun net's Winograd block (12x12x8 -> 24 filters, pooled F(6x6, 3x3),
    with an input gradient) with the products kernel on, as it runs where Numba
    compiles for AVX-512: its ``M = V U`` and ``dU = V^T dM`` (24 wide) take the
    kernel, ``dV = dM U^T`` (8 wide) ``np.matmul``; the whole net to float64
    rounding against the layers one by one."""
    monkeypatch.setattr(winograd_products, "enabled", True)
    taken = []

    def recorded(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        taken.append((out.shape[2], winograd_products.takes_kernel(a, out)))
        return winograd_products.products(a, b, out)

    monkeypatch.setattr(winograd_conv, "products", recorded)
    rng = np.random.default_rng(2)
    x, y = rng.random((6, 28, 28, 1)), rng.integers(0, 10, 6)
    results = []
    for fuse in (True, False):
        model = zoo.mnist_speedrun(seed=0, dtype="float64")
        model.fuse = fuse
        model.compile(optimizer=optimizers.SGD(0.1))
        for _ in range(2):  # the second step sees updated weights and statistics
            loss, out = model.train_step(x, y)
        results.append((loss, out, model.gradients(), model.get_weights()))
        if fuse:
            step = model.plan.steps[1]
            assert step.kind == "ConvBNReLUPool"
            assert step.winograd_algorithm.name == "F(6x6, 3x3)"
    assert set(taken) == {(24, True), (8, False)}
    (loss, out, grads, weights), ref = results
    np.testing.assert_allclose(loss, ref[0], **TIGHT)
    np.testing.assert_allclose(out, ref[1], **TIGHT)
    for got, want in ((grads, ref[2]), (weights, ref[3])):
        assert got.keys() == want.keys()
        for key in want:
            atol = TIGHT["atol"] * max(1.0, np.abs(want[key]).max())
            np.testing.assert_allclose(
                got[key], want[key], rtol=TIGHT["rtol"], atol=atol, err_msg=key
            )


def winograd_cnn(fuse: bool) -> Sequential:
    """Two Winograd F(4x4) blocks (8x8 outputs over 8 channels); the second,
    pooled, needs an input gradient."""
    return Sequential(
        [
            *block(8),
            Conv2D(8, 3, padding="same"),
            BatchNorm(momentum=0.5),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(5, activation="softmax"),
        ],
        input_shape=(10, 10, 8),
        seed=1,
        dtype="float64",
        fuse=fuse,
    )


def test_what_a_user_holds_survives_later_steps():
    """The steps keep memory between calls (``z``, ``dz``, each thread's chunk of
    ``dz``); nothing handed back lives in it. Three
    training steps on different batches, with a prediction after each: every
    output, prediction and weight handed back along the way still equals, at the
    end, what the layers one by one gave at that time."""
    fused, spec = winograd_cnn(True), winograd_cnn(False)
    assert kinds(fused)[:2] == ["ConvBNReLU", "ConvBNReLUPool"]
    assert all(step.winograd for step in fused.plan.steps[:2])
    spec.set_weights(fused.get_weights())
    held: dict[bool, list] = {True: [], False: []}
    for model in (fused, spec):
        model.compile(optimizer=optimizers.SGD(0.1))
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.standard_normal((6, 10, 10, 8)) + 0.5
        y = rng.integers(0, 5, 6)
        for model in (fused, spec):
            loss, out = model.train_step(x, y)
            got = [out, model.predict(x), *model.get_weights().values()]
            if model is spec:  # the reference, as it was then
                got = [np.array(a, copy=True) for a in got]
            held[model is fused] += got
    assert len(held[True]) == len(held[False])
    for got, want in zip(held[True], held[False], strict=True):
        np.testing.assert_allclose(got, want, **TIGHT)


@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize(
    ("conv_kwargs", "shape", "algorithm"),
    [
        ({}, (7, 8, 2), None),
        ({"strides": 2, "padding": "same"}, (7, 8, 2), None),
        ({}, (12, 12, 8), "F(6x6, 3x3)"),  # partial tiles
        ({}, (10, 10, 8), "F(4x4, 3x3)"),
    ],
)
def test_step_passes_a_gradient_check(pool, conv_kwargs, shape, algorithm):
    """Central differences in float64 on the step: kernel, gamma and beta entry by
    entry, the input gradient against its scale. (BatchNorm's input gradient
    subtracts near-equal terms, so some entries are ~1e-6 of the largest and their
    central differences carry no relative accuracy: 1e-10 absolute error on them
    fails an entry-wise 1e-6. No conv bias: BatchNorm cancels it, its true gradient
    is 0; the test above covers it against the layers.)"""
    layers = [*block(use_bias=False, **conv_kwargs), *([MaxPool2D(2)] * pool)]
    model = Sequential(layers, input_shape=shape, seed=4, dtype="float64")
    (step,) = model.plan
    assert isinstance(step, ConvBNReLUPool if pool else ConvBNReLU)
    chosen = step.winograd_algorithm
    assert (chosen and chosen.name) == algorithm
    step.norm.params["gamma"][...] = [1.5, -0.7, 0.9]  # a negative scale too
    step.norm.params["beta"][...] = [0.1, 0.2, -0.3]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, *shape))
    errors = check_layer(step, x)
    assert set(errors) == {"x", "W", "gamma", "beta"}
    del errors["x"]
    assert max(errors.values()) < GRAD_TOL, errors

    dout = rng.standard_normal((3, *step.output_shape))
    step.forward(x, training=True)
    dx = step.backward(dout)
    numeric = numerical_gradient(
        lambda: float(np.sum(step.forward(x, training=True) * dout)), x
    )
    assert rel_error(dx, numeric, per="array") < 1e-8


@pytest.mark.parametrize("pool", [False, True])
def test_step_without_input_gradient_and_its_guards(pool):
    shape = (6, 6, 1)
    layers = [*block(name="c1"), *([MaxPool2D(2)] * pool)]
    model = Sequential(layers, input_shape=shape, seed=0, dtype="float64")
    (step,) = model.plan
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *shape))
    dout = rng.standard_normal((2, *step.output_shape))
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(dout)
    step.forward(x, training=True)
    with pytest.raises(ValueError, match="gradient of shape"):
        step.backward(dout[:1])
    dx = step.backward(dout)
    assert dx.shape == x.shape
    with_dx = {k: v.copy() for k, v in step.grads.items()}
    step.forward(x, training=True)
    assert step.backward(dout, need_dx=False) is None
    for key, grad in step.grads.items():
        # The bias's true gradient is 0 (BatchNorm cancels it): rounding noise.
        atol = 1e-14 if key == "b" else 0
        np.testing.assert_allclose(
            grad, with_dx[key], rtol=1e-13, atol=atol, err_msg=key
        )
    step.forward(x)  # inference keeps nothing
    with pytest.raises(RuntimeError, match="without a preceding"):
        step.backward(dout)
    with pytest.raises(ValueError, match=r"Conv2D 'c1'.*\(batch, 6, 6, 1\)"):
        step.forward(np.zeros((2, 5, 6, 1)))


# ----------------------------------------------------------------------- kernels
@st.composite
def conv_outputs(draw):
    """(z, dy, y, mean, inv_std, scale, beta, dtype): a conv output with ties, a
    gradient of its shape, a ReLU output to mask with, and per-channel vectors."""
    n, ho, wo, f = (draw(st.integers(lo, hi)) for lo, hi in [(1, 3), (2, 9), (2, 9),
                                                            (1, 19)])  # fmt: skip
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    z = rng.integers(-3, 4, (n, ho, wo, f)).astype(dtype)
    dy = rng.standard_normal(z.shape).astype(dtype)
    y = np.maximum(rng.standard_normal(z.shape), 0).astype(dtype)
    mean, inv_std, beta = (rng.standard_normal(f).astype(dtype) for _ in range(3))
    scale = rng.integers(-2, 3, f).astype(dtype)  # negative and zero scales too
    return z, dy, y, mean, np.abs(inv_std), scale, beta, dtype


def assert_close(fast, ref, dtype):
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)


@given(
    st.integers(1, 200),
    st.sampled_from([(9, 32), (1, 5), (4, 64), (12, 16)]),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
@settings(max_examples=30, deadline=None, derandomize=True)
def test_relu_mask_products_match_reference(rows, shape, dtype, seed):
    """``cols^T g`` and ``sum g`` of the masked gradient, rows past a block of
    ``SUM_BLOCK`` included; within float rounding of the sums of magnitudes."""
    taps, f = shape
    rng = np.random.default_rng(seed)
    dout, y = (rng.standard_normal((rows, f)).astype(dtype) for _ in range(2))
    cols = rng.standard_normal((rows, taps)).astype(dtype)
    start = rng.standard_normal((taps, f)), rng.standard_normal(f)
    fast = [a.copy() for a in start]
    ref = [a.copy() for a in start]
    batchnorm.relu_mask_products(dout, y, cols, *fast)
    reference.relu_mask_products(dout, y, cols, *ref)
    # float32 blocks of SUM_BLOCK rows: at most that many roundings of the sums.
    tol = 1e-12 if dtype == np.float64 else batchnorm.SUM_BLOCK * 2.0**-23
    g = np.abs(np.where(y > 0, dout, 0)).astype(np.float64)
    bounds = (np.abs(cols.T.astype(np.float64)) @ g, g.sum(axis=0))
    for got, expected, bound, first in zip(fast, ref, bounds, start, strict=True):
        np.testing.assert_array_less(
            np.abs(got - expected), tol * (bound + np.abs(first)) + 1e-300
        )


def test_relu_mask_products_refuses_more_accumulators_than_registers():
    f = batchnorm.MAX_MASK_PRODUCTS // 2
    dout = np.zeros((3, f), np.float32)
    with pytest.raises(ValueError, match="MAX_MASK_PRODUCTS"):
        batchnorm.relu_mask_products(
            dout, dout, np.zeros((3, 2), np.float32), np.zeros((2, f)), np.zeros(f)
        )


@given(conv_outputs())
@settings(max_examples=30, deadline=None, derandomize=True)
def test_kernels_match_reference(case):
    z, dy, y, mean, inv_std, scale, beta, dtype = case
    f = z.shape[3]
    z2, dy2, y2 = (a.reshape(-1, f) for a in (z, dy, y))
    start = np.random.default_rng(1).standard_normal((2, f))
    shift = mean.astype(np.float64)
    for fn in (batchnorm.channel_moments, reference.channel_moments):
        assert fn(z2, shift, start.copy()).dtype == np.float64
    # float32 sums in blocks of rows: within their rounding of the sums of |d|, d^2.
    tol = 1e-12 if dtype == np.float64 else 1e-5
    deviations = np.abs(z2 - shift)
    bound = reference.channel_moments(deviations, np.zeros(f), np.zeros((2, f)))
    error = batchnorm.channel_moments(z2, shift, start.copy()) - (
        reference.channel_moments(z2, shift, start.copy())
    )
    np.testing.assert_array_less(np.abs(error), tol * (bound + np.abs(start)) + 1e-300)

    def both(name, *args, out_shapes):
        outs = [
            getattr(module, name)(
                *args,
                *(np.full(s, 9 if d == np.uint8 else np.nan, d) for s, d in out_shapes),
            )
            for module in (batchnorm, reference)
        ]
        return outs

    fast, ref = both("normalize_relu", z2, mean, scale, beta, out_shapes=[
        (z2.shape, dtype)])  # fmt: skip
    assert_close(fast, ref, dtype)
    pooled = (z.shape[0], z.shape[1] // 2, z.shape[2] // 2, f)
    fast, ref = both(
        "normalize_relu_pool", z, mean, scale, beta,
        out_shapes=[(pooled, dtype), (pooled, np.uint8), (pooled, dtype)],
    )  # fmt: skip
    assert_close(fast[0], ref[0], dtype)
    np.testing.assert_array_equal(fast[1], ref[1])  # the same winners, ties included
    np.testing.assert_array_equal(fast[2], ref[2])
    out, winners, winner_z = fast
    dout = np.random.default_rng(2).standard_normal(pooled).astype(dtype)
    # The sums of the routed gradient, from the pooled arrays and the winners' z.
    routed = reference.unpool_relu(dout, out, winners, True, np.empty_like(z))
    pooled_sums = batchnorm.normalize_backward_sums(
        dout.reshape(-1, f), out.reshape(-1, f), winner_z.reshape(-1, f), mean,
        inv_std, start.copy(),
    )  # fmt: skip
    routed_sums = reference.normalize_backward_sums(
        routed.reshape(-1, f), None, z2, mean, inv_std, start.copy()
    )
    assert_close(pooled_sums, routed_sums, dtype)
    # An odd row or column dropped by the pool gets only the batch-norm terms.
    args = (dout, out, winners, z, mean, inv_std, scale, beta, mean * 0.5)
    dz = both("pooled_normalize_backward", *args, out_shapes=[(z.shape, dtype)])
    assert_close(*dz, dtype)

    masked, column_sums = [], []
    for module in (batchnorm, reference):
        column_sums.append(start[0].copy())
        out = np.full_like(dy2, np.nan)
        masked.append(module.relu_mask_sums(dy2, y2, out, column_sums[-1]))
    np.testing.assert_array_equal(masked[0], masked[1])
    assert_close(column_sums[0] - start[0], column_sums[1] - start[0], dtype)
    for mask in (y2, None):
        sums = [
            module.normalize_backward_sums(dy2, mask, z2, mean, inv_std, start.copy())
            for module in (batchnorm, reference)
        ]
        np.testing.assert_allclose(sums[0], sums[1], rtol=1e-12, atol=1e-12)
        args = (dy2, mask, z2, mean, inv_std, scale, beta, mean * 0.5)
        fast, ref = both("normalize_backward", *args, out_shapes=[(z2.shape, dtype)])
        assert_close(fast, ref, dtype)
        # In place over the gradient, as the pooled step runs it.
        in_place = dy2.copy()
        batchnorm.normalize_backward(in_place, *args[1:], in_place)
        np.testing.assert_array_equal(in_place, fast)
