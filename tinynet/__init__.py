"""tinynet: a small neural-network library in vectorised NumPy.

    import tinynet as tn
    model = tn.Sequential(
        [tn.Flatten(), tn.Dense(10, activation="softmax")], input_shape=(28, 28), seed=0
    )
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x_train / 255, y_train, epochs=5, batch_size=128)

``tinynet.calibration.calibrate(model, x_val, y_val)`` makes the probabilities honest
(temperature scaling folded into the last layer).

``vision``, ``plots``, ``datasets`` and ``calibration`` load on first use, so
``import tinynet`` stays light (and never compiles a Numba kernel).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from . import callbacks, gradcheck, initializers, layers, losses, optimizers  # noqa: E402
from .callbacks import (  # noqa: E402
    EarlyStopping,
    LearningRateScheduler,
    LivePlot,
    ModelCheckpoint,
    WeightAveraging,
)
from .layers import (  # noqa: E402
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Sigmoid,
    Softmax,
    Tanh,
)
from .model import Sequential  # noqa: E402
from .pretrained import load_pretrained  # noqa: E402
from .saving import load_model  # noqa: E402
from .training import History  # noqa: E402

_LAZY = (
    "datasets",
    "metrics",
    "plots",
    "vision",
    "augment",
    "zoo",
    "export",
    "interop",
    "calibration",
    "averaging",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinynet' has no attribute {name!r}")


__all__ = [
    "AvgPool2D",
    "BatchNorm",
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "GlobalAvgPool2D",
    "History",
    "LeakyReLU",
    "LearningRateScheduler",
    "LivePlot",
    "MaxPool2D",
    "ModelCheckpoint",
    "ReLU",
    "Rescaling",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "WeightAveraging",
    "__version__",
    "callbacks",
    "gradcheck",
    "initializers",
    "layers",
    "load_model",
    "load_pretrained",
    "losses",
    "optimizers",
]
