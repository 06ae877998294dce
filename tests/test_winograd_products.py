"""tinynet.kernels.winograd_products: ``out[p] = a[p] @ b[p]``, against float64
``np.matmul``, for the compiled widths (rows left over included), a transposed
``a`` (the drivers' ``V^T``) and a width that falls back to ``np.matmul``. The
kernel runs in these tests whatever the CPU (``enabled`` set); without AVX-512,
``products`` is ``np.matmul``."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.kernels import reference, winograd_products

# Relative to the largest magnitude of the exact product.
TOL = {np.float32: 1e-5, np.float64: 1e-13}
#: Every width the kernel is compiled for, either layout of ``a``.
WIDTHS = sorted(set(winograd_products.ROWS) | set(winograd_products.ROWS_BY_COLUMNS))


@pytest.fixture
def kernel_runs(monkeypatch):
    monkeypatch.setattr(winograd_products, "enabled", True)


def check_products(width, points, k, inner, transposed, dtype, seed):
    rng = np.random.default_rng(seed)
    if transposed:
        a = rng.standard_normal((points, inner, k)).astype(dtype).transpose(0, 2, 1)
    else:
        a = rng.standard_normal((points, k, inner)).astype(dtype)
    b = rng.standard_normal((points, inner, width)).astype(dtype)
    out = np.full((points, k, width), np.nan, dtype)
    got = winograd_products.products(a, b, out)
    exact = reference.products(
        a.astype(np.float64), b.astype(np.float64), np.empty(out.shape)
    )
    assert got is out
    assert np.max(np.abs(got - exact)) <= TOL[dtype] * np.max(np.abs(exact))


@given(
    st.sampled_from([*WIDTHS, 5]),
    st.integers(1, 3),
    st.integers(1, 13),
    st.integers(1, 70),
    st.booleans(),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None, derandomize=True)
def test_products_match_float64_matmul(
    width, points, k, inner, transposed, dtype, seed
):
    with pytest.MonkeyPatch.context() as patch:  # a fixture would outlive examples
        patch.setattr(winograd_products, "enabled", True)
        check_products(width, points, k, inner, transposed, dtype, seed)


@pytest.mark.parametrize("width", WIDTHS)
def test_products_of_the_shipped_cnn_shapes_match_matmul(kernel_runs, width):
    """A chunk of the shipped CNN's first Winograd conv (k = 176 tiles, 32
    channels), every compiled width."""
    rng = np.random.default_rng(width)
    v = rng.standard_normal((64, 176, 32)).astype(np.float32)
    u = rng.standard_normal((64, 32, width)).astype(np.float32)
    got = winograd_products.products(v, u, np.empty((64, 176, width), np.float32))
    exact = np.matmul(v.astype(np.float64), u)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5 * np.max(np.abs(exact)))


@pytest.mark.parametrize("transposed", [False, True])
def test_products_of_the_speedrun_shapes_match_matmul(kernel_runs, transposed):
    """A chunk of the speedrun net's Winograd conv (F(6x6): 64 points, k = 256
    tiles, 8 -> 24 channels): ``M = V U`` and ``dU = V^T dM``, both 24 wide."""
    rng = np.random.default_rng(24)
    if transposed:
        a = rng.standard_normal((64, 256, 8)).astype(np.float32).transpose(0, 2, 1)
        b = rng.standard_normal((64, 256, 24)).astype(np.float32)
    else:
        a = rng.standard_normal((64, 256, 8)).astype(np.float32)
        b = rng.standard_normal((64, 8, 24)).astype(np.float32)
    out = np.empty((64, a.shape[1], 24), np.float32)
    assert winograd_products.takes_kernel(a, out)
    got = winograd_products.products(a, b, out)
    exact = np.matmul(a.astype(np.float64), b)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5 * np.max(np.abs(exact)))


def test_kernel_runs_for_compiled_widths_and_float_dtypes(kernel_runs):
    for dtype in (np.float32, np.float64):
        for width in winograd_products.ROWS:
            out = np.zeros((2, 9, width), dtype)
            assert winograd_products.takes_kernel(np.zeros((2, 9, 7), dtype), out)
        for width in winograd_products.ROWS_BY_COLUMNS:
            out = np.zeros((2, 9, width), dtype)
            transposed = np.zeros((2, 7, 9), dtype).transpose(0, 2, 1)
            assert winograd_products.takes_kernel(transposed, out)
    a = np.zeros((2, 9, 7), np.float32)
    assert not winograd_products.takes_kernel(a, np.zeros((2, 9, 5), np.float32))
    assert not winograd_products.takes_kernel(a, np.zeros((2, 9, 32), np.float16))


def test_disabled_products_are_matmul(monkeypatch):
    """Disabled (the default without AVX-512), nothing takes the kernel and the
    result is ``np.matmul``'s, bit for bit."""
    monkeypatch.setattr(winograd_products, "enabled", False)
    rng = np.random.default_rng(0)
    for width in WIDTHS:
        for transposed in (False, True):
            a = rng.standard_normal((2, 7, 9) if transposed else (2, 9, 7))
            a = a.astype(np.float32)
            a = a.transpose(0, 2, 1) if transposed else a
            b = rng.standard_normal((2, 7, width)).astype(np.float32)
            out = np.empty((2, 9, width), np.float32)
            assert not winograd_products.takes_kernel(a, out)
            got = winograd_products.products(a, b, out)
            assert got is out
            np.testing.assert_array_equal(got, np.matmul(a, b))


def test_enabled_by_default_where_numba_compiles_for_avx512():
    assert winograd_products.enabled == winograd_products.AVX512
