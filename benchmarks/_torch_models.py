"""A tinynet ``Sequential`` translated layer by layer into a PyTorch ``nn.Sequential``.

Two halves, so a benchmark worker can build the PyTorch model without importing
tinynet (whose import would count against PyTorch's wall time):

- ``torch_spec(model)`` (needs tinynet, not torch) reads the layers into a list of
  plain dicts, ``{"kind": "conv2d", "in_channels": 1, ...}``, JSON-serialisable;
- ``build_torch(spec)`` (needs torch, not tinynet) makes the modules from that list.

``torch_weights(model)`` gives the model's parameters and BatchNorm statistics in
PyTorch's layout, named as ``build_torch(spec).state_dict()`` names them, so the
two libraries can start from the same weights and be compared output for output.
``to_torch(model)`` does all three.

Layouts: tinynet is NHWC like Keras, PyTorch NCHW. A Conv2D kernel ``(kh, kw, cin,
cout)`` becomes ``(cout, cin, kh, kw)``, a Dense kernel ``(in, out)`` becomes ``(out,
in)``, and the Dense after a Flatten of an ``(H, W, C)`` map has its input rows
reordered from (h, w, c) to PyTorch's (c, h, w) flattening order. Inputs go through
``nchw``. BatchNorm: tinynet's (Keras') ``momentum`` 0.9 is PyTorch's ``momentum``
0.1; epsilon is copied. PyTorch updates ``running_var`` with the unbiased batch
variance where Keras uses the biased one: a factor M / (M - 1) on the statistics of
a batch of M values per channel, which does not change training.

Without ``torch_weights``, ``build_torch`` initialises as Keras does (and tinynet):
Glorot-uniform kernels, zero biases, BatchNorm gamma 1 and beta 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Spec = list[dict[str, Any]]


# --------------------------------------------------------- tinynet -> spec
def _activation_spec(activation: Any, who: str) -> dict[str, Any]:
    from tinynet.layers.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh

    kinds = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh", Softmax: "softmax"}
    if type(activation) is LeakyReLU:
        return {"kind": "leaky_relu", "negative_slope": activation.alpha}
    if type(activation) in kinds:
        return {"kind": kinds[type(activation)]}
    raise ValueError(
        f"torch_spec: {who} has the activation {type(activation).__name__}, "
        "which has no translation to PyTorch"
    )


def _same_padding(layer: Any) -> str | int:
    """PyTorch's ``padding`` argument for a Conv2D; refuses what PyTorch lacks."""
    if layer.padding == "valid":
        return 0
    if layer.strides != (1, 1):
        raise ValueError(
            f"torch_spec: {layer.describe()} has padding='same' with strides "
            f"{layer.strides}; PyTorch's padding='same' needs strides (1, 1)"
        )
    return "same"


def torch_spec(model: Any) -> Spec:
    """The layers of the tinynet ``Sequential`` ``model`` as plain dicts.

    Supported: Dense, Conv2D (owning an activation or not), MaxPool2D and
    AvgPool2D (valid padding), BatchNorm (after Dense or Conv2D), Flatten,
    Dropout, ReLU, LeakyReLU, Sigmoid, Tanh and Softmax over the last axis of a
    vector. Raises ValueError naming the first layer that has no translation.
    """
    from tinynet.layers.conv import Conv2D
    from tinynet.layers.dense import Dense
    from tinynet.layers.dropout import Dropout
    from tinynet.layers.normalization import BatchNorm
    from tinynet.layers.pooling import AvgPool2D, MaxPool2D
    from tinynet.layers.reshape import Flatten

    spec: Spec = []
    for layer in model.layers:
        in_shape, out_shape = layer.built_shapes()
        kind = type(layer)
        # ``type(layer) is``, not isinstance: a subclass may compute something else.
        if kind is Conv2D:
            spec.append(
                {
                    "kind": "conv2d",
                    "in_channels": in_shape[-1],
                    "out_channels": layer.filters,
                    "kernel_size": list(layer.kernel_size),
                    "stride": list(layer.strides),
                    "padding": _same_padding(layer),
                    "bias": layer.use_bias,
                }
            )
        elif kind is Dense:
            spec.append(
                {
                    "kind": "linear",
                    "in_features": in_shape[-1],
                    "out_features": layer.units,
                    "bias": layer.use_bias,
                }
            )
        elif kind in (MaxPool2D, AvgPool2D):
            if layer.padding != "valid":
                raise ValueError(
                    f"torch_spec: {layer.describe()} has padding={layer.padding!r}; "
                    "only 'valid' pooling translates to PyTorch"
                )
            spec.append(
                {
                    "kind": "max_pool2d" if kind is MaxPool2D else "avg_pool2d",
                    "kernel_size": list(layer.pool_size),
                    "stride": list(layer.strides),
                }
            )
        elif kind is BatchNorm:
            spec.append(
                {
                    "kind": "batch_norm2d" if len(in_shape) == 3 else "batch_norm1d",
                    "num_features": in_shape[-1],
                    "eps": layer.epsilon,
                    "momentum": 1.0 - layer.momentum,
                }
            )
        elif kind is Flatten:
            spec.append({"kind": "flatten"})
        elif kind is Dropout:
            spec.append({"kind": "dropout", "p": layer.rate})
        else:
            spec.append(_activation_spec(layer, layer.describe()))
        activation = getattr(layer, "activation", None)
        if activation is not None:
            spec.append(_activation_spec(activation, layer.describe()))
        if spec[-1]["kind"] == "softmax" and len(out_shape) != 1:
            raise ValueError(
                f"torch_spec: {layer.describe()} takes a softmax over a map of shape "
                f"{out_shape}; only a softmax over a vector translates"
            )
    return spec


