"""Save and load models as one ``.npz``: a JSON config plus numeric arrays.

File layout (every entry a plain numeric or string array, never an object)::

    tinynet_config      0-d str   JSON: format, version, input shape, layers, loss, ...
    param/0.W           float     trainable parameters (Sequential.parameters() keys)
    buffer/2.moving_mean float    saved state (BatchNorm statistics)
    optimizer/m.0.W     ...       optimizer state, only with include_optimizer=True

Loading treats the file as hostile: it never unpickles, rebuilds layers only through
the fixed registry in ``tinynet.layers``, and decides everything it will allocate
before allocating it: the zip directory and ``.npy`` headers are checked by
``npz_reader``, the config and the architecture it asks for by ``model_limits``, and
every weight's key, shape and dtype against the headers before the model is built.
Every refusal is one ``ValueError`` naming the file.

Writes go to a uniquely named temporary file in the target folder, which is moved
into place with ``os.replace``, so a crash mid-write leaves any previous file whole.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from . import __version__
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .layers import layer_from_config, layer_to_config
from .model_limits import (
    MAX_CONFIG_CHARS,
    check_weight_values,
    expected_weights,
    parse_config,
)
from .npz_reader import CheckedNpz
from .weights import copy_checked

if TYPE_CHECKING:  # model.py imports this module
    from .model import Sequential

FORMAT = "tinynet-model"
WEIGHTS_FORMAT = "tinynet-weights"
FORMAT_VERSION = 1
CONFIG_KEY = "tinynet_config"

MAX_FILE_BYTES = 1 << 30
MAX_DIRECTORY_BYTES = 4 << 20  # about 40,000 entries
MAX_INFLATION = 20  # tinynet writes stored members; weights deflate less than 2x
_MAX_SLOTS = 3  # optimizer arrays per parameter (centred RMSprop with momentum: 3)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]
) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over
    ``path``. On any error the temporary file is removed and ``path`` is untouched.

    - A symlink is written through: its target gets the new content and the link
      stays a link (the folder written to is the target's).
    - An existing file keeps its permission bits (a 0600 model stays 0600); a new
      one gets what ``open()`` would give it.
    - The temporary name holds the writer's process id; temporary files of the same
      target left by a process that no longer runs (killed mid-save) are removed.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist.
    ValueError
        If ``path`` exists and is not a regular file (a directory, a FIFO, ...).
    """
    path = Path(os.path.realpath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: folder {path.parent} does not exist"
        )
    try:
        mode = stat.S_IMODE(_existing_regular_file(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    _sweep_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _existing_regular_file(path: Path) -> os.stat_result:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"cannot write {path}: it exists and is not a regular file")
    return info


def _sweep_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.<8 random chars>.tmp`` files (as ``atomic_write``
    names them) whose writer process has ended."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[a-z0-9_]{{8}}\.tmp")
    for entry in os.scandir(path.parent):
        match = pattern.fullmatch(entry.name)
        if match and not _process_exists(int(match[1])):
            Path(entry.path).unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def _check_finite(
    path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]
) -> None:
    """Refuse to write weights no one can use, so a diverged run never replaces a
    good file."""
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(
                f"{path}: not saved, {key!r} holds NaN or infinite values (did "
                "training diverge?); any previous file is left as it was"
            )


