"""A final Sigmoid and binary cross-entropy, as one step on the logits.

``BinaryCrossEntropy`` takes logits in the overflow-free softplus form, and its
gradient is ``(sigmoid(z) - y) / M``: no division by ``s (1 - s)``, which loses
every digit once a sigmoid saturates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.activations import Sigmoid
from ..layers.base import Layer
from ..losses import BinaryCrossEntropy, Loss
from .loss import LossStep


class SigmoidCrossEntropyStep(LossStep):
    """``BinaryCrossEntropy`` on the input of the model's final ``Sigmoid``."""

    @classmethod
    def matches(cls, loss: Loss, last: Layer) -> bool:
        return isinstance(loss, BinaryCrossEntropy) and type(last) is Sigmoid

    def value(self, z: np.ndarray, target: Any) -> float:
        return self.loss(z, target)[0]

    def value_and_grad(self, z: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        return self.loss(z, target)

    def describe(self) -> str:
        return f"SigmoidCrossEntropyStep: {self.layers[0].name} + {self.loss.name}"


__all__ = ["SigmoidCrossEntropyStep"]
