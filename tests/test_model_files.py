"""Loading model files a stranger made: every cost is checked before it is paid, and
every refusal is one ValueError naming the file and the limit."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import hostile_models as hm
import numpy as np
import pytest
from conftest import REPO
from model_helpers import mlp

import tinynet
from tinynet import model_limits, saving

RELU = {"class_name": "ReLU", "config": {}}


def refusal(path):
    with pytest.raises(ValueError) as err:
        tinynet.load_model(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def run_capped(script, *args, extra_mb=48):
    """Run ``script`` with tinynet imported and the address space capped at what
    the interpreter already maps plus ``extra_mb``; return its stdout lines."""
    prelude = textwrap.dedent(f"""
        import resource, sys
        import tinynet
        with open("/proc/self/status") as f:
            mapped = next(int(l.split()[1]) for l in f if l.startswith("VmSize:"))
        cap = (mapped + {extra_mb} * 1024) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    """)
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_zip_bomb_and_a_config_asking_for_a_gigabyte_cost_no_memory(tmp_path):
    """Under a 48 MB allowance the old loader died with MemoryError on both (the
    bomb inflated 64 MB twice over; the config built 960 MB of weights)."""
    bomb = hm.write_zip_bomb(tmp_path / "bomb.npz", 64 << 20)
    big = hm.write_model(
        tmp_path / "big.npz", hm.model_config([hm.dense(60_000)], (4000,))
    )
    lines = run_capped(
        """
        for path in sys.argv[1:]:
            try:
                tinynet.load_model(path)
            except BaseException as err:
                print(type(err).__name__, err)
        """,
        bomb,
        big,
    )
    assert lines[0].startswith("ValueError") and "inflates" in lines[0]
    assert lines[1].startswith("ValueError") and "missing weight" in lines[1]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (hm.model_config([RELU] * 1001), "1,001 layers, over the limit of 1,000"),
        (hm.model_config([hm.dense(70_000)]), "units 70000 is over the limit"),
        (
            hm.model_config(
                [
                    {
                        "class_name": "Conv2D",
                        "config": {"filters": 4, "kernel_size": 300},
                    }
                ],
                (512, 512, 1),
            ),
            "window (300, 300) is over the limit of 255",
        ),
        (
            hm.model_config(
                [{"class_name": "MaxPool2D", "config": {"strides": 999}}], (8, 8, 1)
            ),
            "strides (999, 999) is over the limit",
        ),
        (
            hm.model_config(
                [
                    {
                        "class_name": "Conv2D",
                        "config": {"filters": 4096, "kernel_size": 1},
                    }
                ],
                (1024, 1024, 1),
            ),
            "output: 4,294,967,296 values, over the limit",
        ),
        (hm.model_config([RELU], (5000, 5000)), "input_shape: 25,000,000 values"),
        (hm.model_config([RELU], (2, 2, 2, 2)), "input_shape must be 1 to 3"),
        (
            hm.model_config([hm.dense(65_536), hm.dense(65_536)], (4096,)),
            f"weights: {4096 * 65_536 + 65_536 * 65_536 + 2 * 65_536:,} values, over",
        ),
        (hm.model_config([hm.dense(2)], (2, 2)), "expects inputs of shape"),
        (hm.model_config([hm.dense(1)], dtype="U9999"), "float32 or float64"),
        (hm.model_config([{"class_name": "os.system", "config": {}}]), "unknown"),
        ({**hm.model_config([RELU]), "layers": "ReLU"}, "must be a list"),
        ({**hm.model_config([RELU]), "format_version": 99}, "version 99"),
    ],
)
def test_configs_asking_too_much_are_refused_before_building(
    tmp_path, config, fragment
):
    message = refusal(hm.write_model(tmp_path / "m.npz", config))
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nests deeper than the limit of 32"),
        ('{"a": NaN}', "NaN is not a number JSON allows"),
        ('{"a": 1e999}', "too large for a float"),
        ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),
        ("x" * 1_000_001, "1,000,001 characters, over the limit of 1,000,000"),
        ('["a list"]', "must be a JSON object"),
    ],
)
def test_config_text_is_parsed_within_limits(tmp_path, text, fragment):
    path = hm.write_members(
        tmp_path / "m.npz", {"tinynet_config": hm.npy_bytes(np.array(text))}
    )
    assert fragment in refusal(path)


def test_nesting_is_measured_outside_strings():
    text = json.dumps({"s": "[[[{{{" * 100 + '\\"]]]', "t": [[["x"]]]})
    assert model_limits._nesting_depth(text) == 4
    assert model_limits.parse_config(text, "f")["t"] == [[["x"]]]


def test_a_model_at_the_layer_limit_loads(tmp_path):
    path = hm.write_model(tmp_path / "m.npz", hm.model_config([RELU] * 1000))
    assert len(tinynet.load_model(path).layers) == 1000


def saved_entries(tmp_path):
    model = mlp(seed=0)
    model.compile()
    path = tmp_path / "good.npz"
    model.save(path, include_optimizer=True)
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def npz_of(tmp_path, entries, compression=zipfile.ZIP_STORED, name="bad.npz"):
    members = {k: hm.npy_bytes(v) for k, v in entries.items()}
    return hm.write_members(tmp_path / name, members, compression)


def test_every_entry_is_checked_against_the_architecture_from_its_header(tmp_path):
    entries = saved_entries(tmp_path)
    wrong_shape = {**entries, "param/0.W": np.zeros((3, 64), np.float32)}
    assert "entry 'param/0.W' has shape (3, 64), the model expects (2, 64)" in (
        refusal(npz_of(tmp_path, wrong_shape))
    )
    wrong_dtype = {**entries, "buffer/1.moving_var": np.ones(64)}
    assert "float64, the model expects float32" in refusal(
        npz_of(tmp_path, wrong_dtype)
    )
    big_state = {**entries, "optimizer/m.0.W": np.zeros((2, 10_000), np.float32)}
    assert "'optimizer/m.0.W' has shape (2, 10000)" in refusal(
        npz_of(tmp_path, big_state)
    )


def test_entries_are_judged_by_name_before_their_headers_are_read(tmp_path):
    entries = saved_entries(tmp_path)
    members = {k: hm.npy_bytes(v) for k, v in entries.items()}
    members.update({f"stray/{i}": b"not even a header" for i in range(100)})
    path = hm.write_members(tmp_path / "strays.npz", members)
    assert "unexpected entry 'stray/0'" in refusal(path)
    slots = {f"optimizer/s{i}.0.W": entries["param/0.W"] for i in range(200)}
    path = npz_of(tmp_path, {**entries, **slots})
    assert "unexpected entry 'optimizer/s" in refusal(path)


def test_entries_sharing_their_bytes_are_refused(tmp_path):
    entries = saved_entries(tmp_path)
    members = {k: hm.npy_bytes(v) for k, v in entries.items()}
    path = hm.write_shared_member(tmp_path / "shared.npz", members, "param/4.W", "x")
    with zipfile.ZipFile(path) as zf:
        same = zf.getinfo("x.npy"), zf.getinfo("param/4.W.npy")
    assert same[0].header_offset == same[1].header_offset
    assert "more than the file holds" in refusal(path)


def test_a_header_that_lies_about_its_size_is_refused(tmp_path):
    entries = saved_entries(tmp_path)
    members = {k: hm.npy_bytes(v) for k, v in entries.items()}
    members["param/0.W"] = members["param/0.W"][:-8]  # header says (2, 64)
    path = hm.write_members(tmp_path / "short.npz", members)
    assert "declares 512 bytes of data for shape (2, 64)" in refusal(path)


def test_object_arrays_are_refused_without_numpy_pickle_advice(tmp_path):
    entries = saved_entries(tmp_path)
    with open(tmp_path / "evil.npz", "wb") as f:
        np.savez(f, **{**entries, "param/0.W": np.array([{"boom": 1}], dtype=object)})
    message = refusal(tmp_path / "evil.npz")
    assert "holds Python objects" in message and "allow_pickle" not in message


def test_zip_oddities_are_one_line_each(tmp_path):
    entries = saved_entries(tmp_path)
    bz2 = npz_of(tmp_path, entries, zipfile.ZIP_BZIP2, "bz2.npz")
    assert "unsupported zip compression" in refusal(bz2)
    other = hm.write_members(tmp_path / "other.npz", {"tinynet_config": b"x"})
    os.rename(other, tmp_path / "o.zip")
    with zipfile.ZipFile(tmp_path / "o.zip", "a") as zf:
        zf.writestr("readme.txt", "hi")
    assert "'readme.txt' is not one distinct .npy array" in refusal(tmp_path / "o.zip")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:-30])
    assert "not a readable .npz file" in refusal(tmp_path / "trunc.npz")


def test_a_damaged_deflate_stream_is_one_line(tmp_path):
    path = npz_of(tmp_path, saved_entries(tmp_path), zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("param/4.W.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename)  # the local header's end
    data[start] = 0b111  # a final block of the reserved type 3: zlib.error
    path.write_bytes(data)
    assert "'param/4.W' cannot be read (Error -3" in refusal(path)


def test_weights_that_make_no_sense_are_refused(tmp_path):
    entries = saved_entries(tmp_path)
    negative = entries["buffer/1.moving_var"].copy()
    negative[3] = -0.5
    path = npz_of(tmp_path, {**entries, "buffer/1.moving_var": negative})
    assert "negative variance (-0.5)" in refusal(path)
    for bad in (np.nan, np.inf):
        w = entries["param/4.W"].copy()
        w[0, 0] = bad
        path = npz_of(tmp_path, {**entries, "param/4.W": w})
        assert "'param/4.W' contains NaN or infinite values" in refusal(path)


def test_load_weights_checks_headers_against_the_model(tmp_path):
    entries = saved_entries(tmp_path)
    path = npz_of(tmp_path, {**entries, "param/4.b": np.zeros(30, np.float32)})
    model = mlp(seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"'param/4.b' has shape \(30,\)"):
        model.load_weights(path)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key])


def test_special_files_are_refused_at_once_saying_what_they_are(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    (tmp_path / "zero.npz").symlink_to("/dev/zero")
    (tmp_path / "folder.npz").mkdir()
    # In a subprocess with a timeout: a regression here would block on the FIFO.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tinynet\n"
            "for p in sys.argv[1:]:\n"
            "    try: tinynet.load_model(p)\n"
            "    except ValueError as err: print(err)\n",
            *(str(tmp_path / n) for n in ("pipe.npz", "zero.npz", "folder.npz")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines == [
        f"{fifo}: is a named pipe (FIFO), not an ordinary model file",
        f"{tmp_path / 'zero.npz'}: is a character device, not an ordinary model file",
        f"{tmp_path / 'folder.npz'}: is a directory, not an ordinary model file",
    ], result.stderr


def test_the_cli_reports_a_hostile_model_in_one_line(tmp_path):
    bomb = hm.write_zip_bomb(tmp_path / "bomb.npz", 8 << 20)
    result = subprocess.run(
        [sys.executable, "-m", "tinynet.cli", "predict", "--model", str(bomb), "x"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bomb.npz" in result.stderr and "inflates" in result.stderr


def test_a_file_over_the_size_cap_is_refused_from_its_size(tmp_path):
    path = tmp_path / "huge.npz"
    with open(path, "wb") as f:
        f.truncate(saving.MAX_FILE_BYTES + 1)  # sparse: no disk, no reading
    assert saving.MAX_FILE_BYTES == 2**30
    assert "huge.npz: larger than the 1 GB limit for a model file" in refusal(path)


def every_layer_class_model(dtype):
    from tinynet.layers import LAYERS as L

    layers = [
        L["Rescaling"](0.5, 0.1),
        L["Conv2D"](4, 3, strides=2, padding="same", activation="tanh"),
        L["BatchNorm"](),
        L["LeakyReLU"](0.1),
        L["MaxPool2D"](3, strides=1, padding="same"),
        L["Conv2D"](3, (2, 1), use_bias=False),
        L["AvgPool2D"](2),
        L["Sigmoid"](),
        L["Tanh"](),
        L["GlobalAvgPool2D"](),
        L["Dense"](5, activation="relu"),
        L["Dropout"](0.5),
        L["Flatten"](),
        L["Dense"](3, use_bias=False),
        L["ReLU"](),
        L["Dense"](2, activation="softmax"),
    ]
    return tinynet.Sequential(layers, input_shape=(9, 7, 2), seed=0, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_registered_layer_class_round_trips_through_a_file(tmp_path, dtype):
    """The shape rules of model_limits cover the whole registry: a layer class
    without one, or one that disagrees with the layer's build, fails here."""
    from tinynet.layers import LAYERS

    model = every_layer_class_model(dtype)
    assert {type(layer).__name__ for layer in model.layers} == set(LAYERS)
    model.save(tmp_path / "all.npz")
    loaded = tinynet.load_model(tmp_path / "all.npz")
    x = np.random.default_rng(0).random((4, 9, 7, 2))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
