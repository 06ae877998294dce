"""Export a tinynet model for other runtimes.

    from tinynet.export import to_onnx
    to_onnx(model, "mnist.onnx")        # then onnxruntime, TensorRT, OpenVINO, ...

Needs the optional ``onnx`` package (``pip install 'tinynet[onnx]'``), imported only
when an export runs. Keras export and import live in :mod:`tinynet.interop`.
"""

from __future__ import annotations

from .onnx_model import DEFAULT_OPSET, build_onnx, to_onnx

__all__ = ["DEFAULT_OPSET", "build_onnx", "to_onnx"]
