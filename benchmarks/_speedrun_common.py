"""What the speedrun's Keras and PyTorch workers share with its orchestrator: the job
file they read, the data, the validation split and the learning-rate schedule as
plain numbers. Imports NumPy only, never tinynet or a framework, so it costs the
timed workers nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def read_job(path: str | Path) -> dict[str, Any]:
    """The job the orchestrator wrote for one run (see ``speedrun.write_job``)."""
    return json.loads(Path(path).read_text())


def load_mnist(path: str | Path) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_test, y_test`` from the orchestrator's ``.npz``: pixels
    scaled to [0, 1] float32 (N, 28, 28), labels int64."""
    with np.load(path) as data:
        x_train, y_train = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    scale = np.float32(1 / 255)
    return (
        x_train.astype(np.float32) * scale,
        y_train.astype(np.int64),
        x_test.astype(np.float32) * scale,
        y_test.astype(np.int64),
    )


def validation_split(
    n: int, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)``: a random ``fraction`` of ``range(n)`` held
    out, as tinynet's ``fit(validation_split=...)`` holds it out."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def learning_rate(step: int, schedule: float | dict[str, Any]) -> float:
    """The rate at optimizer step ``step`` (0 for the first step) of a tinynet
    learning rate: a number, or a ``CosineDecay`` config (``tinynet.optimizers.
    to_config``) with its linear warm-up; the formula of ``tinynet.schedules``."""
    if not isinstance(schedule, dict):
        return float(schedule)
    if schedule["class_name"] != "CosineDecay" or schedule["config"]["per"] != "step":
        raise ValueError(
            f"learning_rate: only a per-step CosineDecay translates, got {schedule}"
        )
    c = schedule["config"]
    peak, warmup = c["initial_learning_rate"], c["warmup_steps"]
    if step < warmup:
        return c["warmup_from"] + (peak - c["warmup_from"]) * step / warmup
    s = min(step - warmup, c["decay_steps"])
    cosine = 0.5 * (1.0 + math.cos(math.pi * s / c["decay_steps"]))
    return peak * ((1.0 - c["alpha"]) * cosine + c["alpha"])
