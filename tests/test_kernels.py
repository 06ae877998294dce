"""Numba kernels against their NumPy twins in ``tinynet.kernels.reference``.

Hypothesis draws batch size, spatial size, channels, window size, strides and padding
(odd sizes and 1x1 windows included) and a dtype; the fast kernel must reproduce the
reference: exactly where both only copy or compare numbers (im2col, max-pool), to
float rounding where they add in a different order.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinynet.kernels import (
    conv,
    convpool,
    direct_conv_pool,
    dropout,
    pool,
    reference,
    window_geometry,
    winograd,
    winograd43,
    winograd63,
    winograd_conv,
)

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
# Relative to the largest magnitude of the compared arrays.
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@st.composite
def geometries(draw, max_window=4):
    """(n, h, w, c, kh, kw, sh, sw, padding, dtype) with at least one output."""
    kh = draw(st.integers(1, max_window))
    kw = draw(st.integers(1, max_window))
    padding = draw(st.sampled_from(["valid", "same"]))
    low_h, low_w = (kh, kw) if padding == "valid" else (1, 1)
    return (
        draw(st.integers(1, 3)),
        draw(st.integers(low_h, 9)),
        draw(st.integers(low_w, 9)),
        draw(st.integers(1, 5)),
        kh,
        kw,
        draw(st.integers(1, 3)),
        draw(st.integers(1, 3)),
        padding,
        draw(st.sampled_from([np.float32, np.float64])),
    )


def assert_close(fast, ref, dtype):
    assert fast.dtype == ref.dtype == dtype
    assert fast.shape == ref.shape
    scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
    err = float(np.max(np.abs(fast - ref), initial=0.0)) / scale
    assert err < TOL[dtype], f"max relative difference {err}"


def setup(geometry, seed, cout=3):
    n, h, w, c, kh, kw, sh, sw, padding, dtype = geometry
    ho, pt = window_geometry(h, kh, sh, padding)
    wo, pl = window_geometry(w, kw, sw, padding)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    weights = rng.standard_normal((kh, kw, c, cout)).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype)
    return x, weights, bias, (kh, kw, sh, sw, pt, pl, ho, wo), rng


# ------------------------------------------------------------------ geometry
@pytest.mark.parametrize(
    ("size", "window", "stride", "padding", "expected"),
    [
        (28, 3, 1, "valid", (26, 0)),
        (26, 2, 2, "valid", (13, 0)),
        (13, 2, 2, "valid", (6, 0)),  # the last row is dropped
        (7, 3, 2, "same", (4, 1)),  # total padding 2: 1 before, 1 after
        (8, 3, 2, "same", (4, 0)),  # total 1: the extra one goes after
        (5, 1, 1, "same", (5, 0)),
        (2, 5, 1, "same", (2, 2)),  # total 4
    ],
)
def test_window_geometry_follows_keras(size, window, stride, padding, expected):
    assert window_geometry(size, window, stride, padding) == expected


@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4))
@settings(max_examples=60, deadline=None, derandomize=True)
def test_same_padding_covers_the_input(size, window, stride):
    out, before = window_geometry(size, window, stride, "same")
    total = max((out - 1) * stride + window - size, 0)
    assert out == -(-size // stride)
    assert 0 <= before <= total - before  # the larger half goes after
    assert before < window  # every window sees at least one real entry


def test_window_geometry_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding"):
        window_geometry(5, 3, 1, "full")


# --------------------------------------------------------------- convolution
@given(geometries(), st.integers(0, 2**16))
@PROPERTY_SETTINGS
def test_im2col_and_col2im_match_reference(geometry, seed):
    x, _, _, args, rng = setup(geometry, seed)
    kh, kw, _, _, _, _, ho, wo = args
    n, c, dtype = x.shape[0], x.shape[3], x.dtype.type
    shape = (n * ho * wo, kh * kw * c)
    fast = conv.im2col(x, *args, np.full(shape, np.nan, dtype))
    ref = reference.im2col(x, *args, np.full(shape, np.nan, dtype))
    np.testing.assert_array_equal(fast, ref)  # a pure copy: bit-identical

    cols = rng.standard_normal(shape).astype(dtype)
    fast = conv.col2im(cols, *args, np.full(x.shape, np.nan, dtype))
    ref = reference.col2im(cols, *args, np.full(x.shape, np.nan, dtype))
    assert_close(fast, ref, dtype)


@given(geometries(), st.integers(0, 2**16), st.booleans(), st.booleans())
@PROPERTY_SETTINGS
def test_conv2d_forward_and_backward_match_reference(geometry, seed, use_bias, relu):
    x, weights, bias, args, rng = setup(geometry, seed)
    bias = bias if use_bias else None
    kh, kw, sh, sw, pt, pl, ho, wo = args
    dtype = x.dtype.type
    shape = (x.shape[0] * ho * wo, kh * kw * x.shape[3])
    cols = np.full(shape, np.nan, dtype)
    y, cols = conv.conv2d_forward(x, weights, bias, sh, sw, pt, pl, ho, wo, cols, relu)
    ref_cols = np.full(shape, np.nan, dtype)
    y_ref, ref_cols = reference.conv2d_forward(
        x, weights, bias, sh, sw, pt, pl, ho, wo, ref_cols, relu
    )
    if relu:
        assert np.all(y >= 0)
    np.testing.assert_array_equal(cols, ref_cols)
    assert_close(y, y_ref, dtype)

    dout = rng.standard_normal(y.shape).astype(dtype)
    mask = y if relu else None
    fast = conv.conv2d_backward(dout, x, cols, weights, sh, sw, pt, pl, True, mask)
    ref = reference.conv2d_backward(dout, x, cols, weights, sh, sw, pt, pl, True, mask)
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, dtype)
    no_dx = conv.conv2d_backward(dout, x, cols, weights, sh, sw, pt, pl, False, mask)
    assert no_dx[0] is None
    for got, expected in zip(no_dx[1:], ref[1:], strict=True):
        assert_close(got, expected, dtype)


@pytest.mark.parametrize(("window", "cout"), [(3, 3), (1, 16)])
def test_conv2d_in_several_chunks_matches_reference(monkeypatch, window, cout):
    # A chunk size of one image makes the drivers loop; the result must not change.
    # (1, 16): more filters than im2col columns, dW is computed transposed.
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    assert conv.images_per_chunk(5, 1000) == 1
    geometry = (5, 7, 6, 3, window, window, 1, 2, "same", np.float64)
    x, weights, bias, args, rng = setup(geometry, 7, cout)
    kh, kw, sh, sw, pt, pl, ho, wo = args
    cols = np.full((5 * ho * wo, kh * kw * 3), np.nan)
    y, cols = conv.conv2d_forward(x, weights, bias, sh, sw, pt, pl, ho, wo, cols, True)
    y_ref, _ = reference.conv2d_forward(
        x, weights, bias, sh, sw, pt, pl, ho, wo, np.empty_like(cols), True
    )
    assert_close(y, y_ref, np.float64)
    dout = rng.standard_normal(y.shape)
    fast = conv.conv2d_backward(dout, x, cols, weights, sh, sw, pt, pl, True, y)
    ref = reference.conv2d_backward(dout, x, cols, weights, sh, sw, pt, pl, True, y)
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, np.float64)


@given(st.integers(1, 50), st.integers(1, 9), st.sampled_from([np.float32, np.float64]))
@PROPERTY_SETTINGS
def test_add_bias_matches_reference(rows, width, dtype):
    rng = np.random.default_rng(rows * 10 + width)
    y = rng.standard_normal((rows, width)).astype(dtype)
    b = rng.standard_normal(width).astype(dtype)
    expected = reference.add_bias(y.copy(), b)
    got = conv.add_bias(y, b)
    assert got is y  # in place
    np.testing.assert_array_equal(got, expected)


@given(st.integers(1, 50), st.integers(1, 9), st.sampled_from([np.float32, np.float64]))
@PROPERTY_SETTINGS
def test_fused_relu_kernels_match_reference(rows, width, dtype):
    rng = np.random.default_rng(rows * 10 + width)
    y = rng.standard_normal((rows, width)).astype(dtype)
    b = rng.standard_normal(width).astype(dtype)
    expected = reference.bias_relu(y.copy(), b)
    got = conv.bias_relu(y, b)
    assert got is y  # in place
    np.testing.assert_array_equal(got, expected)

    dout = rng.standard_normal((rows, width)).astype(dtype)
    expected = reference.relu_mask(dout, y, np.full_like(dout, np.nan))
    got = conv.relu_mask(dout, y, np.full_like(dout, np.nan))
    np.testing.assert_array_equal(got, expected)
    assert np.all(got[y == 0] == 0)
    # out may be dout itself.
    np.testing.assert_array_equal(conv.relu_mask(dout, y, dout), expected)


def test_random_bits_are_splitmix64():
    """The published first outputs of SplitMix64 seeded with 1234567 (Vigna's
    splitmix64.c; the test vector of Rust's rand_xoshiro, for one), high halves."""
    expected = np.array(
        [6457827717110365317, 3203168211198807973, 9817491932198370423,
         4593380528125082431, 16408922859458223821], dtype=np.uint64,
    )  # fmt: skip
    np.testing.assert_array_equal(
        reference.random_bits(1234567, np.arange(5)), expected >> np.uint64(32)
    )
    x = np.ones(5, np.float32)
    got = [np.empty(5, np.float32) for _ in range(2)]
    threshold = np.uint32(int(expected[2] >> np.uint64(32)))  # keeps 2 and 4
    dropout.dropout_forward(x, np.uint64(1234567), threshold, np.float32(2), *got)
    np.testing.assert_array_equal(got[1], [0, 0, 2, 0, 2])


def test_random_bits_are_uniform_and_change_with_the_key():
    u = reference.random_bits(42, np.arange(1 << 16))
    counts = np.bincount(u >> np.uint32(24), minlength=256)  # top byte: 256 bins
    chi2 = ((counts - 256) ** 2 / 256).sum()
    assert 160 < chi2 < 360  # 255 degrees of freedom: mean 255, sd 22.6
    assert np.mean(u == reference.random_bits(43, np.arange(1 << 16))) < 1e-3


@given(
    st.integers(1, 300),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    st.sampled_from([np.float32, np.float64]),
)
@PROPERTY_SETTINGS
def test_dropout_kernels_match_reference(size, key, threshold, dtype):
    rng = np.random.default_rng(size)
    key, threshold, scale = np.uint64(key), np.uint32(threshold), dtype(1.25)
    x = rng.standard_normal(size).astype(dtype)
    expected = [np.full_like(x, np.nan) for _ in range(2)]
    reference.dropout_forward(x, key, threshold, scale, *expected)
    got = [np.full_like(x, np.nan) for _ in range(2)]
    assert dropout.dropout_forward(x, key, threshold, scale, *got) is got[0]
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)

    # Fused with a bias and ReLU: the same mask, over a (rows, width) matrix.
    width = 1 + size % 7
    z = rng.standard_normal((size, width)).astype(dtype)
    b = rng.standard_normal(width).astype(dtype)
    expected = reference.bias_relu_dropout(z.copy(), b, key, threshold, scale)
    got = dropout.bias_relu_dropout(z, b, key, threshold, scale)
    assert got is z  # in place
    np.testing.assert_array_equal(got, expected)

    dout = rng.standard_normal(z.shape).astype(dtype)
    expected = [np.empty_like(dout), np.empty(width, dtype)]
    reference.relu_dropout_backward(dout, got, scale, *expected)
    out = [np.full_like(dout, np.nan), np.full(width, np.nan, dtype)]
    dropout.relu_dropout_backward(dout, got, scale, *out)
    np.testing.assert_array_equal(out[0], expected[0])
    # NumPy sums a single column pairwise, the kernel row after row.
    scale_of_sum = np.abs(out[0]).sum(axis=0) + 1
    assert np.all(np.abs(out[1] - expected[1]) <= TOL[dtype] * scale_of_sum)


