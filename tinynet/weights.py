"""Check-then-copy of named arrays: the one way weights and optimizer state are set.

``Sequential.set_weights``, loading a saved file and ``Optimizer.load_state_dict``
all copy a dict of arrays into arrays that already exist (layers and optimizers keep
their arrays, so updates stay in place). Every value is checked before the first is
copied, so a bad entry changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["copy_checked"]


def copy_checked(
    targets: Mapping[str, np.ndarray],
    values: Mapping[str, Any],
    *,
    source: str,
    same_dtype: bool = False,
) -> None:
    """Copy ``values[k]`` into ``targets[k]`` in place, for every key of ``targets``.

    Parameters
    ----------
    targets : name -> the array to overwrite (its shape and dtype are the contract).
    values : name -> array-like; exactly the keys of ``targets``.
    source : where the values come from, to start every message ("model.npz",
        "set_weights").
    same_dtype : require ``values[k].dtype == targets[k].dtype`` (a file must match
        the model exactly); otherwise any floating dtype is cast.

    Raises
    ------
    ValueError
        Naming the first key that is missing, unexpected, of another shape or dtype,
        or holds NaN or infinite values. Nothing is copied then.
    """
    missing = sorted(targets.keys() - values.keys())
    unexpected = sorted(values.keys() - targets.keys())
    if missing or unexpected:
        raise ValueError(
            f"{source}: entries do not match the model: missing {_few(missing)}, "
            f"unexpected {_few(unexpected)}"
        )
    checked = {}
    for key, target in targets.items():
        value = np.asarray(values[key])
        if value.shape != target.shape:
            raise ValueError(
                f"{source}: entry {key!r} has shape {value.shape}, expected "
                f"{target.shape}"
            )
        if value.dtype.kind != "f" or (same_dtype and value.dtype != target.dtype):
            expected = target.dtype if same_dtype else "a float dtype"
            raise ValueError(
                f"{source}: entry {key!r} has dtype {value.dtype}, expected {expected}"
            )
        if not np.isfinite(value).all():
            raise ValueError(f"{source}: entry {key!r} contains NaN or infinite values")
        checked[key] = value
    for key, target in targets.items():
        np.copyto(target, checked[key], casting="same_kind")


def _few(keys: list[str], shown: int = 3) -> str:
    """``['a', 'b', 'c']`` or ``['a', 'b', 'c'] and 7 more``."""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{keys[:shown]}{more}"
