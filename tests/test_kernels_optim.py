"""The fused Adam kernel against Adam's NumPy formulation (same order of operations)."""

import numpy as np
import pytest

from tinynet import optimizers
from tinynet.kernels.optim import PARALLEL_MIN_SIZE, adam_update


def numpy_adam(p, g, m, v, beta_1, beta_2, epsilon, alpha):
    """Adam with the documented flushes: moments below tiny / (1 - beta) become 0,
    g * g is 0 for |g| < sqrt(tiny), and a step below tiny is dropped."""
    dt = p.dtype.type
    tiny = float(np.finfo(p.dtype).tiny)
    m += dt(1 - beta_1) * (g - m)
    m[np.abs(m) < tiny / (1 - beta_1)] = 0
    g_sq = np.where(np.abs(g) < np.sqrt(tiny), 0, g).astype(p.dtype)
    v += dt(1 - beta_2) * (g_sq * g_sq - v)
    v[v < tiny / (1 - beta_2)] = 0
    ratio = m / (np.sqrt(v) + dt(epsilon))
    ratio[np.abs(ratio) < tiny / alpha] = 0
    p -= dt(alpha) * ratio


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 129), (1024, 2048)])  # serial, parallel kernel
def test_fused_adam_matches_the_numpy_formula(dtype, shape):
    assert (shape[0] * shape[1] >= PARALLEL_MIN_SIZE) == (shape == (1024, 2048))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]
    m = rng.standard_normal(shape).astype(dtype) * 0.1
    v = np.abs(rng.standard_normal(shape)).astype(dtype) * 0.01
    fused = [a.copy() for a in (arrays[0], arrays[1], m, v)]
    plain = [a.copy() for a in (arrays[0], arrays[1], m, v)]
    args = (0.9, 0.999, 1e-7, 3e-3)
    for _ in range(3):
        adam_update(*fused, *args)
        numpy_adam(*plain, *args)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


def test_adam_kernel_and_numpy_path_follow_the_same_trajectory():
    """A contiguous parameter (fused kernel) and the same values as strided views
    (NumPy path) must follow the same trajectory."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(8192).astype(np.float32)
    grads = [rng.standard_normal(8192).astype(np.float32) for _ in range(4)]
    fused, plain = optimizers.Adam(1e-2), optimizers.Adam(1e-2)
    p_fused = {"w": w.copy()}
    strided = np.zeros((8192, 2), np.float32)
    strided[:, 0] = w
    p_plain = {"w": strided[:, 0]}
    assert not p_plain["w"].flags.c_contiguous
    for g in grads:
        fused.step(p_fused, {"w": g})
        g_strided = np.zeros((8192, 2), np.float32)
        g_strided[:, 0] = g
        plain.step(p_plain, {"w": g_strided[:, 0]})
    np.testing.assert_allclose(p_fused["w"], p_plain["w"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(p_fused["w"], w)
    assert np.all(strided[:, 1] == 0)  # the view was updated in place, nothing else


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [False, True])  # NumPy path / fused kernel
def test_adam_moments_of_a_dead_unit_flush_to_zero_instead_of_going_subnormal(
    dtype, contiguous
):
    """With zero gradient, m shrinks by beta_1 per step: it must reach exactly 0,
    never a subnormal float (slow on x86), and the parameter stops moving."""
    tiny = np.finfo(dtype).tiny
    size = 300
    p = np.ones((size, 1 if contiguous else 2), dtype)[:, 0]
    assert p.flags.c_contiguous == contiguous
    opt = optimizers.Adam(learning_rate=1e-3)
    opt.step({"w": p}, {"w": np.full(size, 0.5, dtype)})
    zero = {"w": np.zeros(size, dtype)}
    steps = int(np.log(tiny) / np.log(0.9)) + 50  # long past the subnormal range
    for _ in range(steps):
        opt.step({"w": p}, zero)
    m = opt._state["m"]["w"]
    assert np.all(m == 0)
    before = p.copy()
    opt.step({"w": p}, zero)
    np.testing.assert_array_equal(p, before)
    assert not np.any((opt._state["v"]["w"] != 0) & (opt._state["v"]["w"] < tiny))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [False, True])  # NumPy path / fused kernel
def test_adam_takes_the_products_that_would_be_subnormal_as_zero(dtype, contiguous):
    """What flush-to-zero does, selected before the multiplication: a tiny gradient
    adds nothing to v, and a step below ``tiny`` leaves the parameter alone."""
    tiny = float(np.finfo(dtype).tiny)
    n = 4
    p = np.ones((n, 1 if contiguous else 2), dtype)[:, 0]
    g = np.array([np.sqrt(tiny) / 4, np.sqrt(tiny) * 1e4, 0.0, 1.0], dtype)
    opt = optimizers.Adam(learning_rate=1e-3)
    opt.step({"w": p}, {"w": g})
    m, v = opt._state["m"]["w"], opt._state["v"]["w"]
    assert v[0] == 0 and v[1] > 0  # (sqrt(tiny)/4)**2 would be subnormal
    assert m[0] > 0  # g itself is a normal number: m takes it
    assert p[3] < 1 and p[2] == 1
    # A step below tiny: m tiny next to a large sqrt(v).
    p[:] = 1
    m[:] = [tiny * 10.5, 0, 0, 0]
    v[:] = [1e6, 0, 0, 0]
    opt.step({"w": p}, {"w": np.zeros(n, dtype)})
    assert p[0] == 1
    assert m[0] == 0  # 0.9 * 10.5 tiny < tiny / 0.1: flushed