def test_conv2d_forward_by_hand():
    # 3x3 input 0..8, one 2x2 kernel of ones, valid: sums of the four 2x2 blocks.
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)
    w = np.ones((2, 2, 1, 1))
    cols = np.empty((4, 4))
    y, _ = conv.conv2d_forward(x, w, np.array([0.5]), 1, 1, 0, 0, 2, 2, cols)
    np.testing.assert_array_equal(y[0, :, :, 0], [[8.5, 12.5], [20.5, 24.5]])


# ------------------------------------------------------------------- pooling
def pool_setup(geometry, seed, ties):
    x, _, _, args, rng = setup(geometry, seed)
    if ties:  # few distinct values: windows with several equal maxima
        x = rng.integers(-2, 3, size=x.shape).astype(x.dtype)
    kh, kw, sh, sw, pt, pl, ho, wo = args
    return x, (kh, kw, sh, sw, pt, pl), (x.shape[0], ho, wo, x.shape[3]), rng


@given(geometries(), st.integers(0, 2**16), st.booleans())
@PROPERTY_SETTINGS
def test_maxpool_matches_reference(geometry, seed, ties):
    x, args, out_shape, rng = pool_setup(geometry, seed, ties)
    dtype = x.dtype.type
    y, argmax = pool.maxpool_forward(
        x, *args, np.empty(out_shape, dtype), np.empty(out_shape, np.uint8)
    )
    y_ref, argmax_ref = reference.maxpool_forward(
        x, *args, np.empty(out_shape, dtype), np.empty(out_shape, np.uint8)
    )
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)  # same (first) maximum

    dout = rng.standard_normal(out_shape).astype(dtype)
    dx = pool.maxpool_backward(dout, argmax, *args, np.full(x.shape, np.nan, dtype))
    dx_ref = reference.maxpool_backward(
        dout, argmax, *args, np.full(x.shape, np.nan, dtype)
    )
    assert_close(dx, dx_ref, dtype)
    # Every upstream gradient lands exactly once.
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_two_by_two_maxpool_forward_matches_reference(padding, strides):
    # 2x2 windows inside x take the four-candidate path, windows over the edge
    # ("same" on 7x5) the general loop; ties (few distinct values) pick the first.
    x = np.random.default_rng(1).integers(-2, 3, size=(3, 7, 5, 19)).astype(np.float32)
    ho, pt = window_geometry(7, 2, strides, padding)
    wo, pl = window_geometry(5, 2, strides, padding)
    args = (2, 2, strides, strides, pt, pl)
    shape = (3, ho, wo, 19)
    got = pool.maxpool_forward(
        x, *args, np.empty(shape, np.float32), np.empty(shape, np.uint8)
    )
    ref = reference.maxpool_forward(
        x, *args, np.empty(shape, np.float32), np.empty(shape, np.uint8)
    )
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert set(np.unique(got[1])) == {0, 1, 2, 3}


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_tiled_maxpool_backward_writes_every_entry(padding):
    # Stride = pool size takes the write-once path; 7x5 leaves a last row and column
    # outside every window ("valid") or windows hanging over the edge ("same").
    x = np.random.default_rng(0).standard_normal((2, 7, 5, 3))
    ho, pt = window_geometry(7, 2, 2, padding)
    wo, pl = window_geometry(5, 2, 2, padding)
    args = (2, 2, 2, 2, pt, pl)
    shape = (2, ho, wo, 3)
    _, argmax = pool.maxpool_forward(
        x, *args, np.empty(shape), np.empty(shape, np.uint8)
    )
    dout = np.arange(1.0, 1.0 + np.prod(shape)).reshape(shape)
    dx = pool.maxpool_backward(dout, argmax, *args, np.full(x.shape, np.nan))
    expected = reference.maxpool_backward(dout, argmax, *args, np.full(x.shape, np.nan))
    np.testing.assert_array_equal(dx, expected)
    assert np.count_nonzero(dx) == dout.size  # one entry per window, the rest 0
    if padding == "valid":
        assert not dx[:, 6].any() and not dx[:, :, 4].any()


