"""The last step of a training plan: the loss, and the output activation it pairs
with, run as their specification.

A model ending in the loss's ``output_activation`` (Softmax for cross-entropy)
trains on that activation's input: this step runs the activation layer, the loss on
its output (``Loss.on_probabilities``) and the layer's backward, so a learner sees
the chain rule; ``softmax_cross_entropy.py`` is its fast twin. Without such an
activation the loss takes the model's output directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..layers.base import Layer
from ..losses import Loss


class LossStep:
    """``loss(activation(z), y)`` and its gradient with respect to ``z``.

    Parameters
    ----------
    loss : the compiled loss.
    activation : the model's last layer when it is ``loss.output_activation``
        (the step then runs it), otherwise None.
    """

    def __init__(self, loss: Loss, activation: Layer | None = None) -> None:
        self.loss = loss
        self.activation = activation
        self.layers: tuple[Layer, ...] = () if activation is None else (activation,)

    @classmethod
    def matches(cls, loss: Loss, last: Layer) -> bool:
        return True

    def activate(self, z: np.ndarray) -> np.ndarray:
        """The model's output for ``z`` (inference)."""
        return z if self.activation is None else self.activation.forward(z)

    def value(self, z: np.ndarray, target: Any) -> float:
        """The mean loss, in inference mode."""
        if self.activation is None:
            return self.loss(z, target)[0]
        return self.loss.on_probabilities(self.activation.forward(z), target)[0]

    def value_and_grad(self, z: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        """The mean loss and dL/dz, in training mode."""
        if self.activation is None:
            return self.loss(z, target)
        probs = self.activation.forward(z, training=True)
        value, dprobs = self.loss.on_probabilities(probs, target)
        return value, self.activation.backward(dprobs)

    def clear(self) -> None:
        if self.activation is not None:
            self.activation.clear_cache()

    def describe(self) -> str:
        if self.activation is None:
            return f"LossStep: {self.loss.name}"
        return f"LossStep: {self.activation.name} -> {self.loss.name}"


__all__ = ["LossStep"]
