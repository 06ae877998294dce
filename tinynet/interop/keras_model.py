"""``to_keras`` and ``from_keras``: a whole model, with its weights, to Keras 3 and
back; and the safe way to read a ``.keras`` file.

Keras (with a backend such as TensorFlow) is imported only when one of these runs:
``pip install -e ".[bench]"`` installs both.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..deskew import warn_if_not_exported
from ..model import Sequential

KERAS_MISSING = (
    "Keras interop needs Keras 3 and a backend: pip install keras tensorflow-cpu "
    '(or pip install -e ".[bench]" in a clone)'
)


def _import_keras() -> Any:
    try:
        import keras
    except ImportError:
        raise ImportError(KERAS_MISSING) from None
    return keras


def to_keras(model: Sequential) -> Any:
    """The Keras 3 ``Sequential`` equivalent to ``model``, with its weights.

    Same input shape, layer names and dtype; each tinynet layer becomes its Keras
    twin (an owned activation becomes a layer of its own after it), and every
    parameter and BatchNorm statistic is copied as it is: both libraries use NHWC
    and the same kernel shapes. The result is not compiled: ``compile`` it with
    any Keras optimizer and loss to go on training. A model trained on deskewed
    digits converts without its deskewing: :class:`tinynet.deskew.DeskewNotExported`
    warns of it.

    Raises
    ------
    ValueError
        Naming a layer that has no Keras equivalent.
    TypeError
        If ``model`` is not a ``Sequential``.
    ImportError
        If Keras is not installed.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"to_keras: expected a tinynet Sequential, got {model!r}")
    keras = _import_keras()
    from .keras_layers import keras_layers_for, keras_weights_of

    dtype = model.dtype.name
    pairs = [(layer, keras_layers_for(layer, dtype)) for layer in model.layers]
    stack = [klayer for _, klayers in pairs for klayer in klayers]
    kmodel = keras.Sequential(
        [keras.Input(model.input_shape, dtype=dtype), *stack], name=model.name
    )
    for layer, klayers in pairs:
        weights = keras_weights_of(layer)
        if weights:
            klayers[0].set_weights(weights)
    warn_if_not_exported(model, "the Keras model")
    return kmodel


def save_keras(kmodel: Any, path: str | os.PathLike[str]) -> None:
    """``kmodel.save(path)``, atomically: Keras writes a ``.keras`` file in a
    temporary folder beside ``path``, which is then renamed into place."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras model file must end in .keras")
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: folder {path.parent} does not exist"
        )
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        kmodel.save(staged)
        os.replace(staged, path)


def load_keras(path: str | os.PathLike[str]) -> Any:
    """Read a ``.keras`` file with Keras' safe mode, uncompiled.

    Safe mode refuses to deserialise Python code (the bytecode of a Lambda layer),
    and only the ``.keras`` format honours it, so legacy ``.h5`` files and
    SavedModel folders are refused.
    """
    keras = _import_keras()
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(
            f"{path}: not a .keras file; tinynet reads only Keras 3's .keras format, "
            "the one Keras loads in safe mode"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else err
        raise ValueError(f"{path}: Keras cannot load it safely: {first_line}") from None


def from_keras(keras_model_or_path: Any) -> Sequential:
    """A tinynet ``Sequential`` equivalent to a Keras ``Sequential`` (or ``.keras``
    file), with its weights.

    Supported Keras layers: Dense, Conv2D, MaxPooling2D, AveragePooling2D,
    GlobalAveragePooling2D, BatchNormalization, Rescaling, Flatten, Dropout, ReLU,
    LeakyReLU, Softmax and Activation (relu, leaky_relu, sigmoid, tanh, softmax,
    linear), channels last. Anything else is refused with a ValueError naming the
    layer, before any weight is copied. A Keras model computing in float64 gives
    a float64 tinynet model, any other a float32 one. Save the result with
    ``model.save`` to get a native tinynet file that ``tinynet predict`` and
    ``tinynet serve`` read.
    """
    keras = _import_keras()
    from .keras_layers import tinynet_layer_for

    kmodel = keras_model_or_path
    if isinstance(kmodel, str | os.PathLike):
        kmodel = load_keras(kmodel)
    if type(kmodel) is not keras.Sequential:
        raise ValueError(
            f"from_keras: expected a keras.Sequential model or a path to one, got "
            f"{type(kmodel).__name__}"
        )
    try:
        input_shape = tuple(kmodel.input_shape[1:])
    except (AttributeError, ValueError):
        input_shape = (None,)
    if not input_shape or any(d is None for d in input_shape):
        raise ValueError(
            f"from_keras: model {kmodel.name!r} needs a fully known input shape "
            f"(start it with keras.Input(shape)); got {input_shape}"
        )
    layers = [tinynet_layer_for(klayer) for klayer in kmodel.layers]
    float64 = all(klayer.compute_dtype == "float64" for klayer in kmodel.layers)
    dtype = "float64" if float64 else "float32"
    model = Sequential(
        [layer for layer in layers if layer is not None],
        input_shape=input_shape,
        dtype=dtype,
        name=kmodel.name,
    )
    model.set_weights(keras_weights(kmodel, model))
    return model


def keras_weights(kmodel: Any, model: Sequential) -> dict[str, np.ndarray]:
    """The weights of the Keras model ``kmodel`` under ``model``'s keys (``"0.W"``,
    ``"1.moving_mean"``), for ``model.set_weights``.

    The Keras layers that have weights are paired in order with the tinynet layers
    that have parameters or buffers; arrays are copied as they are (same layouts)
    and cast to the dtype of ``model``.

    Raises
    ------
    ValueError
        If the two do not have the same weighted layers, naming the first mismatch.
    """
    from .keras_layers import tinynet_weights_of

    k_layers = [klayer for klayer in kmodel.layers if klayer.weights]
    t_layers = [
        (i, layer)
        for i, layer in enumerate(model.layers)
        if layer.params or layer.buffers
    ]
    if len(k_layers) != len(t_layers):
        raise ValueError(
            f"{len(k_layers)} Keras layers have weights, but {len(t_layers)} tinynet "
            "layers have parameters or buffers"
        )
    out: dict[str, np.ndarray] = {}
    for klayer, (i, layer) in zip(k_layers, t_layers, strict=True):
        targets = {**layer.params, **layer.buffers}
        weights = tinynet_weights_of(klayer)
        if set(weights) != set(targets):
            raise ValueError(
                f"Keras layer {klayer.name!r} has weights {sorted(weights)}, tinynet "
                f"layer {i} ({layer.describe()}) has {sorted(targets)}"
            )
        for key, value in weights.items():
            if value.shape != targets[key].shape:
                raise ValueError(
                    f"Keras layer {klayer.name!r} weight {key} has shape "
                    f"{value.shape}, tinynet '{i}.{key}' ({layer.describe()}) "
                    f"expects {targets[key].shape}"
                )
            out[f"{i}.{key}"] = value.astype(targets[key].dtype)
    return out


__all__ = ["from_keras", "keras_weights", "load_keras", "save_keras", "to_keras"]