@given(geometries(), st.integers(0, 2**16))
@PROPERTY_SETTINGS
def test_avgpool_matches_reference(geometry, seed):
    x, args, out_shape, rng = pool_setup(geometry, seed, ties=False)
    dtype = x.dtype.type
    y = pool.avgpool_forward(x, *args, np.full(out_shape, np.nan, dtype))
    y_ref = reference.avgpool_forward(x, *args, np.full(out_shape, np.nan, dtype))
    assert_close(y, y_ref, dtype)

    dout = rng.standard_normal(out_shape).astype(dtype)
    dx = pool.avgpool_backward(dout, *args, np.full(x.shape, np.nan, dtype))
    dx_ref = reference.avgpool_backward(dout, *args, np.full(x.shape, np.nan, dtype))
    assert_close(dx, dx_ref, dtype)


def test_maxpool_large_window_uses_int32_offsets():
    # A 17x17 window has 289 offsets, more than a uint8 holds.
    x = np.random.default_rng(0).standard_normal((2, 17, 18, 3)).astype(np.float32)
    args, shape = (17, 17, 1, 1, 0, 0), (2, 1, 2, 3)
    y, argmax = pool.maxpool_forward(
        x, *args, np.empty(shape, np.float32), np.empty(shape, np.int32)
    )
    y_ref, argmax_ref = reference.maxpool_forward(
        x, *args, np.empty(shape, np.float32), np.empty(shape, np.int32)
    )
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert argmax.max() > 255


