"""The one-pass optimizer kernels against their naive twins (kernels/reference.py)
and against the optimizers' readable update rules."""

import numpy as np
import pytest

from tinynet import optimizers
from tinynet.kernels import reference
from tinynet.kernels.optim import PARALLEL_MIN_SIZE, adam_update, flush_below


def adam_problem(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    m = rng.standard_normal(shape).astype(dtype) * 0.1
    v = np.abs(rng.standard_normal(shape)).astype(dtype) * 0.01
    return p, g, m, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 129), (1024, 2048)])  # serial, parallel kernel
def test_adam_kernel_matches_its_reference_twin(dtype, shape):
    assert (shape[0] * shape[1] >= PARALLEL_MIN_SIZE) == (shape == (1024, 2048))
    fast = list(adam_problem(shape, dtype))
    naive = [a.copy() for a in fast]
    args = (0.9, 0.999, 1e-7, 3e-3)
    for _ in range(3):
        adam_update(*fast, *args)
        reference.adam_update(*naive, *args)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for a, b in zip(fast, naive, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_is_the_fast_twin_of_the_readable_rule(dtype):
    """Away from the subnormal range the flushes change nothing: the kernel and
    ``Adam.update_rule`` agree to rounding."""
    opt = optimizers.Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    fast = list(adam_problem((300,), dtype, seed=1))
    readable = [a.copy() for a in fast]
    for alpha in (1e-2, 3e-3, 1e-3):
        adam_update(*fast, opt.beta_1, opt.beta_2, opt.epsilon, alpha)
        opt.update_rule(*readable, alpha)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(fast, readable, strict=True):
        assert b.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)


def test_adam_kernel_and_readable_rule_follow_the_same_trajectory():
    """A contiguous parameter (kernel) and the same values as strided views (the
    readable rule) must follow the same trajectory through ``step``."""
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
def test_flush_below_matches_its_reference_twin(dtype):
    tiny = float(np.finfo(dtype).tiny)
    a = np.array([tiny / 3, -tiny * 5, tiny * 20, -1.0, 0.0, np.nan], dtype)
    floor = tiny * 10
    got, want = flush_below(a.copy(), floor), reference.flush_below(a.copy(), floor)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[-1]) and got[2] == a[2] and got[0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_moments_of_a_dead_unit_flush_to_zero_instead_of_going_subnormal(dtype):
    """With zero gradient, m shrinks by beta_1 per step: it must reach exactly 0,
    never a subnormal float (slow on x86), and the parameter stops moving."""
    tiny = np.finfo(dtype).tiny
    size = 300
    p = np.ones(size, dtype)
    opt = optimizers.Adam(learning_rate=1e-3)
    opt.step({"w": p}, {"w": np.full(size, 0.5, dtype)})
    zero = {"w": np.zeros(size, dtype)}
    steps = int(np.log(tiny) / np.log(0.9)) + 50  # long past the subnormal range
    for _ in range(steps):
        opt.step({"w": p}, zero)
    state = opt.state_dict()
    assert np.all(state["m.w"] == 0)
    before = p.copy()
    opt.step({"w": p}, zero)
    np.testing.assert_array_equal(p, before)
    assert not np.any((state["v.w"] != 0) & (state["v.w"] < tiny))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_takes_the_products_that_would_be_subnormal_as_zero(dtype):
    """What flush-to-zero does, selected before the multiplication: a tiny gradient
    adds nothing to v, and a step below ``tiny`` leaves the parameter alone."""
    tiny = float(np.finfo(dtype).tiny)
    p, m, v = np.ones(4, dtype), np.zeros(4, dtype), np.zeros(4, dtype)
    g = np.array([np.sqrt(tiny) / 4, np.sqrt(tiny) * 1e4, 0.0, 1.0], dtype)
    adam_update(p, g, m, v, 0.9, 0.999, 1e-7, 1e-3)
    assert v[0] == 0 and v[1] > 0  # (sqrt(tiny)/4)**2 would be subnormal
    assert m[0] > 0  # g itself is a normal number: m takes it
    assert p[3] < 1 and p[2] == 1
    # A step below tiny: m tiny next to a large sqrt(v).
    p[:] = 1
    m[:] = [tiny * 10.5, 0, 0, 0]
    v[:] = [1e6, 0, 0, 0]
    adam_update(p, np.zeros(4, dtype), m, v, 0.9, 0.999, 1e-7, 1e-3)
    assert p[0] == 1
    assert m[0] == 0  # 0.9 * 10.5 tiny < tiny / 0.1: flushed
