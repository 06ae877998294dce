"""Splitting the batch over threads: the shares, the BLAS setting, failures, and
conv results that do not depend on the thread count."""

import itertools
import os
import signal
import time

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import ThreadpoolController

from tinynet.kernels import batch_split, conv, winograd_conv


def blas_threads() -> tuple[int, ...]:
    """The thread counts of the BLAS libraries loaded (NumPy's, OpenCV's, ...)."""
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    return tuple(lib.get_num_threads() for lib in libs)


@given(st.integers(1, 500), st.integers(1, 9))
@settings(max_examples=80, deadline=None, derandomize=True)
def test_shares_cover_the_batch_in_near_equal_parts(n, parts):
    shares = batch_split.shares(n, parts)
    assert len(shares) == min(n, parts)
    assert shares[0][0] == 0 and shares[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(shares))  # contiguous
    sizes = [stop - start for start, stop in shares]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_run_returns_every_share_in_order_with_blas_single_threaded(two_threads):
    before = blas_threads()
    seen = batch_split.run(lambda s, e: (s, e, blas_threads()), 9)
    assert [(s, e) for s, e, _ in seen] == [(0, 4), (4, 9)]
    assert {threads for *_, threads in seen} == {(1,) * len(before)}
    assert blas_threads() == before


def test_a_failing_share_propagates_after_every_share_finished(two_threads):
    before = blas_threads()
    finished = []

    def work(start, stop):
        if start == 0:
            raise ValueError("share 0 failed")
        finished.append(start)
        return start

    with pytest.raises(ValueError, match="share 0 failed"):
        batch_split.run(work, 10)
    assert finished == [5]
    assert blas_threads() == before
    assert batch_split.run(lambda s, e: e - s, 10) == [5, 5]  # still usable


def test_the_first_failing_share_in_share_order_propagates(two_threads):
    def work(start, stop):
        raise ValueError(f"share at {start} failed")

    with pytest.raises(ValueError, match="share at 0 failed"):
        batch_split.run(work, 10)


def test_the_caller_runs_every_share_when_no_other_thread_wakes(
    two_threads, monkeypatch
):
    """A thread whose core another process holds may wake late or not at all: the
    caller must not wait for it, only for shares it took."""
    import threading

    batch_split.run(lambda s, e: None, 4)  # the crew exists
    monkeypatch.setattr(batch_split._CREW, "start", lambda split: None)
    seen = []

    def split() -> None:
        seen.extend(batch_split.run(lambda s, e: (s, e, threading.get_ident()), 9))

    caller = threading.Thread(target=split, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "the split waited for a thread that never woke"
    assert [(s, e, ident) for s, e, ident in seen] == [
        (0, 4, caller.ident),
        (4, 9, caller.ident),
    ]


def test_splits_from_several_threads_at_once_each_get_their_own_results(two_threads):
    from concurrent.futures import ThreadPoolExecutor

    def split(k: int) -> list[int]:
        return [sum(batch_split.run(lambda s, e: k * (e - s), 10)) for _ in range(50)]

    with ThreadPoolExecutor(3) as callers:
        results = list(callers.map(split, range(1, 7)))
    assert results == [[10 * k] * 50 for k in range(1, 7)]


def test_winograd_results_do_not_depend_on_the_thread_count(two_threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 9, 9, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    dout = rng.standard_normal((11, 3, 3, 4)).astype(np.float32)
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        p, argmax = (
            np.empty((11, 3, 3, 4), np.float32),
            np.empty((11, 3, 3, 4), np.uint8),
        )
        v = np.empty((16, 11 * 9, 8), np.float32)
        winograd_conv.conv3x3_pool_forward(x, w, b, 0, 0, True, v, p, argmax)
        grads = winograd_conv.conv3x3_pool_backward(
            dout, p, argmax, True, v, w, 0, 0, x.shape
        )
        results.append((p, *grads))
    (p1, dx1, dw1, db1), (p2, dx2, dw2, db2) = results
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(dx1, dx2)
    np.testing.assert_allclose(dw1, dw2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db1, db2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooled", [False, True])
def test_conv_results_agree_to_rounding_across_thread_counts(two_threads, pooled):
    """The thread count sets the shares, and so the blocks each product runs on:
    equal to rounding, not bit for bit. OpenBLAS computes the last rows of a block
    (fewer than its tile of 16) with another kernel that adds in another order;
    seen on a Zen 4 VM: ~2e-6 on the rows at the end of the first share. (For a
    given thread count the shares are fixed, so the governor's width never changes
    the numbers: tests/test_governor.py.)"""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 9, 9, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        cols = np.empty((11 * 49, 27), np.float32)
        pool = (np.empty((11, 3, 3, 8), np.float32), np.empty((11, 3, 3, 8), np.uint8))
        y, _ = conv.conv2d_forward(
            x, w, b, 1, 1, 0, 0, 7, 7, cols, True, pool if pooled else None
        )
        dout = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        state = (*pool, True, 7, 7) if pooled else None
        grads = conv.conv2d_backward(
            dout, x, cols, w, 1, 1, 0, 0, True, None if pooled else y, state
        )
        results.append((y.copy(), *grads))
    (y1, dx1, dw1, db1), (y2, dx2, dw2, db2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw1, dw2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db1, db2, rtol=1e-5, atol=1e-5)


def test_on_the_calling_thread_the_same_shares_run_in_the_caller(two_threads):
    import threading

    from tinynet.threads import on_calling_thread

    def work(start, stop):
        return start, stop, threading.get_ident(), blas_threads()

    with on_calling_thread():
        seen = batch_split.run(work, 9)
    assert [(s, e) for s, e, *_ in seen] == [(0, 4), (4, 9)]  # as with two threads
    assert {ident for _, _, ident, _ in seen} == {threading.get_ident()}
    assert {threads for *_, threads in seen} == {(1,) * len(blas_threads())}


def test_conv_gradients_are_bit_identical_on_the_calling_thread(two_threads):
    """The governor may run a split on the caller alone: the shares, hence the
    partial sums of the weight gradient, stay the same."""
    from tinynet.threads import on_calling_thread

    rng = np.random.default_rng(0)
    x = rng.standard_normal((11, 9, 9, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    dout = rng.standard_normal((11, 7, 7, 8)).astype(np.float32)
    cols = np.empty((11 * 49, 27), np.float32)
    conv.conv2d_forward(x, w, None, 1, 1, 0, 0, 7, 7, cols)
    wide = conv.conv2d_backward(dout, x, cols, w, 1, 1, 0, 0)
    with on_calling_thread():
        one = conv.conv2d_backward(dout, x, cols, w, 1, 1, 0, 0)
    for a, b in zip(wide, one, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_splits_with_its_own_threads(two_threads):
    batch_split.run(lambda s, e: None, 4)  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not wait forever on the parent's (absent) threads
        try:
            shares = batch_split.run(lambda s, e: e - s, 10)
            os.write(write, repr(shares).encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung waiting for the parent's threads")
        time.sleep(0.01)
    with os.fdopen(read) as f:
        assert f.read() == "[5, 5]"
    assert os.WIFEXITED(done[1]) and os.WEXITSTATUS(done[1]) == 0