# ----------------------------------------------------------- compile and cache
PROBE = textwrap.dedent(
    """
    import json
    import numpy as np
    import tinynet, tinynet.layers
    from tinynet.kernels import conv, pool

    kernels = [conv.im2col, conv.col2im, conv.add_bias, pool.maxpool_forward,
               pool.maxpool_backward, pool.avgpool_forward, pool.avgpool_backward]
    compiled_at_import = sum(len(k.jitted.signatures) for k in kernels)
    x = np.ones((1, 3, 3, 1), np.float32)
    conv.im2col(x, 2, 2, 1, 1, 0, 0, 2, 2, np.empty((4, 4), np.float32))
    stats = conv.im2col.jitted.stats
    print(json.dumps({"compiled_at_import": compiled_at_import,
                      "cache_hits": sum(stats.cache_hits.values()),
                      "cache_misses": sum(stats.cache_misses.values())}))
    """
)


def run_probe(env):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_compiles_nothing_and_the_disk_cache_serves_later_processes(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = run_probe(env)
    assert first["compiled_at_import"] == 0
    assert first["cache_misses"] == 1 and first["cache_hits"] == 0
    second = run_probe(env)
    assert second["compiled_at_import"] == 0
    assert second["cache_hits"] == 1 and second["cache_misses"] == 0


def test_conv_forward_without_a_cols_buffer_matches_the_training_path():
    """Inference passes cols=None: chunk-sized scratch, same output, nothing kept."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 13, 13, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    cols = np.empty((70 * 11 * 11, 3 * 3 * 32), np.float32)
    for relu in (False, True):
        y_train, kept = conv.conv2d_forward(x, w, b, 1, 1, 0, 0, 11, 11, cols, relu)
        y_infer, none = conv.conv2d_forward(x, w, b, 1, 1, 0, 0, 11, 11, None, relu)
        assert kept is cols and none is None
        np.testing.assert_array_equal(y_infer, y_train)


# ------------------------------------------------------ convolution + 2x2 max-pool
@st.composite
def pooled_outputs(draw):
    """(z, dout, b, relu, dtype): a conv output with ties (small integers), the
    gradient of its 2x2-pooled version and a bias."""
    n, ho, wo, f = (draw(st.integers(lo, hi)) for lo, hi in [(1, 3), (2, 9), (2, 9),
                                                            (1, 20)])  # fmt: skip
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    z = rng.integers(-3, 4, (n, ho, wo, f)).astype(dtype)
    dout = rng.standard_normal((n, ho // 2, wo // 2, f)).astype(dtype)
    b = rng.integers(-1, 2, f).astype(dtype)
    return z, dout, b, draw(st.booleans()), dtype


@given(pooled_outputs())
@PROPERTY_SETTINGS
def test_pool_epilogue_kernels_match_reference(case):
    z, dout, b, relu, dtype = case
    shape = dout.shape
    fast = convpool.pool_bias_relu(
        z, b, relu, np.full(shape, np.nan, dtype), np.full(shape, 9, np.uint8)
    )
    ref = reference.pool_bias_relu(
        z, b, relu, np.full(shape, np.nan, dtype), np.full(shape, 9, np.uint8)
    )
    for got, expected in zip(fast, ref, strict=True):
        np.testing.assert_array_equal(got, expected)  # compares only: exact
    p, argmax = fast
    grad = convpool.unpool_relu(dout, p, argmax, relu, np.full(z.shape, np.nan, dtype))
    expected = reference.unpool_relu(
        dout, p, argmax, relu, np.full(z.shape, np.nan, dtype)
    )
    np.testing.assert_array_equal(grad, expected)
    # Each window passes its gradient to exactly one entry, and only if it is live.
    live = (p > 0) & (dout != 0) if relu else dout != 0
    np.testing.assert_array_equal((grad != 0).sum(axis=(1, 2)), live.sum(axis=(1, 2)))

    # The weight gradient straight from the pooled one: cols^T dz, added to dw, db.
    rng = np.random.default_rng(int(z.sum()) % 1000)
    cols = rng.standard_normal((z.shape[0] * z.shape[1] * z.shape[2], 5)).astype(dtype)
    start_w = rng.standard_normal((5, z.shape[3])).astype(dtype)
    start_b = rng.standard_normal(z.shape[3]).astype(dtype)
    args = (dout, p, argmax, relu, cols, z.shape[1], z.shape[2])
    fast = convpool.pooled_weight_grad(*args, start_w.copy(), start_b.copy())
    ref = reference.pooled_weight_grad(*args, start_w.copy(), start_b.copy())
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, dtype)


@given(geometries(), st.integers(0, 2**16), st.booleans(), st.booleans())
@PROPERTY_SETTINGS
def test_conv2d_with_fused_pool_matches_reference(geometry, seed, use_bias, relu):
    x, weights, bias, args, rng = setup(geometry, seed)
    bias = bias if use_bias else None
    kh, kw, sh, sw, pt, pl, ho, wo = args
    assume(ho >= 2 and wo >= 2)  # something to pool
    dtype = x.dtype.type
    pooled = (x.shape[0], ho // 2, wo // 2, weights.shape[3])
    cols = np.full((x.shape[0] * ho * wo, kh * kw * x.shape[3]), np.nan, dtype)

    def buffers():
        return np.full(pooled, np.nan, dtype), np.full(pooled, 9, np.uint8)

    fast_pool = buffers()
    p, cols = conv.conv2d_forward(
        x, weights, bias, sh, sw, pt, pl, ho, wo, cols, relu, fast_pool
    )
    assert p is fast_pool[0]
    p_ref, _ = reference.conv2d_forward(
        x, weights, bias, sh, sw, pt, pl, ho, wo, np.empty_like(cols), relu, buffers()
    )
    assert_close(p, p_ref, dtype)
    # Both backward passes are given the fast forward's winners: with float rounding
    # the two forward passes may pick different ones of two (near-)equal entries.
    state = (p, fast_pool[1], relu, ho, wo)
    dout = rng.standard_normal(pooled).astype(dtype)
    for need_dx in (True, False):
        fast = conv.conv2d_backward(
            dout, x, cols, weights, sh, sw, pt, pl, need_dx, None, state
        )
        ref = reference.conv2d_backward(
            dout, x, cols, weights, sh, sw, pt, pl, need_dx, None, state
        )
        assert (fast[0] is None) == (not need_dx)
        for got, expected in zip(fast, ref, strict=True):
            if expected is not None:
                assert_close(got, expected, dtype)


@st.composite
def single_channel_cases(draw):
    """(x, w, b, relu, dtype): a stride-1 valid conv of one input channel and 1-15
    filters with something to pool; b None or a bias."""
    kh, kw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    n, h, w = (
        draw(st.integers(1, 3)),
        draw(st.integers(kh + 1, 14)),
        draw(st.integers(kw + 1, 14)),
    )
    f = draw(st.integers(1, direct_conv_pool.MAX_FILTERS - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, h, w, 1)).astype(dtype)
    weights = rng.standard_normal((kh, kw, 1, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if draw(st.booleans()) else None
    return x, weights, b, draw(st.booleans()), rng


@given(single_channel_cases())
@PROPERTY_SETTINGS
def test_direct_conv_pool_matches_reference(case):
    x, weights, b, relu, rng = case
    n, h, w, _ = x.shape
    kh, kw, _, f = weights.shape
    ho, wo = h - kh + 1, w - kw + 1
    dtype = x.dtype.type
    pooled = (n, ho // 2, wo // 2, f)

    def buffers():
        return np.full(pooled, np.nan, dtype), np.full(pooled, 9, np.uint8)

    fast_pool, ref_pool = buffers(), buffers()
    assert direct_conv_pool.forward(x, weights, b, relu, *fast_pool) is fast_pool[0]
    cols = np.empty((n * ho * wo, kh * kw), dtype)
    reference.conv2d_forward(x, weights, b, 1, 1, 0, 0, ho, wo, cols, relu, ref_pool)
    assert_close(fast_pool[0], ref_pool[0], dtype)
    # Both backward passes take the fast forward's winners (as above).
    state = (fast_pool[0], fast_pool[1], relu, ho, wo)
    dout = rng.standard_normal(pooled).astype(dtype)
    for need_dx in (True, False):
        fast = direct_conv_pool.backward(dout, *state[:3], x, weights, need_dx)
        ref = reference.conv2d_backward(
            dout, x, cols, weights, 1, 1, 0, 0, need_dx, None, state
        )
        assert (fast[0] is None) == (not need_dx)
        for got, expected in zip(fast, ref, strict=True):
            if expected is not None:
                assert_close(got, expected, dtype)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_conv_pool_breaks_ties_as_the_reference(relu, dtype):
    # 0/1 pixels and -1/0/1 weights: small integer sums, exact in any order, with
    # many windows holding two or more equal maxima; the first in row-major order
    # wins, as in MaxPool2D.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, (3, 13, 16, 1)).astype(dtype)
    weights = rng.integers(-1, 2, (4, 3, 1, 6)).astype(dtype)
    b = rng.integers(-1, 2, 6).astype(dtype)
    pooled = (3, 5, 7, 6)
    fast, ref = [(np.empty(pooled, dtype), np.empty(pooled, np.uint8)) for _ in "ab"]
    direct_conv_pool.forward(x, weights, b, relu, *fast)
    cols = np.empty((3 * 10 * 14, 12), dtype)
    reference.conv2d_forward(x, weights, b, 1, 1, 0, 0, 10, 14, cols, relu, ref)
    for got, expected in zip(fast, ref, strict=True):
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------- Winograd F(2x2, 3x3)
@st.composite
def winograd_cases(draw):
    """(x, w, b, pt, pl, ho, wo, relu, rng): a 3x3 stride-1 conv with something to
    pool, either padding, 1-9 input channels."""
    padding = draw(st.sampled_from(["valid", "same"]))
    low = 4 if padding == "valid" else 2
    n, h, w = (
        draw(st.integers(1, 3)),
        draw(st.integers(low, 10)),
        draw(st.integers(low, 10)),
    )
    c, f = draw(st.integers(1, 9)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ho, pt = window_geometry(h, 3, 1, padding)
    wo, pl = window_geometry(w, 3, 1, padding)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    weights = rng.standard_normal((3, 3, c, f)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, weights, b, pt, pl, ho, wo, draw(st.booleans()), rng


@given(winograd_cases())
@PROPERTY_SETTINGS
def test_winograd_transforms_match_reference(case):
    x, weights, b, pt, pl, ho, wo, relu, rng = case
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype.type
    th, tw = ho // 2, wo // 2
    tiles = n * th * tw

    def both(name, *args, out):
        fast = getattr(winograd, name)(*args, *(o.copy() for o in out))
        ref = getattr(reference, f"winograd_{name}")(*args, *(o.copy() for o in out))
        return fast, ref

    v, v_ref = both(
        "input_transform",
        x,
        pt,
        pl,
        th,
        tw,
        out=[np.full((16, tiles, c), np.nan, dtype)],
    )
    assert_close(v, v_ref, dtype)
    m = rng.standard_normal((16, tiles, f)).astype(dtype)
    pooled = (
        np.full((n, th, tw, f), np.nan, dtype),
        np.full((n, th, tw, f), 9, np.uint8),
    )
    fast, ref = both("output_transform_pool", m, b, relu, out=pooled)
    assert_close(fast[0], ref[0], dtype)
    dout = rng.standard_normal((n, th, tw, f)).astype(dtype)
    state = (dout, fast[0], fast[1], relu)
    grads = [np.full((16, tiles, f), np.nan, dtype), np.ones(f, dtype)]
    fast, ref = both("output_transform_pool_adjoint", *state, out=grads)
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, dtype)
    # Every output of the tiles (no pool), and the adjoint of that.
    y_shape = (n, 2 * th, 2 * tw, f)
    y, y_ref = both("output_transform", m, b, out=[np.full(y_shape, np.nan, dtype)])
    assert_close(y, y_ref, dtype)
    dy = rng.standard_normal(y_shape).astype(dtype)
    grads = [np.full((16, tiles, f), np.nan, dtype), np.ones(f, dtype)]
    fast, ref = both("output_transform_adjoint", dy, out=grads)
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, dtype)
    dv = rng.standard_normal((16, tiles, c)).astype(dtype)
    dx_buffer = [np.full(x.shape, np.nan, dtype)]
    dx, dx_ref = both("input_transform_adjoint", dv, pt, pl, th, tw, out=dx_buffer)
    assert_close(dx, dx_ref, dtype)


@given(winograd_cases(), st.booleans())
@PROPERTY_SETTINGS
def test_winograd_conv_pool_matches_the_direct_reference(case, need_dx):
    """The whole Winograd conv + pool against the direct convolution + pool."""
    x, weights, b, pt, pl, ho, wo, relu, rng = case
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype.type
    pooled = (n, ho // 2, wo // 2, f)
    p, argmax = np.full(pooled, np.nan, dtype), np.full(pooled, 9, np.uint8)
    v = np.full((16, n * pooled[1] * pooled[2], c), np.nan, dtype)
    winograd_conv.conv3x3_pool_forward(x, weights, b, pt, pl, relu, v, p, argmax)
    cols = np.empty((n * ho * wo, 9 * c), dtype)
    p_ref, _ = reference.conv2d_forward(
        x, weights, b, 1, 1, pt, pl, ho, wo, cols, relu,
        (np.empty(pooled, dtype), np.empty(pooled, np.uint8)),
    )  # fmt: skip
    assert_close(p, p_ref, dtype)
    inference = winograd_conv.conv3x3_pool_forward(
        x, weights, b, pt, pl, relu, None, np.empty_like(p), np.empty_like(argmax)
    )
    np.testing.assert_array_equal(inference, p)  # the same arithmetic, kept or not
    dout = rng.standard_normal(pooled).astype(dtype)
    fast = winograd_conv.conv3x3_pool_backward(
        dout, p, argmax, relu, v, weights, pt, pl, x.shape, need_dx
    )
    ref = reference.conv2d_backward(
        dout, x, cols, weights, 1, 1, pt, pl, need_dx, None, (p, argmax, relu, ho, wo)
    )
    assert (fast[0] is None) == (not need_dx)
    for got, expected in zip(fast, ref, strict=True):
        if expected is not None:
            assert_close(got, expected, dtype)


@given(winograd_cases(), st.booleans())
@PROPERTY_SETTINGS
def test_winograd_conv_matches_the_direct_reference(case, need_dx):
    """The whole Winograd conv, every output, against the direct convolution."""
    x, weights, b, pt, pl, ho, wo, _, rng = case
    assume(ho % 2 == 0 and wo % 2 == 0)  # the tiles cover the output exactly
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype.type
    v = np.full((16, n * (ho // 2) * (wo // 2), c), np.nan, dtype)
    y = winograd_conv.conv3x3_forward(
        x, weights, b, pt, pl, v, np.full((n, ho, wo, f), np.nan, dtype)
    )
    cols = np.empty((n * ho * wo, 9 * c), dtype)
    y_ref, _ = reference.conv2d_forward(x, weights, b, 1, 1, pt, pl, ho, wo, cols)
    assert_close(y, y_ref, dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ref = reference.conv2d_backward(dy, x, cols, weights, 1, 1, pt, pl, need_dx)
    # From the kept transform, and from x (transformed again, chunk by chunk).
    for kept, x_again in ((v, None), (None, x)):
        fast = winograd_conv.conv3x3_backward(
            dy, kept, weights, pt, pl, x.shape, need_dx, x_again
        )
        assert (fast[0] is None) == (not need_dx)
        for got, expected in zip(fast, ref, strict=True):
            if expected is not None:
                assert_close(got, expected, dtype)


@pytest.mark.parametrize(
    ("module", "size"), [(winograd, 4), (winograd43, 6), (winograd63, 8)]
)
def test_winograd_kernel_transform_and_its_adjoint(module, size):
    """U = G w G^T, and <U, dU> = <w, G^T dU G> for any dU (adjoint)."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 3, 2, 5))
    u = module.kernel_transform(w)
    assert u.shape == (size * size, 2, 5) and u.flags.c_contiguous
    g = module.G
    np.testing.assert_allclose(
        u.reshape(size, size, 2, 5)[:, :, 1, 3], g @ w[:, :, 1, 3] @ g.T, rtol=1e-14
    )
    du = rng.standard_normal((size * size, 2, 5))
    lhs = float(np.sum(u * du))
    rhs = float(np.sum(w * module.kernel_transform_adjoint(du)))
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(lhs))