def torch_weights(model: Any) -> dict[str, np.ndarray]:
    """The model's parameters and BatchNorm statistics in PyTorch's layout, keyed
    as the ``state_dict`` of ``build_torch(torch_spec(model))`` (``"0.weight"``)."""
    weights: dict[str, np.ndarray] = {}
    index = 0  # position in the nn.Sequential: owned activations take one each
    flattened_from: tuple[int, ...] | None = None
    for layer in model.layers:
        kind = type(layer).__name__
        in_shape, _ = layer.built_shapes()
        if kind == "Conv2D":
            weights[f"{index}.weight"] = layer.params["W"].transpose(3, 2, 0, 1)
        elif kind == "Dense":
            kernel = layer.params["W"]
            if flattened_from is not None:
                # Rows in tinynet's (h, w, c) order -> PyTorch's (c, h, w) order.
                height, width, channels = flattened_from
                kernel = (
                    kernel.reshape(height, width, channels, -1)
                    .transpose(2, 0, 1, 3)
                    .reshape(height * width * channels, -1)
                )
            weights[f"{index}.weight"] = kernel.T
        elif kind == "BatchNorm":
            if flattened_from is not None:
                raise ValueError(
                    f"torch_weights: {layer.describe()} normalises a flattened map; "
                    "its channels would need PyTorch's (c, h, w) order"
                )
            weights[f"{index}.weight"] = layer.params["gamma"]
            weights[f"{index}.bias"] = layer.params["beta"]
            weights[f"{index}.running_mean"] = layer.buffers["moving_mean"]
            weights[f"{index}.running_var"] = layer.buffers["moving_var"]
        if "b" in layer.params:
            weights[f"{index}.bias"] = layer.params["b"]
        if kind == "Flatten":
            flattened_from = in_shape if len(in_shape) == 3 else None
        elif kind not in ("Dropout", "BatchNorm") and layer.params:
            flattened_from = None
        index += 1 + (getattr(layer, "activation", None) is not None)
    return {k: np.ascontiguousarray(v) for k, v in weights.items()}


# ------------------------------------------------------------ spec -> torch
def build_torch(spec: Spec) -> Any:
    """An ``nn.Sequential`` with one module per entry of ``spec``, initialised as
    Keras initialises: Glorot-uniform kernels, zero biases (seed with
    ``torch.manual_seed`` first for reproducible weights)."""
    from torch import nn

    def module(entry: dict[str, Any]) -> Any:
        args = {k: v for k, v in entry.items() if k != "kind"}
        for key in ("kernel_size", "stride"):
            if key in args:
                args[key] = tuple(args[key])
        factories = {
            "conv2d": nn.Conv2d,
            "linear": nn.Linear,
            "max_pool2d": nn.MaxPool2d,
            "avg_pool2d": nn.AvgPool2d,
            "batch_norm2d": nn.BatchNorm2d,
            "batch_norm1d": nn.BatchNorm1d,
            "flatten": nn.Flatten,
            "dropout": nn.Dropout,
            "relu": nn.ReLU,
            "leaky_relu": nn.LeakyReLU,
            "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh,
            "softmax": lambda: nn.Softmax(dim=-1),
        }
        if entry["kind"] not in factories:
            raise ValueError(f"build_torch: unknown layer kind {entry['kind']!r}")
        return factories[entry["kind"]](**args)

    net = nn.Sequential(*(module(entry) for entry in spec))
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            # PyTorch's default is Kaiming-uniform with a = sqrt(5); Keras' Glorot.
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def load_weights(net: Any, weights: dict[str, np.ndarray]) -> Any:
    """Copy ``weights`` (from ``torch_weights``) into ``net``; every key must match."""
    import torch

    state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
    own = net.state_dict()
    # BatchNorm's batch counter is PyTorch's own bookkeeping, not a weight.
    missing = [
        k for k in own if k not in state and not k.endswith("num_batches_tracked")
    ]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise ValueError(f"load_weights: missing keys {missing}, unexpected {extra}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValueError(
                f"load_weights: {key} has shape {tuple(value.shape)}, the module "
                f"expects {tuple(own[key].shape)}"
            )
    net.load_state_dict(state, strict=False)
    return net


def to_torch(model: Any) -> Any:
    """The ``nn.Sequential`` equivalent to ``model``, with its weights (float32 or
    float64, as the model). Feed it ``nchw(x)``."""
    import torch

    net = build_torch(torch_spec(model))
    net = net.to(torch.float64 if model.dtype == np.float64 else torch.float32)
    return load_weights(net, torch_weights(model))


def nchw(x: np.ndarray) -> np.ndarray:
    """A batch of NHWC images ``(N, H, W, C)`` as contiguous NCHW ``(N, C, H, W)``;
    anything else (``(N, features)``, ``(N, H, W)`` for an MLP) as it is."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def logits_model(net: Any) -> tuple[Any, bool]:
    """``(net without a final Softmax, whether it had one)``: PyTorch trains on
    logits (``CrossEntropyLoss``), as tinynet fuses softmax and cross-entropy."""
    from torch import nn

    if len(net) and isinstance(net[-1], nn.Softmax):
        return net[:-1], True
    return net, False


__all__ = [
    "build_torch",
    "load_weights",
    "logits_model",
    "nchw",
    "to_torch",
    "torch_spec",
    "torch_weights",
]
