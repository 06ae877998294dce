"""Small data sets and models shared by the model, training, callback and saving
tests."""

import numpy as np

from tinynet.layers.activations import ReLU
from tinynet.layers.dense import Dense
from tinynet.layers.dropout import Dropout
from tinynet.layers.normalization import BatchNorm
from tinynet.model import Sequential


def spirals(n_per_class=100, classes=3, seed=0):
    """The CS231n spiral problem: not linearly separable, learnable by a small MLP."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(
            0, 0.2, n_per_class
        )
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def mlp(seed=0, dropout=0.1, batchnorm=True, classes=3):
    layers = [Dense(64)]
    if batchnorm:
        layers.append(BatchNorm(momentum=0.9))
    layers += [
        ReLU(),
        Dropout(dropout),
        Dense(64, activation="relu"),
        Dense(classes, activation="softmax"),
    ]
    return Sequential(layers, input_shape=(2,), seed=seed)