# ---------------------------------------- Winograd F(4x4, 3x3) and F(6x6, 3x3)
#: The larger-tile algorithms, each with its kernel module (whose naive twins in
#: ``reference`` are named after it): any output size, the last tiles partial.
LARGE_TILES = [(winograd43, winograd43.F4X4), (winograd63, winograd63.F6X6)]
LARGE_TILE_IDS = ["F4x4", "F6x6"]


@pytest.mark.parametrize(("module", "algorithm"), LARGE_TILES, ids=LARGE_TILE_IDS)
@given(case=winograd_cases())
@PROPERTY_SETTINGS
def test_large_tile_transforms_match_reference(module, algorithm, case):
    """Every output size, so partial tiles (not a multiple of the tile) too."""
    x, weights, b, pt, pl, ho, wo, _, rng = case
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype.type
    th, tw = algorithm.tiles(ho, wo)
    tiles, points = n * th * tw, algorithm.points
    prefix = module.__name__.rsplit(".", 1)[1]

    def both(name, *args, out):
        fast = getattr(module, name)(*args, *(o.copy() for o in out))
        ref = getattr(reference, f"{prefix}_{name}")(*args, *(o.copy() for o in out))
        return fast, ref

    v_buffer = [np.full((points, tiles, c), np.nan, dtype)]
    v, v_ref = both("input_transform", x, pt, pl, th, tw, out=v_buffer)
    assert_close(v, v_ref, dtype)
    m = rng.standard_normal((points, tiles, f)).astype(dtype)
    y_buffer = [np.full((n, ho, wo, f), np.nan, dtype)]
    y, y_ref = both("output_transform", m, b, out=y_buffer)
    assert_close(y, y_ref, dtype)
    dy = rng.standard_normal((n, ho, wo, f)).astype(dtype)
    grads = [np.full((points, tiles, f), np.nan, dtype), np.ones(f, dtype)]
    fast, ref = both("output_transform_adjoint", dy, out=grads)
    for got, expected in zip(fast, ref, strict=True):
        assert_close(got, expected, dtype)
    dv = rng.standard_normal((points, tiles, c)).astype(dtype)
    dx_buffer = [np.full(x.shape, np.nan, dtype)]
    dx, dx_ref = both("input_transform_adjoint", dv, pt, pl, th, tw, out=dx_buffer)
    assert_close(dx, dx_ref, dtype)


