"""Inverted dropout."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training (inverted dropout).

    Forward (training):  m_i = [u_i >= rate] / (1 - rate),  u_i ~ U[0, 1)
                         y = x * m
    Forward (inference): y = x
    Backward:            dx = dout * m

    Survivors are scaled by 1 / (1 - rate) during training, so the expected output
    equals the input and inference needs no rescaling (Srivastava et al. 2014;
    Keras and PyTorch do the same). The mask is drawn from ``self.rng``, the
    generator the model seeds, so a run is reproducible.
    """

    has_training_mode = True

    def __init__(self, rate: float, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, numbers.Real)
            or not 0.0 <= rate < 1.0
        ):
            raise ValueError(
                f"{self.describe()}: rate must be a number in [0, 1), got {rate!r}"
            )
        self.rate = float(rate)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        self._check_input(x)
        if not training:
            self._store(False, None)
            return x
        if self.rng is None:
            raise RuntimeError(
                f"{self.describe()}: no random generator; build the layer or set "
                "layer.rng to a numpy.random.Generator"
            )
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else self.dtype
        if self.rate == 0.0:
            mask = np.ones(x.shape, dtype=dtype)
        else:
            keep = self.rng.random(x.shape, dtype=dtype) >= self.rate
            mask = keep * dtype.type(1.0 / (1.0 - self.rate))
        self._store(True, mask)
        return x * mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        mask = self._take_cache()
        self._check_dout(dout, mask.shape)
        return dout * mask

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, "name": self.name}


__all__ = ["Dropout"]
