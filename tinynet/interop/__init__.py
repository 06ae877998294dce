"""Move a model between tinynet and Keras 3, weights included.

    from tinynet.interop import from_keras, to_keras
    kmodel = to_keras(model)                  # a keras.Sequential, ready to compile
    model = from_keras("trained.keras")       # read in Keras' safe mode

Keras is imported only when one of these runs (``pip install -e ".[bench]"``).
ONNX export is in :mod:`tinynet.export`.
"""

from __future__ import annotations

from .keras_model import from_keras, keras_weights, load_keras, save_keras, to_keras

__all__ = ["from_keras", "keras_weights", "load_keras", "save_keras", "to_keras"]
