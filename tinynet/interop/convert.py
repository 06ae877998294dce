"""Convert a model file to another format, each format chosen by the file's suffix:
``.npz`` (tinynet), ``.keras`` (Keras 3) or ``.onnx`` (write only). What
``tinynet export`` runs."""

from __future__ import annotations

import os
from pathlib import Path

from ..model import Sequential

READABLE = (".npz", ".keras")
WRITABLE = (".onnx", ".keras", ".npz")


def load_any(path: str | os.PathLike[str]) -> Sequential:
    """A tinynet model from a tinynet ``.npz`` or (through ``from_keras``) a
    ``.keras`` file."""
    path = Path(path)
    if path.suffix == ".npz":
        from ..saving import load_model

        return load_model(path)
    if path.suffix == ".keras":
        from .keras_model import from_keras

        return from_keras(path)
    raise ValueError(
        f"{path}: cannot read a {path.suffix or 'suffix-less'!r} file; "
        f"models are read from {', '.join(READABLE)}"
    )


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    opset: int | None = None,
) -> None:
    """Read the model in ``src`` and write it to ``dst``; ``opset`` for ONNX only.

    Raises
    ------
    ValueError
        For an unknown suffix, an unreadable file or a layer the target format
        lacks (nothing is written then).
    ImportError
        If the target needs a package that is not installed (onnx, keras).
    """
    dst = Path(dst)
    if dst.suffix not in WRITABLE:
        raise ValueError(
            f"{dst}: cannot write a {dst.suffix or 'suffix-less'!r} file; "
            f"OUT must end in {', '.join(WRITABLE)}"
        )
    if opset is not None and dst.suffix != ".onnx":
        raise ValueError("--opset applies only to an .onnx output")
    model = load_any(src)
    if dst.suffix == ".onnx":
        from ..export import DEFAULT_OPSET, to_onnx

        to_onnx(model, dst, opset=DEFAULT_OPSET if opset is None else opset)
    elif dst.suffix == ".keras":
        from .keras_model import save_keras, to_keras

        save_keras(to_keras(model), dst)
    else:
        from ..saving import save_model

        save_model(model, dst, metadata=model.metadata)
