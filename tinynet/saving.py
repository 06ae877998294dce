"""Save and load models as one ``.npz``: a JSON config plus numeric arrays.

File layout (every entry a plain numeric or string array, never an object)::

    tinynet_config      0-d str   JSON: format, version, input shape, layers, loss, ...
    param/0.W           float     trainable parameters (Sequential.parameters() keys)
    buffer/2.moving_mean float    saved state (BatchNorm statistics)
    optimizer/m.0.W     ...       optimizer state, only with include_optimizer=True

Loading never unpickles (``allow_pickle=False``), rebuilds layers only through the fixed
registry in ``tinynet.layers``, and checks every key, shape and dtype before touching
the model, naming the offending entry. Writes go to a temporary file in the target
folder and are moved into place with ``os.replace``, so a crash mid-write leaves any
previous file whole.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import __version__
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .layers import layer_from_config, layer_to_config

FORMAT = "tinynet-model"
WEIGHTS_FORMAT = "tinynet-weights"
FORMAT_VERSION = 1
CONFIG_KEY = "tinynet_config"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over
    ``path``. On any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: folder {path.parent} does not exist"
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the permissions open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_npz(
    path: str | os.PathLike, config: dict, arrays: dict[str, np.ndarray]
) -> None:
    entries = {CONFIG_KEY: np.array(json.dumps(config)), **arrays}
    atomic_write(path, lambda f: np.savez(f, **entries))


def _model_config(model: Any) -> dict[str, Any]:
    return {
        "input_shape": list(model.input_shape),
        "output_shape": list(model.output_shape),
        "dtype": model.dtype.name,
        "layers": [layer_to_config(layer) for layer in model.layers],
    }


def save_model(
    model: Any,
    path: str | os.PathLike,
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


def save_weights(model: Any, path: str | os.PathLike) -> None:
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
def _read_npz(
    path: str | os.PathLike, expected_format: str
) -> tuple[dict, dict[str, np.ndarray]]:
    """Read every entry of a tinynet ``.npz``; raise ValueError naming the file if it
    is not one, is damaged, or holds anything but plain arrays."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    except ValueError as err:
        # numpy refuses object arrays without allow_pickle: report it, never unpickle.
        raise ValueError(f"{path}: not a valid tinynet file ({err})") from None
    if CONFIG_KEY not in arrays:
        raise ValueError(f"{path}: not a tinynet file (no {CONFIG_KEY!r} entry)")
    raw = arrays.pop(CONFIG_KEY)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise ValueError(f"{path}: entry {CONFIG_KEY!r} must be a JSON string")
    try:
        config = json.loads(str(raw))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: entry {CONFIG_KEY!r} is not valid JSON ({err})"
        ) from None
    if not isinstance(config, dict) or config.get("format") != expected_format:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(
            f"{path}: expected a {expected_format!r} file, found {found!r}"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {config.get('format_version')!r} is not supported "
            f"(this tinynet reads version {FORMAT_VERSION})"
        )
    for key, value in arrays.items():
        if value.dtype.kind not in "fiu":
            raise ValueError(
                f"{path}: entry {key!r} has non-numeric dtype {value.dtype}"
            )
    return config, arrays


def _build_from_config(path: Path, config: dict) -> Any:
    from .model import Sequential

    try:
        layers = [layer_from_config(spec) for spec in config["layers"]]
        return Sequential(
            layers,
            input_shape=tuple(config["input_shape"]),
            dtype=config.get("dtype", "float32"),
            name=config.get("name", "sequential"),
        )
    except KeyError as err:
        raise ValueError(f"{path}: config lacks the entry {err}") from None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: cannot rebuild the model: {err}") from None


def _assign(path: Path, model: Any, arrays: dict[str, np.ndarray]) -> None:
    """Check then copy ``param/*`` and ``buffer/*`` entries into ``model``."""
    targets = {f"param/{k}": v for k, v in model.parameters().items()}
    targets.update({f"buffer/{k}": v for k, v in model.buffers().items()})
    stored = {k: v for k, v in arrays.items() if k.startswith(("param/", "buffer/"))}
    missing = sorted(set(targets) - set(stored))
    unexpected = sorted(set(stored) - set(targets))
    if missing:
        raise ValueError(
            f"{path}: missing weight {missing[0]!r} (and {len(missing) - 1} more)"
        )
    if unexpected:
        raise ValueError(f"{path}: unexpected entry {unexpected[0]!r}")
    for key, target in targets.items():
        value = stored[key]
        if value.shape != target.shape:
            raise ValueError(
                f"{path}: entry {key!r} has shape {value.shape}, the model expects "
                f"{target.shape}"
            )
        if value.dtype != target.dtype:
            raise ValueError(
                f"{path}: entry {key!r} has dtype {value.dtype}, the model expects "
                f"{target.dtype}"
            )
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: entry {key!r} contains NaN or infinite values")
    for key, target in targets.items():
        target[...] = stored[key]


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild a ``Sequential`` saved by ``model.save``; compiled if it was when saved.

    The metadata stored with it is available as ``model.metadata``.
    """
    path = Path(path)
    config, arrays = _read_npz(path, FORMAT)
    model = _build_from_config(path, config)
    _assign(path, model, arrays)
    extra = sorted(
        k for k in arrays if not k.startswith(("param/", "buffer/", "optimizer/"))
    )
    if extra:
        raise ValueError(f"{path}: unexpected entry {extra[0]!r}")
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
        state = {
            k[len("optimizer/") :]: v
            for k, v in arrays.items()
            if k.startswith("optimizer/")
        }
        if state:
            try:
                model.optimizer.load_state_dict(state)
            except ValueError as err:
                raise ValueError(f"{path}: optimizer state: {err}") from None
    model.metadata = config.get("metadata", {})
    return model


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """Load weights saved by ``save_weights`` (or ``save``) into a model of the same
    architecture. The layer classes and every shape and dtype must match."""
    path = Path(path)
    try:
        config, arrays = _read_npz(path, WEIGHTS_FORMAT)
    except ValueError as err:
        if "found 'tinynet-model'" not in str(err):
            raise
        config, arrays = _read_npz(path, FORMAT)
    stored = [spec.get("class_name") for spec in config.get("layers", [])]
    ours = [type(layer).__name__ for layer in model.layers]
    if stored != ours:
        raise ValueError(
            f"{path}: saved for layers {stored}, but the model has layers {ours}"
        )
    _assign(path, model, arrays)
