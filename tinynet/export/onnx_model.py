"""``to_onnx``: a tinynet model as an ONNX graph, checked and written atomically.

The graph takes the model's input in tinynet's layout, ``(batch, *input_shape)``
float32 with a dynamic batch axis, and returns its output the same way (``(batch,
classes)`` probabilities for a classifier). The layer-by-layer translation lives in
:mod:`tinynet.export.onnx_layers`.
"""

from __future__ import annotations

import json
import numbers
import os
from typing import Any

from .. import __version__
from ..deskew import deskewing_of
from ..layers.activations import Softmax
from ..model import Sequential
from ..saving import atomic_write

#: Opset 17 is what most deployed runtimes (onnxruntime >= 1.12, TensorRT 8.6,
#: OpenVINO 2022.3) read; the graph uses nothing newer than opset 13, but for a
#: deskewing model's GridSample (opset 16).
DEFAULT_OPSET = 17
MIN_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "output"

ONNX_MISSING = (
    "ONNX export needs the onnx package: pip install 'tinynet[onnx]' "
    '(or pip install -e ".[onnx]" in a clone)'
)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(ONNX_MISSING) from None
    return onnx


def _check_opset(onnx: Any, opset: Any) -> int:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise TypeError(f"to_onnx: opset must be an int, got {opset!r}")
    if not MIN_OPSET <= int(opset) <= newest:
        raise ValueError(
            f"to_onnx: opset must be in [{MIN_OPSET}, {newest}] (the newest this "
            f"onnx {onnx.__version__} knows), got {opset}"
        )
    return int(opset)


def _metadata(model: Sequential) -> dict[str, str]:
    """ONNX metadata_props: who wrote the file, the classes, and tinynet's metadata
    (how the model was trained, its accuracy) as JSON."""
    props = {
        "tinynet_version": __version__,
        "tinynet_metadata": json.dumps(model.metadata, sort_keys=True),
    }
    if len(model.input_shape) == 3:
        props["input_layout"] = "NHWC"
    if isinstance(model.layers[-1], Softmax):
        classes = model.metadata.get("classes")
        if classes is None:
            classes = [str(i) for i in range(model.output_shape[-1])]
        props["classes"] = json.dumps([str(c) for c in classes])
    return props


def build_onnx(model: Sequential, *, opset: int = DEFAULT_OPSET) -> Any:
    """The ``onnx.ModelProto`` of ``model``, validated by
    ``onnx.checker.check_model(..., full_check=True)`` (which also infers and checks
    every intermediate shape).

    Raises
    ------
    ValueError
        Naming the first layer that has no ONNX converter, or for a bad ``opset``.
    TypeError
        If ``model`` is not a ``Sequential`` or ``opset`` not an int.
    ImportError
        If the ``onnx`` package is not installed.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"to_onnx: expected a tinynet Sequential, got {model!r}")
    onnx = _import_onnx()
    from onnx import TensorProto, helper

    from .onnx_layers import CONVERTERS, Flow, GraphBuilder

    opset = _check_opset(onnx, opset)
    g = GraphBuilder()
    x = Flow(INPUT_NAME, len(model.input_shape) + 1)
    g.unique(INPUT_NAME)
    deskewing = deskewing_of(model)
    if deskewing is not None:
        from . import onnx_deskew

        if opset < onnx_deskew.MIN_OPSET:
            raise ValueError(
                f"to_onnx: the model deskews its inputs, which needs opset >= "
                f"{onnx_deskew.MIN_OPSET} (GridSample), got {opset}"
            )
        x = onnx_deskew.deskew_nodes(g, x, model.input_shape, *deskewing, opset)
    for i, layer in enumerate(model.layers):
        convert = CONVERTERS.get(type(layer))
        if convert is None:
            raise ValueError(
                f"to_onnx: layer {i} ({layer.describe()}) is a "
                f"{type(layer).__name__}, which has no ONNX export; exportable "
                f"layers: {', '.join(sorted(c.__name__ for c in CONVERTERS))}"
            )
        x = convert(g, layer, x, layer.name or f"layer_{i}")
    x = g.channels_last(x, OUTPUT_NAME)
    g.nodes.append(helper.make_node("Identity", [x.name], [OUTPUT_NAME]))

    graph = helper.make_graph(
        g.nodes,
        model.name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, ["batch", *model.input_shape]
            )
        ],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", *model.output_shape]
            )
        ],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        # The oldest IR version that carries this opset: older runtimes read it too.
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="tinynet",
        producer_version=__version__,
        doc_string=f"tinynet {type(model).__name__} {model.name!r}",
    )
    helper.set_model_props(proto, _metadata(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def to_onnx(
    model: Any, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET
) -> None:
    """Write ``model`` to ``path`` as an ONNX file for inference elsewhere.

    The graph computes what ``model.predict`` computes, in float32: input ``"input"``
    of shape ``(batch, *model.input_shape)`` in tinynet's layout (NHWC images),
    output ``"output"`` of shape ``(batch, *model.output_shape)``. BatchNorm uses its
    moving statistics and Dropout is left out, as at inference. The file's
    metadata holds the tinynet version, the class names of a classifier (from
    ``model.metadata["classes"]`` or ``"0"``, ``"1"``, ...) and the model's metadata.
    A model trained on deskewed digits (``metadata["deskew"]``) deskews its input
    first, as tinynet's readers do (:mod:`tinynet.export.onnx_deskew`; opset >= 16).

    Parameters
    ----------
    model : a ``tinynet.Sequential``.
    path : where to write; the file appears whole or not at all.
    opset : ONNX operator set version, 13 or newer.

    Example
    -------
    >>> import onnxruntime as ort
    >>> to_onnx(model, "mnist.onnx")
    >>> session = ort.InferenceSession("mnist.onnx")
    >>> probs = session.run(None, {"input": x.astype("float32")})[0]
    """
    proto = build_onnx(model, opset=opset)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))


__all__ = ["DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME", "build_onnx", "to_onnx"]