@pytest.mark.parametrize(("module", "algorithm"), LARGE_TILES, ids=LARGE_TILE_IDS)
@given(case=winograd_cases(), kept=st.booleans())
@PROPERTY_SETTINGS
def test_large_tile_conv_pool_forward_matches_reference(module, algorithm, case, kept):
    """The pooled forward (inference) against its twin and against the direct
    convolution + pool, pooled sizes the tiles do not divide (partial tiles) too."""
    x, weights, b, pt, pl, ho, wo, relu, rng = case
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype.type
    pooled = (n, ho // 2, wo // 2, f)
    th, tw = algorithm.pooled_tiles(pooled[1], pooled[2])
    points = algorithm.points
    prefix = module.__name__.rsplit(".", 1)[1]
    m = rng.standard_normal((points, n * th * tw, f)).astype(dtype)
    buffers = (np.full(pooled, np.nan, dtype), np.full(pooled, 9, np.uint8))
    fast = module.output_transform_pool(m, b, relu, *(a.copy() for a in buffers))
    ref = getattr(reference, f"{prefix}_output_transform_pool")(m, b, relu, *buffers)
    assert_close(fast[0], ref[0], dtype)
    v = np.full((points, n * th * tw, c), np.nan, dtype) if kept else None
    p = winograd_conv.conv3x3_pool_forward(
        x, weights, b, pt, pl, relu, v, *(a.copy() for a in buffers), algorithm
    )
    cols = np.empty((n * ho * wo, 9 * c), dtype)
    p_ref, _ = reference.conv2d_forward(
        x, weights, b, 1, 1, pt, pl, ho, wo, cols, relu,
        (np.empty(pooled, dtype), np.empty(pooled, np.uint8)),
    )  # fmt: skip
    assert_close(p, p_ref, dtype)


def large_tile_against_direct(algorithm, x, weights, b, pt, pl, ho, wo, dy, need_dx):
    """(fast, reference) pairs of y, dx, dw, db: the conv by ``algorithm``, backward
    of ``dy`` from the kept transform and from x, against the direct convolution."""
    n, _, _, c = x.shape
    f, dtype = weights.shape[3], x.dtype
    th, tw = algorithm.tiles(ho, wo)
    v = np.full((algorithm.points, n * th * tw, c), np.nan, dtype)
    y = winograd_conv.conv3x3_forward(
        x, weights, b, pt, pl, v, np.full((n, ho, wo, f), np.nan, dtype), algorithm
    )
    cols = np.empty((n * ho * wo, 9 * c), dtype)
    y_ref, _ = reference.conv2d_forward(x, weights, b, 1, 1, pt, pl, ho, wo, cols)
    pairs = [(y, y_ref)]
    dy = dy.astype(dtype)
    ref = reference.conv2d_backward(dy, x, cols, weights, 1, 1, pt, pl, need_dx)
    for kept, x_again in ((v, None), (None, x)):
        fast = winograd_conv.conv3x3_backward(
            dy, kept, weights, pt, pl, x.shape, need_dx, x_again, algorithm
        )
        assert (fast[0] is None) == (not need_dx)
        pairs += [(a, r) for a, r in zip(fast, ref, strict=True) if r is not None]
    return pairs


@pytest.mark.parametrize("algorithm", [a for _, a in LARGE_TILES], ids=LARGE_TILE_IDS)
@given(case=winograd_cases(), need_dx=st.booleans())
@PROPERTY_SETTINGS
def test_large_tile_conv_matches_the_direct_reference(algorithm, case, need_dx):
    """The whole conv and its gradients, any output size."""
    x, weights, b, pt, pl, ho, wo, _, rng = case
    dy = rng.standard_normal((x.shape[0], ho, wo, weights.shape[3]))
    for fast, ref in large_tile_against_direct(
        algorithm, x, weights, b, pt, pl, ho, wo, dy, need_dx
    ):
        assert_close(fast, ref, x.dtype.type)


@pytest.mark.parametrize(
    ("algorithm", "shape", "bound"),
    [
        (winograd43.F4X4, (10, 64, 64), 2e-5),  # measured ~4e-6
        (winograd63.F6X6, (10, 64, 64), 4e-5),  # measured ~5e-6
        (winograd63.F6X6, (26, 32, 32), 4e-5),  # measured ~8e-6
    ],
)
def test_large_tile_float32_error_at_the_shipped_cnn_width(algorithm, shape, bound):
    """Float32 against the float64 direct convolution, channels in and out and
    sizes as in the shipped CNN's convolutions, unit-scale data: every result
    within ``bound`` of its largest magnitude (F(2x2, 3x3): ~3e-7, the direct
    convolution in float32 ~2e-7)."""
    h, c, f = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, h, h, c))
    weights = rng.standard_normal((3, 3, c, f)) / np.sqrt(9 * c / 2)  # He scale
    b = rng.standard_normal(f)
    dy = rng.standard_normal((3, h - 2, h - 2, f))
    size = (0, 0, h - 2, h - 2)
    exact = large_tile_against_direct(algorithm, x, weights, b, *size, dy, True)
    x32, w32, b32 = (a.astype(np.float32) for a in (x, weights, b))
    rough = large_tile_against_direct(algorithm, x32, w32, b32, *size, dy, True)
    for (got, _), (want, _) in zip(rough, exact, strict=True):
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        assert err < bound


