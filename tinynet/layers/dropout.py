"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import is_real
from ..kernels.dropout import dropout
from .base import Layer


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training (inverted dropout).

    Forward (training):  m_k = [u_k >= t] / (1 - rate),  u_k uniform on uint32,
                         t = round(rate * 2**32)
                         y = x * m
    Forward (inference): y = x
    Backward:            dx = dout * m

    Survivors are scaled by 1 / (1 - rate) during training, so the expected output
    equals the input and inference needs no rescaling (Srivastava et al. 2014;
    Keras and PyTorch do the same). The bits ``u`` come from one 64-bit key per call
    drawn from ``self.rng``, the generator the model seeds, so a run is
    reproducible; an entry is dropped with probability ``t / 2**32``, within
    ``2**-33`` of ``rate`` (``tinynet/kernels/dropout.py``).
    """

    has_training_mode = True

    def __init__(self, rate: float, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if not is_real(rate) or not 0.0 <= rate < 1.0:
            raise ValueError(
                f"{self.describe()}: rate must be a number in [0, 1), got {rate!r}"
            )
        self.rate = float(rate)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """x : (N, ...) -> y of the same shape; the cache is the mask m."""
        self.check_input(x)
        if not training:
            self._store(False, None)
            return x
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else self.dtype
        if self.rate == 0.0:
            self._store(True, np.ones(x.shape, dtype=dtype))
            return x.astype(dtype)
        if self.rng is None:
            raise RuntimeError(
                f"{self.describe()}: no random generator; build the layer or set "
                "layer.rng to a numpy.random.Generator"
            )
        key = self.rng.integers(2**64, dtype=np.uint64)
        y, mask = dropout(np.ascontiguousarray(x, dtype=dtype), key, self.rate)
        self._store(True, mask)
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout : (N, ...) -> dx = dout * m."""
        mask: np.ndarray = self._take_cache()
        self._check_dout(dout, mask.shape[0])
        dx: np.ndarray = dout * mask
        return dx

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, "name": self.name}


__all__ = ["Dropout"]
