"""Weight initializers: Keras' definitions, driven by a ``numpy.random.Generator``.

Every initializer has the signature ``f(shape, rng, dtype=np.float32) -> ndarray`` and
draws its random numbers only from ``rng``, so one seed reproduces a whole model.

The variance-scaling family (Glorot & Bengio 2010; He et al. 2015) keeps the variance
of activations roughly constant from layer to layer:

    glorot_uniform : U(-a, a),  a = sqrt(6 / (fan_in + fan_out))
    glorot_normal  : truncated N(0, s^2), s = sqrt(2 / (fan_in + fan_out)) / 0.8796...
    he_uniform     : U(-a, a),  a = sqrt(6 / fan_in)
    he_normal      : truncated N(0, s^2), s = sqrt(2 / fan_in) / 0.8796...

The normal variants follow Keras: samples further than two standard deviations from
zero are redrawn, and the standard deviation is divided by 0.87962566103423978 (the
standard deviation of a unit normal truncated to [-2, 2]) so that the truncated
distribution still has the intended variance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Initializer = Callable[..., np.ndarray]

# Standard deviation of N(0, 1) truncated to [-2, 2]; Keras divides by it.
_TRUNCATED_STD = 0.87962566103423978


def _check_shape(shape: Any, who: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(
            f"{who}: shape must be a tuple of ints, got {shape!r}"
        ) from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{who}: shape must be non-negative, got {dims}")
    return dims


def _check_rng(rng: Any, who: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{who}: rng must be a numpy.random.Generator "
            f"(np.random.default_rng(seed)), got {type(rng).__name__}"
        )


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in and fan-out of a weight of ``shape``, by Keras' rule.

    - 0-D: (1, 1); 1-D ``(n,)``: (n, n); 2-D Dense ``(in, out)``: (in, out);
    - conv ``(kh, kw, cin, cout)`` (any number of spatial axes): every axis but the
      last two is the receptive field, so fan_in = kh*kw*cin, fan_out = kh*kw*cout.
    """
    shape = _check_shape(shape, "compute_fans")
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _truncated_normal(
    shape: tuple[int, ...], std: float, rng: np.random.Generator
) -> np.ndarray:
    """N(0, std^2) restricted to [-2 std, 2 std] by redrawing the outliers."""
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2.0
    # Each draw lands outside with probability ~4.6%, so this ends in a few rounds.
    while np.any(outside):
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2.0
    return z * std


def _variance_scaling(
    name: str,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    dtype: Any,
    scale: float,
    mode: str,
    distribution: str,
) -> np.ndarray:
    """Keras' VarianceScaling: variance = scale / fan, fan by ``mode``."""
    shape = _check_shape(shape, name)
    _check_rng(rng, name)
    fan_in, fan_out = compute_fans(shape)
    fan = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2.0
    variance = scale / max(1.0, fan)
    if distribution == "uniform":
        # U(-a, a) has variance a^2 / 3.
        limit = np.sqrt(3.0 * variance)
        w = rng.uniform(-limit, limit, size=shape)
    else:
        w = _truncated_normal(shape, np.sqrt(variance) / _TRUNCATED_STD, rng)
    # Draw in float64 then cast, so a float32 and a float64 model built from the same
    # seed start from the same weights up to rounding.
    return w.astype(dtype, copy=False)


def glorot_uniform(
    shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Keras' default for Dense)."""
    return _variance_scaling(
        "glorot_uniform", shape, rng, dtype, 1.0, "fan_avg", "uniform"
    )


def glorot_normal(
    shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """Truncated normal with variance 2 / (fan_in + fan_out)."""
    return _variance_scaling(
        "glorot_normal", shape, rng, dtype, 1.0, "fan_avg", "normal"
    )


def he_uniform(
    shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """U(-a, a) with a = sqrt(6 / fan_in); suits ReLU layers."""
    return _variance_scaling("he_uniform", shape, rng, dtype, 2.0, "fan_in", "uniform")


def he_normal(
    shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32
) -> np.ndarray:
    """Truncated normal with variance 2 / fan_in; suits ReLU layers."""
    return _variance_scaling("he_normal", shape, rng, dtype, 2.0, "fan_in", "normal")


def zeros(
    shape: tuple[int, ...],
    rng: np.random.Generator | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """All zeros (``rng`` is accepted for a uniform signature and not used)."""
    return np.zeros(_check_shape(shape, "zeros"), dtype=dtype)


def ones(
    shape: tuple[int, ...],
    rng: np.random.Generator | None = None,
    dtype: Any = np.float32,
) -> np.ndarray:
    """All ones (``rng`` is accepted for a uniform signature and not used)."""
    return np.ones(_check_shape(shape, "ones"), dtype=dtype)


INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f
    for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones)
}


def get(initializer: str | Initializer) -> Initializer:
    """The initializer called ``initializer``, or ``initializer`` itself if callable."""
    if isinstance(initializer, str):
        if initializer not in INITIALIZERS:
            raise ValueError(
                f"unknown initializer {initializer!r}; known initializers: "
                f"{', '.join(sorted(INITIALIZERS))}"
            )
        return INITIALIZERS[initializer]
    if callable(initializer):
        return initializer
    raise TypeError(
        "initializer must be a name or a callable f(shape, rng, dtype), got "
        f"{type(initializer).__name__}"
    )


def serialize(initializer: str | Initializer) -> str:
    """The registry name of ``initializer``, for a layer's config.

    Custom callables work for training but cannot be written to a config, since
    configs only ever name registered functions.
    """
    fn = get(initializer)
    for name, registered in INITIALIZERS.items():
        if fn is registered:
            return name
    raise ValueError(
        f"initializer {getattr(fn, '__name__', fn)!r} is not registered and cannot be "
        f"saved in a config; use one of: {', '.join(sorted(INITIALIZERS))}"
    )


__all__ = [
    "INITIALIZERS",
    "compute_fans",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "ones",
    "serialize",
    "zeros",
]
