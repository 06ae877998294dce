"""Hostile model files, generated on the spot for the loading tests and for
``benchmarks/bench_hostile_models.py``: zip bombs, huge or deeply nested configs,
models of many layers. Each writer returns the path it wrote."""

import io
import json
import zipfile

import numpy as np

from tinynet.saving import CONFIG_KEY, FORMAT, FORMAT_VERSION


def model_config(layers, input_shape=(4,), **extra):
    """A minimal ``tinynet-model`` config around ``layers`` (list of specs)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "input_shape": list(input_shape),
        "dtype": "float32",
        "layers": layers,
        **extra,
    }


def dense(units, **config):
    return {"class_name": "Dense", "config": {"units": units, **config}}


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_members(path, members, compression=zipfile.ZIP_STORED):
    """A zip of ``{name: bytes}``, ``.npy`` appended to each name as ``savez`` does."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)
    return path


def write_model(path, config, arrays=None, compression=zipfile.ZIP_STORED):
    """A tinynet-shaped ``.npz``: ``config`` as the JSON entry plus ``arrays``."""
    members = {CONFIG_KEY: npy_bytes(np.array(json.dumps(config)))}
    members.update({k: npy_bytes(v) for k, v in (arrays or {}).items()})
    return write_members(path, members, compression)


def write_zip_bomb(path, uncompressed_bytes):
    """A valid config for ``Dense(1)`` on 4 inputs, whose ``param/0.W`` member inflates
    to ``uncompressed_bytes`` of zeros (a float32 vector), deflated ~1000 to 1."""
    n = uncompressed_bytes // 4
    config = model_config([dense(1)])
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (n,)}
    )
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{CONFIG_KEY}.npy", npy_bytes(np.array(json.dumps(config))))
        with zf.open("param/0.W.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            left = n * 4
            while left:
                member.write(chunk[: min(left, len(chunk))])
                left -= min(left, len(chunk))
    return path


def write_deep_config(path, depth):
    """A config whose metadata nests ``depth`` lists: ``[[[...]]]``."""
    text = json.dumps(model_config([dense(1)]))
    text = text[:-1] + ', "metadata": {"x": ' + "[" * depth + "]" * depth + "}}"
    members = {CONFIG_KEY: npy_bytes(np.array(text))}
    return write_members(path, members)


def write_shared_member(path, members, shared, alias):
    """Like ``write_members``, plus a second directory entry ``alias`` pointing at the
    bytes of member ``shared``: the trick of non-recursive zip bombs, which make many
    entries inflate one stream (they also forge a local header per entry, which
    this one does not)."""
    data = write_members(path, members).read_bytes()
    end = data.rindex(b"PK\x05\x06")  # the end record: counts and directory size
    directory_at = int.from_bytes(data[end + 16 : end + 20], "little")
    directory = data[directory_at:end]
    name = f"{shared}.npy".encode()
    at = directory.index(name) - 46  # a central record's name follows 46 bytes
    extra = int.from_bytes(directory[at + 30 : at + 32], "little")
    comment = int.from_bytes(directory[at + 32 : at + 34], "little")
    record = directory[at : at + 46 + len(name) + extra + comment]
    duplicate = record.replace(name, f"{alias}.npy".encode())
    end_record = bytearray(data[end:])
    count = int.from_bytes(end_record[10:12], "little") + 1
    end_record[8:12] = count.to_bytes(2, "little") * 2  # entries: this disk, total
    end_record[12:16] = (len(directory) + len(duplicate)).to_bytes(4, "little")
    path.write_bytes(data[:end] + duplicate + bytes(end_record))
    return path
