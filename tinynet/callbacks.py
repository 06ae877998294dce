"""Callbacks: hooks the training loop calls at the start and end of epochs.

``fit`` calls ``set_model`` and ``on_train_begin`` once, ``on_epoch_begin(epoch)`` and
``on_epoch_end(epoch, logs)`` every epoch (``logs`` holds "loss", "accuracy",
"val_loss", ... for that epoch) and ``on_train_end`` once. Setting
``model.stop_training = True`` ends training after the current epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


class Callback:
    """Base class: every hook does nothing."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self) -> None: ...

    def on_epoch_begin(self, epoch: int) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self) -> None: ...


class _Monitor:
    """Tracks the best value of one logged quantity ("val_loss" is best when smallest,
    anything with "acc" in its name when largest, unless ``mode`` says otherwise)."""

    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best = math.inf if mode == "min" else -math.inf

    def value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            raise ValueError(
                f"monitored quantity {self.monitor!r} is not logged; available: "
                f"{', '.join(sorted(logs))} (val_* needs validation data)"
            )
        return logs[self.monitor]

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    With ``restore_best_weights=True`` the weights of the best epoch are put back when
    training ends, whether it stopped early or ran all its epochs.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        self._monitor = _Monitor(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.best_epoch: int | None = None
        self.best_weights: dict[str, np.ndarray] | None = None
        self.stop_reason: str | None = None

    def on_train_begin(self) -> None:
        self._monitor.best = math.inf if self._monitor.mode == "min" else -math.inf
        self.wait, self.best_epoch, self.best_weights = 0, None, None
        self.stop_reason = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = self._monitor.value(logs)
        if self._monitor.improved(value):
            self._monitor.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.model.stop_training = True
            self.stop_reason = (
                f"early stopping: {self._monitor.monitor} has not improved for "
                f"{self.wait} epochs (best {self._monitor.best:.4f} at epoch "
                f"{self.best_epoch + 1 if self.best_epoch is not None else '-'})"
            )

    def on_train_end(self) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch, or only when ``monitor`` improves.

    Writes are atomic (see ``tinynet.saving``): a crash mid-save leaves the previous
    file intact. ``filepath`` may contain ``{epoch}`` (1-based) and any logged key,
    e.g. ``"ckpt-{epoch:02d}-{val_accuracy:.4f}.npz"``.
    """

    def __init__(
        self,
        filepath: str | Path,
        *,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
    ) -> None:
        self.filepath = str(filepath)
        self._monitor = _Monitor(monitor, mode, 0.0)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.saved: list[str] = []

    def on_train_begin(self) -> None:
        self._monitor.best = math.inf if self._monitor.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = self._monitor.value(logs)
            if not self._monitor.improved(value):
                return
            self._monitor.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        if not callable(schedule):
            raise TypeError("schedule must be a callable (epoch, lr) -> lr")
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int) -> None:
        lr = float(self.schedule(epoch, float(self.model.optimizer.lr)))
        if not np.isfinite(lr) or lr < 0:
            raise ValueError(
                f"schedule returned an invalid learning rate {lr} at epoch {epoch}"
            )
        self.model.optimizer.learning_rate = lr


class WeightAveraging(Callback):
    """Stochastic weight averaging (Izmailov et al. 2018): when training ends, the
    model's parameters become the mean of their values at the end of every epoch
    from ``start_epoch`` (0-based) on.

    Train with a constant or cyclic learning rate over the averaged epochs, so that
    the end points differ. The BatchNorm moving statistics are left as training
    left them: they belong to the last weights, not the average, so recompute them
    with :func:`tinynet.averaging.refresh_batchnorm` on training images after
    ``fit``. A run stopped before ``start_epoch`` keeps its last weights.

    Attributes
    ----------
    averaged_epochs : list of int
        The 0-based epochs whose weights went into the average.
    """

    def __init__(self, start_epoch: int = 0) -> None:
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(
                f"start_epoch must be an integer >= 0, got {start_epoch!r}"
            )
        self.start_epoch = start_epoch
        self.averaged_epochs: list[int] = []
        self._sums: dict[str, np.ndarray] = {}

    def on_train_begin(self) -> None:
        self.averaged_epochs, self._sums = [], {}

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch < self.start_epoch:
            return
        for key, param in self.model.parameters().items():
            if key in self._sums:
                self._sums[key] += param
            else:
                self._sums[key] = param.astype(np.float64)
        self.averaged_epochs.append(epoch)

    def on_train_end(self) -> None:
        if not self.averaged_epochs:
            return
        n = len(self.averaged_epochs)
        for key, param in self.model.parameters().items():
            param[...] = self._sums[key] / n  # in place: the optimizer keeps its arrays
        self._sums = {}


class LivePlot(Callback):
    """Loss and metrics per epoch, training and validation, in one figure kept current.

    In a notebook one output shows the curves, replaced in place after every epoch by
    a small hand-drawn SVG (under a millisecond to draw, so it costs nothing next to
    an epoch); when training ends it becomes the full figure of ``History.plot``.
    With ``path``, that figure's PNG is also rewritten (outside a notebook, only
    that): after an epoch only when the last write cost at most ``max_overhead`` of
    the training time since it, so the file never slows training by more than that,
    and always when training ends.

    Parameters
    ----------
    path : PNG file kept current (optional in a notebook).
    max_overhead : the largest fraction of training time spent writing the PNG.
    """

    def __init__(
        self, path: str | Path | None = None, *, max_overhead: float = 0.02
    ) -> None:
        if not 0 < max_overhead <= 1:
            raise ValueError(f"max_overhead must be in (0, 1], got {max_overhead}")
        self.path = path
        self.max_overhead = max_overhead
        self.figure: Any = None
        self.writes = 0

    def on_train_begin(self) -> None:
        from .jupyter import LiveOutput, in_notebook
        from .training import History

        self.output = LiveOutput() if in_notebook() else None
        if self.output is None and self.path is None:
            raise ValueError(
                "LivePlot: not running in a notebook, so give it a path to draw to "
                "(LivePlot('curves.png'))"
            )
        self.history = History()
        self._written_at = time.perf_counter()
        self._write_cost = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        from .jupyter import curves_svg

        self.history.append(epoch, logs)
        if self.output is not None:
            self.output.show(
                {
                    "image/svg+xml": curves_svg(self.history.history),
                    "text/plain": f"learning curves, epoch {epoch + 1}",
                }
            )
        since = time.perf_counter() - self._written_at
        if self.path is not None and self._write_cost <= self.max_overhead * since:
            self._write()

    def on_train_end(self) -> None:
        if not self.history.epoch:
            return
        self.figure = self._write() if self.path is not None else self.history.plot()
        if self.output is not None:
            self.output.show(self.figure)

    def _write(self) -> Any:
        started = time.perf_counter()
        figure = self.history.plot(self.path)
        self._written_at = time.perf_counter()
        self._write_cost = self._written_at - started
        self.writes += 1
        return figure
