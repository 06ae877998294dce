"""The chunks of a batch (``kernels.conv.batch_chunks``) that the Winograd drivers
and the few-taps block run: fixed by the batch and the thread count, claimed by
whichever thread is free, and the numbers the same whoever ran them."""

import functools
import threading

import numpy as np
import pytest

from tinynet import BatchNorm, Conv2D, Dense, Flatten, ReLU, Sequential
from tinynet.kernels import batch_split, conv, winograd_conv
from tinynet.kernels.chunk_sums import InOrderSums
from tinynet.kernels.winograd43 import F4X4
from tinynet.plan import FewTapsConvBNReLU
from tinynet.threads import on_calling_thread


def assert_same_whoever_runs_the_chunks(run):
    """``run()`` gives the same arrays, bit for bit, five times with two threads
    claiming chunks as they come and once with the caller alone."""
    shared = [run() for _ in range(5)]
    with on_calling_thread():
        alone = run()
    for results in shared:
        for got, want in zip(results, alone, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", [1, 2, 7, 128])
@pytest.mark.parametrize("bytes_per_image", [1, 100_000, 10**9])
def test_chunks_cover_the_batch_in_cache_sized_parts_per_thread(
    two_threads, n, bytes_per_image
):
    chunks = conv.batch_chunks(n, bytes_per_image)
    assert [s for s, _ in chunks] == [0] + [e for _, e in chunks[:-1]]
    assert chunks[-1][1] == n
    assert len(chunks) % 2 == 0 or len(chunks) == n
    sizes = [e - s for s, e in chunks]
    assert max(sizes) - min(sizes) <= 1
    in_cache = conv.images_per_chunk(n, bytes_per_image)
    assert max(sizes) <= in_cache


def test_every_chunk_is_claimed_once_across_threads(two_threads):
    claims: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(claimed):
        for i in claimed:
            with lock:
                claims.append((i, threading.get_ident()))

    conv.claim_chunks(work, 50)
    assert sorted(i for i, _ in claims) == list(range(50))


def test_the_caller_claims_every_chunk_when_no_other_thread_wakes(
    two_threads, monkeypatch
):
    batch_split.run(lambda s, e: None, 4)  # the crew exists
    monkeypatch.setattr(batch_split._CREW, "start", lambda split: None)
    seen: list[int] = []
    caller = threading.Thread(
        target=conv.claim_chunks, args=(seen.extend, 9), daemon=True
    )
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "the chunks waited for a thread that never woke"
    assert seen == list(range(9))


def test_map_chunks_returns_each_chunks_result_in_chunk_order(two_threads):
    chunks = conv.batch_chunks(37, 10**9)  # one image a chunk
    assert conv.map_chunks(lambda s, e: (s, e), 37, 10**9) == chunks


def test_gradients_do_not_depend_on_which_thread_ran_which_chunk(
    two_threads, monkeypatch
):
    """Two threads claiming chunks as they come, or the caller alone: the same
    chunks, summed in the same order, so the same bits."""
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)  # one image a chunk: many claims
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 10, 10, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 5)).astype(np.float32)
    dy = rng.standard_normal((9, 8, 8, 5)).astype(np.float32)

    assert_same_whoever_runs_the_chunks(
        lambda: winograd_conv.conv3x3_backward(
            dy, None, w, 0, 0, x.shape, True, x, F4X4
        )
    )


def test_few_taps_step_does_not_depend_on_which_thread_ran_which_chunk(
    two_threads, monkeypatch
):
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    model = Sequential(
        [Conv2D(6, 3, use_bias=False), BatchNorm(), ReLU(), Flatten(), Dense(3)],
        input_shape=(9, 9, 1),
        seed=0,
    )
    (step,) = [s for s in model.plan if isinstance(s, FewTapsConvBNReLU)]
    x = np.random.default_rng(1).random((7, 9, 9, 1), dtype=np.float32)
    dout = np.random.default_rng(2).standard_normal((7, 7, 7, 6)).astype(np.float32)

    def run() -> list[np.ndarray]:
        y = step.forward(x, training=True)
        dx = step.backward(dout)
        return [y, dx, *(g.copy() for g in step.grads.values())]

    assert_same_whoever_runs_the_chunks(run)


@pytest.mark.parametrize("count", [1, 2, 5, 16])
def test_in_order_sums_add_the_chunks_as_reduce_does_whatever_order_they_finish(
    count,
):
    rng = np.random.default_rng(count)
    parts = rng.standard_normal((count, 3, 4)).astype(np.float32)
    small = rng.standard_normal((count, 2)).astype(np.float32)
    want = functools.reduce(np.add, parts), functools.reduce(np.add, small)
    for order in (range(count), reversed(range(count)), rng.permutation(count)):
        sums = InOrderSums(parts.copy(), small.copy())
        for i in order:
            sums.finished(int(i))
        for got, expected in zip(sums.totals(), want, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_in_order_sums_refuse_totals_before_every_chunk_finished():
    sums = InOrderSums(np.ones((3, 2)))
    sums.finished(0)
    sums.finished(2)
    with pytest.raises(RuntimeError, match="not finished"):
        sums.totals()


def test_in_order_sums_from_chunks_claimed_by_two_threads(two_threads):
    parts = np.random.default_rng(0).standard_normal((40, 64)).astype(np.float32)
    want = functools.reduce(np.add, parts)
    for _ in range(5):
        slots = np.empty_like(parts)
        sums = InOrderSums(slots)

        def work(claimed, slots=slots, sums=sums):
            for i in claimed:
                slots[i] = parts[i]
                sums.finished(i)

        conv.claim_chunks(work, len(parts))
        np.testing.assert_array_equal(sums.totals()[0], want)
