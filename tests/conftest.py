"""Shared fixtures: where the real data sets are, and the repository root."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def data_root() -> Path:
    """``$TINYNET_DATA``, or ``../shared/datasets`` beside the repository."""
    return Path(os.environ.get("TINYNET_DATA") or SHARED / "datasets")


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The folder with the four real MNIST files; skips (with the reason) if absent."""
    folder = data_root() / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {folder} (set TINYNET_DATA)")
    return folder


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """No ``TINYNET_DATA`` and the user cache under tmp_path, so a data-set lookup
    sees only the folders a test writes (and system folders such as Debian's)."""
    monkeypatch.delenv("TINYNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Iterator[None]:
    """The user cache (downloads, decoded arrays) of the whole session under a
    temporary folder, for this process and the examples it starts: the tests never
    write to the user's own ``~/.cache``."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Numba (and so the batch split) set to two threads for the test; skips where
    the machine gives Numba one."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("the machine gives Numba a single thread")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)
