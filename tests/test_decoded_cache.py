"""The decoded-array cache of IDX data sets: used when valid, never when stale,
corrupt or hostile (tinynet.datasets.decoded_cache)."""

import gzip
import json
import os

import numpy as np
import pytest
from dataset_helpers import write_fake_dataset

from tinynet.datasets import decoded_cache, idx_dataset
from tinynet.datasets.idx import CorruptFileError, encode_idx


@pytest.fixture
def fake(isolated):
    """A small valid data set in its own folder; the user cache under tmp_path."""
    spec, arrays = write_fake_dataset(isolated / "data")
    return spec, arrays, isolated / "data"


def assert_loaded(result, arrays):
    (x, y), (xt, yt) = result
    for got, key in ((x, "train_images"), (y, "train_labels")):
        np.testing.assert_array_equal(got, arrays[key])
    for got, key in ((xt, "test_images"), (yt, "test_labels")):
        np.testing.assert_array_equal(got, arrays[key])


def count_file_reads(monkeypatch):
    """Count the IDX files read from disk (not from the cache) from now on."""
    reads = []
    real = idx_dataset.read_payload

    def counted(path, **kwargs):
        reads.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(idx_dataset, "read_payload", counted)
    return reads


def entry(spec, key):
    return decoded_cache.entry_paths(spec.decoded_cache_dir(), spec.files[key].name)


def test_second_load_reads_the_cache_not_the_files(fake, monkeypatch):
    spec, arrays, folder = fake
    assert_loaded(spec.load_data(folder), arrays)
    reads = count_file_reads(monkeypatch)
    result = spec.load_data(folder)
    assert_loaded(result, arrays)
    assert reads == []
    x = result[0][0]
    x[0, 0, 0] ^= 1  # writable, copy-on-write: the cached file keeps its bytes
    assert_loaded(spec.load_data(folder), arrays)


def test_cache_false_neither_reads_nor_writes_it(fake, monkeypatch):
    spec, arrays, folder = fake
    assert_loaded(spec.load_data(folder, cache=False), arrays)
    assert not spec.decoded_cache_dir().exists()
    spec.load_data(folder)
    reads = count_file_reads(monkeypatch)
    spec.load_data(folder, cache=False)
    assert len(reads) == 4


def test_changed_source_makes_the_entry_stale(fake):
    spec, arrays, folder = fake
    spec.load_data(folder, verify=False)
    new = np.full((6,), 3, np.uint8)  # same count, other labels
    path = folder / (spec.files["train_labels"].name + ".gz")
    path.write_bytes(gzip.compress(encode_idx(new), mtime=0))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    (_, y), _ = spec.load_data(folder, verify=False)
    np.testing.assert_array_equal(y, new)
    # With verification the changed file is rejected, not served from the cache.
    with pytest.raises(CorruptFileError, match="checksum"):
        spec.load_data(folder)


@pytest.mark.parametrize(
    "damage",
    [
        lambda npy: npy.write_bytes(npy.read_bytes()[:-1] + b"\x07"),  # tampered
        lambda npy: npy.write_bytes(npy.read_bytes()[:100]),  # truncated
        lambda npy: npy.write_bytes(b"not a numpy file at all"),
        lambda npy: np.save(  # a pickle: must never be loaded
            npy, np.array([object()] * 6, dtype=object), allow_pickle=True
        ),
        lambda npy: np.save(npy, np.zeros(6, np.int64)),  # wrong dtype
        lambda npy: npy.unlink(),
    ],
    ids=["tampered", "truncated", "garbage", "pickle", "dtype", "missing"],
)
def test_damaged_entry_falls_back_to_the_file(fake, monkeypatch, damage):
    spec, arrays, folder = fake
    spec.load_data(folder)
    npy, _ = entry(spec, "train_labels")
    damage(npy)
    reads = count_file_reads(monkeypatch)
    assert_loaded(spec.load_data(folder), arrays)
    assert [p.name for p in reads] == [spec.files["train_labels"].name + ".gz"]
    # ... and the entry was written afresh.
    reads.clear()
    assert_loaded(spec.load_data(folder), arrays)
    assert reads == []


def test_damaged_stamp_falls_back_to_the_file(fake, monkeypatch):
    spec, arrays, folder = fake
    spec.load_data(folder)
    _, stamp = entry(spec, "test_images")
    stamp.write_text("{not json")
    _, other = entry(spec, "test_labels")
    data = json.loads(other.read_text())
    data["size"] += 1
    other.write_text(json.dumps(data))
    reads = count_file_reads(monkeypatch)
    assert_loaded(spec.load_data(folder), arrays)
    assert len(reads) == 2


def test_consistent_forgery_is_refused_when_verifying(fake, monkeypatch):
    # Array and stamp rewritten together (say by an unverified load of another
    # copy): the published checksum still decides.
    spec, arrays, folder = fake
    spec.load_data(folder)
    npy, stamp = entry(spec, "train_images")
    forged = arrays["train_images"] ^ 1
    np.save(npy, forged)
    data = json.loads(stamp.read_text())
    data["payload_sha256"] = decoded_cache.payload_sha256(forged)
    stamp.write_text(json.dumps(data))
    (x, _), _ = spec.load_data(folder, verify=False)
    np.testing.assert_array_equal(x, forged)  # verify=False trusts its stamp
    assert_loaded(spec.load_data(folder), arrays)


def test_unwritable_cache_still_loads(fake, monkeypatch, isolated):
    spec, arrays, folder = fake
    blocker = isolated / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert_loaded(spec.load_data(folder), arrays)
    assert_loaded(spec.load_data(folder), arrays)
