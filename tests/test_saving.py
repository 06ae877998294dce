"""save / load_model / save_weights / load_weights: round trips, resume, bad files."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from model_helpers import mlp, spirals

import tinynet
from tinynet import saving


def trained_model(epochs=2, **compile_kwargs):
    x, y = spirals(30)
    model = mlp(seed=1)
    model.compile(**compile_kwargs)
    model.fit(x, y, epochs=epochs, batch_size=16, seed=0, verbose=0)
    return model, x, y


def test_save_load_gives_identical_predictions_and_metadata(tmp_path):
    model, x, _ = trained_model()
    path = tmp_path / "m.npz"
    model.save(path, note="hello", accuracy=0.5)
    loaded = tinynet.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers
    ]
    assert loaded.metadata == {"note": "hello", "accuracy": 0.5}
    assert loaded.input_shape == model.input_shape and loaded.loss is not None


def test_resuming_from_a_checkpoint_matches_uninterrupted_training(tmp_path):
    x, y = spirals(30)

    def fresh():
        m = mlp(seed=5, dropout=0.0)
        m.compile(optimizer="adam")
        return m

    straight = fresh()
    for _ in range(2):
        straight.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    first = fresh()
    first.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    first.save(tmp_path / "ckpt.npz", include_optimizer=True)
    resumed = tinynet.load_model(tmp_path / "ckpt.npz")
    resumed.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for key, value in straight.get_weights().items():
        np.testing.assert_array_equal(resumed.get_weights()[key], value)


def test_weights_only_round_trip_and_architecture_check(tmp_path):
    model, x, _ = trained_model()
    model.save_weights(tmp_path / "w.npz")
    other = mlp(seed=9)
    other.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    different = mlp(seed=0, batchnorm=False)
    with pytest.raises(ValueError, match="layers"):
        different.load_weights(tmp_path / "w.npz")


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture
def saved(tmp_path):
    model, _, _ = trained_model(epochs=1)
    path = tmp_path / "good.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return path, arrays


def test_a_file_that_is_not_a_tinynet_model(tmp_path):
    path = tmp_path / "other.npz"
    write_npz(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a tinynet file"):
        tinynet.load_model(path)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="text.npz"):
        tinynet.load_model(text)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tinynet.load_model(tmp_path / "missing.npz")


def test_a_truncated_file_is_reported_with_its_name(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        tinynet.load_model(cut)


def test_pickled_objects_are_refused_never_unpickled(saved, tmp_path):
    _, arrays = saved
    evil = tmp_path / "evil.npz"
    arrays["param/0.W"] = np.array([{"boom": 1}], dtype=object)
    write_npz(evil, **arrays)
    with pytest.raises(ValueError, match="evil.npz"):
        tinynet.load_model(evil)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda a: a.pop("param/0.W"), "param/0.W"),
        (lambda a: a.update({"param/0.W": np.zeros((3, 3), np.float32)}), "param/0.W"),
        (lambda a: a.update({"param/0.W": a["param/0.W"].astype(np.float64)}), "dtype"),
        (lambda a: a.update({"param/99.W": np.zeros(2, np.float32)}), "param/99.W"),
        (lambda a: a.update({"tinynet_config": np.array("{not json")}), "JSON"),
    ],
)
def test_damaged_entries_are_named(saved, tmp_path, change, fragment):
    _, arrays = saved
    change(arrays)
    path = tmp_path / "bad.npz"
    write_npz(path, **arrays)
    with pytest.raises(ValueError) as err:
        tinynet.load_model(path)
    assert fragment in str(err.value) and "bad.npz" in str(err.value)


def test_unknown_layer_class_in_config_is_refused(saved, tmp_path):
    _, arrays = saved
    config = json.loads(str(arrays["tinynet_config"]))
    config["layers"][0]["class_name"] = "os.system"
    arrays["tinynet_config"] = np.array(json.dumps(config))
    path = tmp_path / "unknown.npz"
    write_npz(path, **arrays)
    with pytest.raises(ValueError, match="unknown layer class 'os.system'"):
        tinynet.load_model(path)


def test_a_failed_save_leaves_the_previous_file_whole(saved, monkeypatch):
    path, _ = saved
    before = path.read_bytes()
    model, _, _ = trained_model(epochs=1)

    def crash(f, **arrays):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["good.npz"]


def test_metadata_must_be_json(tmp_path):
    model, _, _ = trained_model(epochs=1)
    with pytest.raises(TypeError, match="JSON"):
        model.save(tmp_path / "m.npz", when=object())
    assert not (tmp_path / "m.npz").exists()


def test_saving_into_a_missing_folder_names_it(tmp_path):
    model, _, _ = trained_model(epochs=1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        saving.save_model(model, tmp_path / "nowhere" / "m.npz")


def test_saved_files_get_ordinary_permissions(tmp_path):
    model, _, _ = trained_model(epochs=1)
    model.save(tmp_path / "m.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_resaving_keeps_the_file_permissions(saved):
    path, _ = saved
    os.chmod(path, 0o600)
    model, _, _ = trained_model(epochs=1)
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_saving_through_a_symlink_writes_its_target_and_keeps_the_link(saved):
    target, _ = saved
    link = target.parent / "latest.npz"
    link.symlink_to(target.name)
    model, x, _ = trained_model(epochs=3)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == target.name
    np.testing.assert_array_equal(
        tinynet.load_model(target).predict(x), model.predict(x)
    )


def test_a_path_that_is_not_a_regular_file_is_not_replaced(tmp_path):
    model, _, _ = trained_model(epochs=1)
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        model.save(tmp_path / "m.npz")
    assert (tmp_path / "m.npz").is_dir()


def test_a_save_killed_midway_leaves_a_temporary_the_next_save_removes(saved):
    path, _ = saved
    before = path.read_bytes()
    script = textwrap.dedent("""
        import sys, time
        import numpy as np
        sys.path.insert(0, sys.argv[2])
        from model_helpers import mlp

        def stall(f, **arrays):
            f.write(b"half a model")
            f.flush()
            print("writing", flush=True)
            time.sleep(600)

        np.savez = stall
        mlp().save(sys.argv[1])
    """)
    tests = os.path.dirname(__file__)
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path), tests],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "writing\n"
    finally:
        child.kill()
        child.wait()
    assert len([n for n in os.listdir(path.parent) if n.endswith(".tmp")]) == 1
    assert path.read_bytes() == before
    model, _, _ = trained_model(epochs=1)
    model.save(path)
    assert os.listdir(path.parent) == ["good.npz"]


def test_only_temporaries_of_ended_writers_of_the_same_target_are_swept(saved):
    path, _ = saved
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = ended.stdout.strip()  # the pid of a process that has ended
    stale = path.parent / f".{path.name}.{dead}.k2j4_x9a.tmp"
    live = path.parent / f".{path.name}.{os.getpid()}.x9z1bb0c.tmp"
    other = path.parent / f".other.npz.{dead}.a1b2c3d4.tmp"
    cousin = path.parent / f".{path.name}.{dead}.{dead}.a1b2c3d4.tmp"
    for leftover in (stale, live, other, cousin):
        leftover.write_bytes(b"half a model")
    model, _, _ = trained_model(epochs=1)
    model.save(path)
    assert not stale.exists()
    # Kept: a writer still running (this one), other targets ("good.npz.<dead>").
    assert live.exists() and other.exists() and cousin.exists()


def test_non_finite_weights_are_not_saved_over_a_good_file(saved):
    path, _ = saved
    before = path.read_bytes()
    model, _, _ = trained_model(epochs=1)
    model.parameters()["4.W"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"not saved, 'param/4.W' holds NaN"):
        model.save(path)
    with pytest.raises(ValueError, match="not saved"):
        model.save_weights(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["good.npz"]


def test_save_keeps_the_models_metadata_updated_by_keywords(tmp_path):
    model = tinynet.Sequential([tinynet.layers.Dense(3)], input_shape=(4,), seed=0)
    model.metadata = {"temperature": 1.5, "note": "old"}
    model.save(tmp_path / "m.npz", note="new")
    loaded = tinynet.load_model(tmp_path / "m.npz")
    assert loaded.metadata == {"temperature": 1.5, "note": "new"}
    loaded.save(tmp_path / "again.npz")
    assert tinynet.load_model(tmp_path / "again.npz").metadata == loaded.metadata