def _write_npz(
    path: str | os.PathLike[str], config: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    _check_finite(path, arrays)
    entries = {CONFIG_KEY: np.array(json.dumps(config)), **arrays}
    # mypy matches **entries against savez's allow_pickle: bool keyword as well.
    atomic_write(path, lambda f: np.savez(f, **entries))  # type: ignore[arg-type]


def _model_config(model: Any) -> dict[str, Any]:
    return {
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "dtype": model.dtype.name,
        "layers": [layer_to_config(layer) for layer in model.layers],
    }


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    include_optimizer: bool = False,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (architecture, parameters, buffers, metadata) to ``path``.

    ``metadata`` is any JSON-serialisable dict stored alongside (for example the
    command that trained the model and its test accuracy). With
    ``include_optimizer=True`` the optimizer's state is stored too, so training can
    resume exactly where it stopped.
    """
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tinynet_version": __version__,
        "name": model.name,
        **_model_config(model),
        "num_classes": int(model.output_shape[-1]),
        "loss": losses_mod.to_config(model.loss) if model.loss is not None else None,
        "optimizer": (
            optimizers_mod.to_config(model.optimizer)
            if model.optimizer is not None
            else None
        ),
        "metrics": list(model.metrics),
        "metadata": dict(metadata or {}),
    }
    arrays = {f"param/{k}": v for k, v in model.parameters().items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    if include_optimizer:
        if model.optimizer is None:
            raise ValueError("include_optimizer=True, but the model is not compiled")
        arrays.update(
            {f"optimizer/{k}": v for k, v in model.optimizer.state_dict().items()}
        )
    try:
        json.dumps(config)
    except TypeError as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from None
    _write_npz(path, config, arrays)


def save_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Write only the parameters and buffers, plus the architecture to check against."""
    config = {
        "format": WEIGHTS_FORMAT,
        "format_version": FORMAT_VERSION,
        "tinynet_version": __version__,
        **_model_config(model),
    }
    arrays = {f"param/{k}": v for k, v in model.parameters().items()}
    arrays.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    _write_npz(path, config, arrays)


# --------------------------------------------------------------------- reading
def _open(path: Path) -> CheckedNpz:
    return CheckedNpz(
        path,
        max_file_bytes=MAX_FILE_BYTES,
        max_directory_bytes=MAX_DIRECTORY_BYTES,
        max_data_bytes=MAX_FILE_BYTES,
        max_inflation=MAX_INFLATION,
        what="model",
    )


def _read_config(
    path: Path, npz: CheckedNpz, formats: tuple[str, ...]
) -> dict[str, Any]:
    """The file's JSON config, if it is one of ``formats`` in a version we read."""
    if CONFIG_KEY not in npz.keys:
        raise ValueError(f"{path}: not a tinynet file (no {CONFIG_KEY!r} entry)")
    header = npz.header(CONFIG_KEY)
    if header.dtype.kind != "U" or header.shape != ():
        raise ValueError(f"{path}: entry {CONFIG_KEY!r} must be a JSON string")
    if header.dtype.itemsize > 4 * MAX_CONFIG_CHARS:
        raise ValueError(
            f"{path}: the config has {header.dtype.itemsize // 4:,} characters, over "
            f"the limit of {MAX_CONFIG_CHARS:,}"
        )
    config = parse_config(str(npz.read(CONFIG_KEY)), str(path))
    if config.get("format") not in formats:
        raise ValueError(
            f"{path}: expected a {formats[0]!r} file, found {config.get('format')!r}"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {config.get('format_version')!r} is not supported "
            f"(this tinynet reads version {FORMAT_VERSION})"
        )
    return config


def _check_entries(
    path: Path,
    npz: CheckedNpz,
    expected: Mapping[str, tuple[int, ...]],
    dtype: np.dtype,
    *,
    optimizer: bool,
) -> None:
    """The file holds every ``param/`` and ``buffer/`` entry the model expects, each
    with its shape and dtype, and nothing else.

    Names are judged first, from the zip directory, so a file of 40,000 stray
    entries is refused before one header is read. With ``optimizer=True`` the file
    may also hold the counters and up to ``_MAX_SLOTS`` ``optimizer/<slot>.<param>``
    entries per parameter, each shaped like its parameter; otherwise optimizer
    entries are ignored. No array has been read or built yet.
    """
    names = [key for key in npz.keys if key != CONFIG_KEY]
    missing = sorted(set(expected) - set(names))
    if missing:
        raise ValueError(
            f"{path}: missing weight {missing[0]!r} (and {len(missing) - 1} more)"
        )
    shapes = dict(expected)
    slots_left = _MAX_SLOTS * sum(key.startswith("param/") for key in expected)
    for key in names:
        if key in expected or (key.startswith("optimizer/") and not optimizer):
            continue
        name = key.removeprefix("optimizer/")
        if key.startswith("optimizer/") and name in ("iterations", "epoch"):
            shapes[key] = ()
            continue
        param = expected.get(f"param/{name.partition('.')[2]}")
        if key.startswith("optimizer/") and param is not None and slots_left > 0:
            shapes[key] = param
            slots_left -= 1
            continue
        raise ValueError(f"{path}: unexpected entry {key!r}")
    for key, shape in shapes.items():
        header = npz.header(key)
        if header.dtype.kind not in "fiu":
            raise ValueError(
                f"{path}: entry {key!r} has non-numeric dtype {header.dtype}"
            )
        if header.shape != shape:
            raise ValueError(
                f"{path}: entry {key!r} has shape {header.shape}, the model expects "
                f"{shape}"
            )
        if key in expected and header.dtype != dtype:
            raise ValueError(
                f"{path}: entry {key!r} has dtype {header.dtype}, the model expects "
                f"{dtype}"
            )


def _build_from_config(
    path: Path, config: dict[str, Any], npz: CheckedNpz
) -> Sequential:
    """The model the config describes, built only after its weights were found in
    the file's headers with the right shapes."""
    from .model import Sequential

    try:
        specs = config["layers"]
        if not isinstance(specs, list):
            raise ValueError("'layers' must be a list")
        layers = [layer_from_config(spec) for spec in specs]
        dtype = np.dtype(config.get("dtype", "float32"))
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        expected = expected_weights(layers, config["input_shape"])
    except KeyError as err:
        raise ValueError(f"{path}: config lacks the entry {err}") from None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot rebuild the model: {err}") from None
    _check_entries(path, npz, expected, dtype, optimizer=True)
    try:
        return Sequential(
            layers,
            input_shape=tuple(config["input_shape"]),
            dtype=dtype,
            name=str(config.get("name", "sequential")),
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot rebuild the model: {err}") from None


def _assign(path: Path, model: Any, npz: CheckedNpz) -> None:
    """Read the ``param/*`` and ``buffer/*`` entries and copy them into ``model``."""
    targets = {f"param/{k}": v for k, v in model.parameters().items()}
    targets.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    arrays = {key: npz.read(key) for key in targets}
    check_weight_values(str(path), arrays)
    copy_checked(targets, arrays, source=str(path), same_dtype=True)


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """Rebuild a ``Sequential`` saved by ``model.save``; compiled if it was when saved.

    The metadata stored with it is available as ``model.metadata``. Any file that is
    not a sound tinynet model raises one ``ValueError`` naming it (or
    ``FileNotFoundError``); see the module docstring for what is checked.
    """
    path = Path(path)
    with _open(path) as npz:
        config = _read_config(path, npz, (FORMAT,))
        model = _build_from_config(path, config, npz)
        _assign(path, model, npz)
        state = {
            key[len("optimizer/") :]: npz.read(key)
            for key in npz.keys
            if key.startswith("optimizer/")
        }
    if config.get("loss") is not None:
        try:
            optimizer = (
                optimizers_mod.from_config(config["optimizer"])
                if config.get("optimizer") is not None
                else "adam"
            )
            model.compile(
                optimizer=optimizer,
                loss=losses_mod.from_config(config["loss"]),
                metrics=config.get("metrics", ()),
            )
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(
                f"{path}: invalid loss or optimizer config: {err}"
            ) from None
        if state:
            try:
                model.optimizer.load_state_dict(state)
            except ValueError as err:
                raise ValueError(f"{path}: optimizer state: {err}") from None
    metadata = config.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: 'metadata' must be a JSON object")
    model.metadata = metadata
    return model


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load weights saved by ``save_weights`` (or ``save``) into a model of the same
    architecture. The layer classes and every shape and dtype must match."""
    path = Path(path)
    with _open(path) as npz:
        config = _read_config(path, npz, (WEIGHTS_FORMAT, FORMAT))
        specs = config.get("layers")
        stored = [
            spec.get("class_name") if isinstance(spec, dict) else None
            for spec in (specs if isinstance(specs, list) else [])
        ]
        ours = [type(layer).__name__ for layer in model.layers]
        if stored != ours:
            raise ValueError(
                f"{path}: saved for layers {stored[:20]}, but the model has layers "
                f"{ours[:20]}"
            )
        expected = {f"param/{k}": v.shape for k, v in model.parameters().items()}
        expected.update({f"buffer/{k}": v.shape for k, v in model.buffers().items()})
        _check_entries(path, npz, expected, model.dtype, optimizer=False)
        _assign(path, model, npz)