# ------------------------------------------- spec-level entry points (the layers')
@given(geometry=geometries(), seed=st.integers(0, 2**16), need_dx=st.booleans())
@PROPERTY_SETTINGS
def test_conv2d_and_its_grads_match_the_reference(geometry, seed, need_dx):
    x, w, b, (kh, kw, sh, sw, *_), rng = setup(geometry, seed)
    padding, dtype = geometry[8], geometry[9]
    y, cols = conv.conv2d(x, w, b, (sh, sw), padding)
    y_ref, cols_ref = reference.conv2d(x, w, b, (sh, sw), padding)
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(cols, cols_ref)
    dout = rng.standard_normal(y.shape).astype(dtype)
    got = conv.conv2d_grads(dout, x, cols, w, (sh, sw), padding, need_dx)
    want = reference.conv2d_grads(dout, x, cols, w, (sh, sw), padding, need_dx)
    assert (got[0] is None) == (want[0] is None) == (not need_dx)
    for fast, ref in zip(got, want, strict=True):
        if ref is not None:
            assert_close(fast, ref, dtype)


@given(geometry=geometries(), seed=st.integers(0, 2**16))
@PROPERTY_SETTINGS
def test_pool2d_entry_points_match_the_reference(geometry, seed):
    x, _, _, (kh, kw, sh, sw, *_), rng = setup(geometry, seed)
    padding, dtype = geometry[8], geometry[9]
    args = ((kh, kw), (sh, sw), padding)
    y, argmax = pool.max_pool2d(x, *args)
    y_ref, argmax_ref = reference.max_pool2d(x, *args)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dout = rng.standard_normal(y.shape).astype(dtype)
    assert_close(
        pool.max_pool2d_backward(dout, argmax, x.shape, *args),
        reference.max_pool2d_backward(dout, argmax_ref, x.shape, *args),
        dtype,
    )
    assert_close(pool.avg_pool2d(x, *args), reference.avg_pool2d(x, *args), dtype)
    assert_close(
        pool.avg_pool2d_backward(dout, x.shape, *args),
        reference.avg_pool2d_backward(dout, x.shape, *args),
        dtype,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_entry_point_matches_the_reference(dtype, rate):
    x = np.random.default_rng(0).standard_normal((7, 33)).astype(dtype)
    key = np.uint64(0x1234_5678_9ABC_DEF0)
    (y, mask), (y_ref, mask_ref) = (
        dropout.dropout(x, key, rate),
        reference.dropout(x, key, rate),
    )
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == mask.dtype == dtype
    assert abs(np.mean(mask == 0) - rate) < 0.1
