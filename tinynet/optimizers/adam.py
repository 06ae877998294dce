"""Adam and AdamW (Keras 3 formulation).

``Adam.update_rule`` is the algorithm, Keras' lines one for one. Training runs its
fast twin, ``tinynet.kernels.optim.adam_update``: the same arithmetic in one pass
over memory (NumPy's ufuncs read and write each array about ten times; for the
670k-parameter MNIST MLP that was 1.6 ms of a 5 ms step), which also keeps every
product out of the subnormal range (the kernel module says why and what it
measured). ``tests/test_optimizers.py`` checks the two against each other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..kernels.optim import adam_update
from .base import Optimizer, _positive, _unit


class Adam(Optimizer):
    """Adam in Keras' formulation (epsilon outside the square root, "epsilon hat").

    For each parameter ``p`` with (clipped) gradient ``g``::

        m = m + (1 - beta_1) * (g - m)
        v = v + (1 - beta_2) * (g**2 - v)
        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)      (t = step, from 1)
        p = p - alpha * m / (sqrt(v) + epsilon)

    ``weight_decay`` (default 0) is decoupled, as in every Keras 3 optimizer.
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, weight_decay=weight_decay)
        self.beta_1 = _unit(self._name, "beta_1", beta_1)
        self.beta_2 = _unit(self._name, "beta_2", beta_2)
        self.epsilon = _positive(self._name, "epsilon", epsilon)
        self._alpha = 0.0

    def _begin_step(self, lr: float) -> None:
        t = self.iterations + 1
        self._alpha = lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)

    def _update(self, key: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        m, v = self._state["m"][key], self._state["v"][key]
        if p.flags.c_contiguous and g.flags.c_contiguous and g.dtype == p.dtype:
            adam_update(p, g, m, v, self.beta_1, self.beta_2, self.epsilon, self._alpha)
        else:
            self.update_rule(p, g, m, v, self._alpha)

    def update_rule(
        self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, alpha: float
    ) -> None:
        """One Adam step in place on ``p``, ``m`` and ``v``, written as Keras 3 does;
        ``alpha`` is the bias-corrected rate of the class docstring."""
        m += (1 - self.beta_1) * (g - m)
        v += (1 - self.beta_2) * (np.square(g) - v)
        p -= alpha * m / (np.sqrt(v) + self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay on by default (Keras' ``AdamW``): ``p = p - p
    * weight_decay * lr`` before the Adam step, so the decay does not pass through
    the moments."""

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
    ) -> None:
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon,
            clipnorm=clipnorm, weight_decay=weight_decay,
        )  # fmt: skip
