"""tinynet.threads: the BLAS on one thread inside a block, restored after."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from tinynet.threads import USER_SETTINGS, blas_threads, single_threaded_blas


@pytest.fixture
def two_blas_threads(monkeypatch):
    for var in USER_SETTINGS:
        monkeypatch.delenv(var, raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() != 2:
            pytest.skip("the BLAS here cannot run two threads")
        yield


def test_one_thread_inside_the_block_and_restored_after(two_blas_threads):
    with single_threaded_blas():
        assert blas_threads() == 1
    assert blas_threads() == 2
    with pytest.raises(RuntimeError), single_threaded_blas():
        raise RuntimeError("restored on errors too")
    assert blas_threads() == 2


def test_an_explicit_user_setting_wins_when_asked(two_blas_threads, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with single_threaded_blas(unless_user_chose=True):
        assert blas_threads() == 2
    with single_threaded_blas():  # the batch split's use: always one thread
        assert blas_threads() == 1


def test_nested_blocks_keep_one_thread_until_the_outermost_ends(two_blas_threads):
    with single_threaded_blas():
        with single_threaded_blas():
            assert blas_threads() == 1
        assert blas_threads() == 1
    assert blas_threads() == 2
