"""Ready-made MNIST models: the ones the examples train, the benchmarks time and the
pretrained file ships. Each takes raw pixels scaled to [0, 1] (``x_uint8 / 255``)."""

from __future__ import annotations

from collections.abc import Callable

from .layers.activations import ReLU
from .layers.base import Layer
from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.dropout import Dropout
from .layers.normalization import BatchNorm
from .layers.pooling import MaxPool2D
from .layers.reshape import Flatten
from .model import Sequential


def mnist_mlp(*, seed: int | None = None, dtype: str = "float32") -> Sequential:
    """784-512-512-10 MLP with ReLU and Dropout 0.2 (the Keras ``mnist_mlp`` example).

    Input (28, 28): flattened by the first layer.
    """
    return Sequential(
        [
            Flatten(),
            Dense(512, activation="relu"),
            Dropout(0.2),
            Dense(512, activation="relu"),
            Dropout(0.2),
            Dense(10, activation="softmax"),
        ],
        input_shape=(28, 28),
        seed=seed,
        dtype=dtype,
        name="mnist_mlp",
    )


def mnist_classic_cnn(*, seed: int | None = None, dtype: str = "float32") -> Sequential:
    """The classic Keras MNIST convnet: Conv32 -> pool -> Conv64 -> pool -> Dropout 0.5
    -> Dense 10. Input (28, 28, 1)."""
    return Sequential(
        [
            Conv2D(32, 3, activation="relu"),
            MaxPool2D(2),
            Conv2D(64, 3, activation="relu"),
            MaxPool2D(2),
            Flatten(),
            Dropout(0.5),
            Dense(10, activation="softmax"),
        ],
        input_shape=(28, 28, 1),
        seed=seed,
        dtype=dtype,
        name="mnist_classic_cnn",
    )


def mnist_cnn(*, seed: int | None = None, dtype: str = "float32") -> Sequential:
    """tinynet's best MNIST CNN: two conv blocks of two 3x3 convolutions, each followed
    by BatchNorm and ReLU, a BatchNorm'd dense layer and dropout (~200k parameters,
    0.8 MB as float32). Trained with augmentation it is the shipped model.

    Valid padding keeps the cost down: 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4.
    Convolutions and the dense layer carry no bias, since BatchNorm's beta replaces it.
    """

    def conv_bn_relu(filters: int) -> list[Layer]:
        return [Conv2D(filters, 3, use_bias=False), BatchNorm(momentum=0.9), ReLU()]

    return Sequential(
        [
            *conv_bn_relu(32),
            *conv_bn_relu(32),
            MaxPool2D(2),
            *conv_bn_relu(64),
            *conv_bn_relu(64),
            MaxPool2D(2),
            Flatten(),
            Dense(128, use_bias=False),
            BatchNorm(momentum=0.9),
            ReLU(),
            Dropout(0.4),
            Dense(10, activation="softmax"),
        ],
        input_shape=(28, 28, 1),
        seed=seed,
        dtype=dtype,
        name="mnist_cnn",
    )


MODELS: dict[str, Callable[..., Sequential]] = {
    "mlp": mnist_mlp,
    "classic_cnn": mnist_classic_cnn,
    "cnn": mnist_cnn,
}
