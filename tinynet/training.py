"""The training loop: batching, shuffling, validation and History.

Kept out of ``model.py`` so the model stays a description of the computation and this
module a description of the procedure (Keras keeps the same split in its trainers).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .callbacks import Callback
from .checks import real_number
from .losses import SoftmaxCrossEntropy
from .progress import ProgressBar, progress_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# augment(x_batch, rng) -> x_batch; augmenters whose ``uses_labels`` is True are
# called as augment(x_batch, rng, y_batch) (changes drawn by label).
Augment = Callable[..., np.ndarray]


class History:
    """What ``fit`` returns: ``history[metric]`` is a list with one value per epoch.

    Keys are ``"loss"``, ``"accuracy"`` and, with validation data, ``"val_loss"`` and
    ``"val_accuracy"``; also ``"lr"`` and ``"time"`` (seconds per epoch).
    ``stop_reason`` says why training ended early (EarlyStopping, a non-finite loss), or
    is None.
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stop_reason: str | None = None

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def plot(self, path: str | os.PathLike[str] | None = None) -> Figure:
        """Loss and accuracy per epoch (see ``tinynet.plots.plot_history``).

        Returns the Figure, which a notebook shows inline; ``path`` also writes a PNG.
        """
        if not self.epoch:
            raise ValueError("History.plot: no epoch has finished yet, nothing to plot")
        from .plots import plot_history  # matplotlib only when plotting

        return plot_history(self, path)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


# ---------------------------------------------------------------- validation
def check_targets(model: Any, y: npt.ArrayLike, n: int, what: str = "y") -> np.ndarray:
    """Check targets against the model's output and loss; return them as an array.

    Classification losses take integer labels (N,) in [0, classes) or one-hot rows
    (N, classes); regression losses take arrays of the output shape.
    """
    y = _numeric_array(y, what)
    if y.ndim == 0 or len(y) != n:
        raise ValueError(
            f"x and {what} have different lengths: {n} examples, "
            f"{len(y) if y.ndim else 'a scalar'} targets"
        )
    out_shape = model.output_shape
    classes = out_shape[-1] if out_shape else 1
    if isinstance(model.loss, SoftmaxCrossEntropy) and y.ndim == 1:
        if y.dtype.kind not in "iu":
            y = _integer_labels(y, what, classes)
        if n and (y.min() < 0 or y.max() >= classes):
            raise ValueError(
                f"{what}: labels must lie in [0, {classes - 1}] for a model with "
                f"{classes} outputs, got values from {y.min()} to {y.max()}"
            )
        return y
    if y.shape[1:] != out_shape:
        raise ValueError(
            f"{what}: expected targets of shape (N,) with integer labels or "
            f"(N, {', '.join(map(str, out_shape))}), got {y.shape}"
        )
    y = y.astype(model.dtype, copy=False)
    if not np.isfinite(y).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    if isinstance(model.loss, SoftmaxCrossEntropy):
        _check_distributions(y.reshape(-1, classes), what)
    return y


def _numeric_array(values: Any, what: str) -> np.ndarray:
    """``values`` as an array of real numbers (bool, int or float), or TypeError."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise TypeError(f"{what}: expected an array of numbers ({err})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{what}: expected an array of real numbers, got dtype {array.dtype}"
        )
    return array


def _integer_labels(y: np.ndarray, what: str, classes: int) -> np.ndarray:
    """Float labels that are whole numbers (``3.0``) as int64; anything else
    (``3.5``, NaN, bools) is a TypeError naming the first offending value."""
    expected = f"{what}: expected integer class labels in [0, {classes - 1}]"
    if y.dtype.kind != "f":
        raise TypeError(f"{expected}, got dtype {y.dtype}")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
    if bad.size:
        raise TypeError(f"{expected}, got {y[bad[0]]} at index {bad[0]}")
    return y.astype(np.int64)


def _check_distributions(rows: np.ndarray, what: str, tolerance: float = 1e-3) -> None:
    """One-hot or soft targets for a softmax: each row >= 0 and summing to 1."""
    sums = rows.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero((rows < 0).any(axis=1) | (np.abs(sums - 1) > tolerance))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"{what}: each target row must be a distribution (values >= 0 summing "
            f"to 1), row {i} has min {rows[i].min():g} and sum {sums[i]:g}"
        )


def _accuracy_hits(outputs: np.ndarray, y: np.ndarray) -> int:
    """Correct predictions in a batch (argmax, or logit > 0 for one output)."""
    if outputs.shape[-1] == 1:
        predicted = (outputs[..., 0] > 0).astype(np.int64)
        truth = y.reshape(len(y), -1)[:, 0] > 0.5 if y.ndim > 1 else y
        return int(np.sum(predicted == truth))
    predicted = outputs.argmax(axis=-1)
    truth = y.argmax(axis=-1) if y.ndim == outputs.ndim else y
    return int(np.sum(predicted == truth))


def check_input_scale(owner: str, input_scale: Any) -> float | None:
    """``input_scale`` as a finite float, or None (the inputs are read as they are)."""
    return (
        None if input_scale is None else real_number(owner, "input_scale", input_scale)
    )


def read_inputs(
    x: np.ndarray, input_scale: float | None, dtype: npt.DTypeLike
) -> np.ndarray:
    """A batch as the model reads it: ``x * input_scale`` in ``dtype``, or ``x``
    itself (already of ``dtype``) when there is no scale.

    x : (B, *input_shape) of any numeric dtype (e.g. uint8 pixels).
    """
    if input_scale is None:
        return x
    scaled: np.ndarray = np.multiply(x, input_scale, dtype=dtype)
    return scaled


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Hold out a random ``fraction``: ``(x_train, y_train), (x_val, y_val)``.

    Random rather than the tail (as Keras does), so a data set sorted by class still
    gets a validation set that looks like the whole.
    """
    n_val = int(round(len(x) * fraction))
    if n_val < 1 or n_val >= len(x):
        raise ValueError(
            f"validation_split={fraction} leaves {n_val} of {len(x)} examples for "
            "validation; need at least one on each side"
        )
    order = rng.permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])


# ---------------------------------------------------------------------- loop
def fit(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.0,
    shuffle: bool = True,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    verbose: int = 1,
    augment: Augment | None = None,
    input_scale: float | None = None,
) -> History:
    """Train ``model`` on ``x, y`` for ``epochs`` epochs of mini-batches.

    Parameters
    ----------
    x : (N, *model.input_shape) inputs. y : (N,) integer labels or (N, *output_shape).
    input_scale : the model reads ``x * input_scale`` (and the validation inputs
        times it), in its dtype, one batch at a time: e.g. ``1 / 255`` for uint8
        pixels, which are then never copied whole as floats (MNIST's training set
        would take 188 MB of fresh memory). None: ``x`` is read as it is.
    validation_data : ``(x_val, y_val)`` evaluated after every epoch.
    validation_split : fraction of ``x, y`` held out for validation, drawn at random
        (not the tail) with the fit Generator; ignored when validation_data is given.
    seed : seeds the Generator that drives shuffling, dropout and augmentation; None
        continues the model's own Generator (itself seeded by ``Sequential(seed=...)``).
    augment : ``augment(x_batch, rng) -> x_batch`` applied to each training batch;
        ``augment(x_batch, rng, y_batch)`` if ``augment.uses_labels`` is True.
    verbose : 0 silent, 1 progress bar per epoch: redrawn in place in a terminal or a
        notebook (one output for the whole fit), one line per epoch in a log file.
    """
    if model.optimizer is None or model.loss is None:
        raise RuntimeError("call model.compile(optimizer=..., loss=...) before fit()")
    if not isinstance(epochs, int | np.integer) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")

    input_scale = check_input_scale("fit", input_scale)
    as_read = input_scale is None  # else each batch is scaled as it is drawn
    rng = np.random.default_rng(seed) if seed is not None else model.rng
    x = model.check_inputs(x, convert=as_read)
    y = check_targets(model, y, len(x))
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        x_val = model.check_inputs(validation_data[0], "validation x", convert=as_read)
        y_val = check_targets(model, validation_data[1], len(x_val), "validation y")
    elif validation_split > 0:
        (x, y), (x_val, y_val) = split_validation(x, y, validation_split, rng)
    else:
        x_val = y_val = None
    if len(x) == 0:
        raise ValueError("fit() needs at least one training example")

    for layer in model.layers:
        layer.rng = rng
    history = History()
    model.stop_training = False
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks must be Callback objects, got {type(cb).__name__}"
            )
        cb.set_model(model)
        cb.on_train_begin()

    steps = math.ceil(len(x) / batch_size)
    view = progress_view() if verbose else None
    try:
        for epoch in range(epochs):
            model.optimizer.set_epoch(epoch)
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            started = time.perf_counter()
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            bar = (
                ProgressBar(steps, f"Epoch {epoch + 1}/{epochs}", view=view)
                if view is not None
                else None
            )
            loss_sum, hits, seen = 0.0, 0, 0
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb, yb = read_inputs(x[idx], input_scale, model.dtype), y[idx]
                if augment is not None:
                    extra = (yb,) if getattr(augment, "uses_labels", False) else ()
                    xb = augment(xb, rng, *extra).astype(model.dtype, copy=False)
                loss, outputs = model.train_step(xb, yb)
                if not math.isfinite(loss):
                    history.stop_reason = (
                        f"loss became {loss} at epoch {epoch + 1}, step {step + 1}: "
                        "training stopped. Try a smaller learning rate, gradient "
                        "clipping (clipnorm=1.0) or check the inputs' scale."
                    )
                    print(f"\n{history.stop_reason}", file=sys.stderr)
                    model.stop_training = True
                    break
                loss_sum += loss * len(idx)
                seen += len(idx)
                logs = {"loss": loss_sum / seen}
                if model.metrics:
                    hits += _accuracy_hits(outputs, yb)
                    logs["accuracy"] = hits / seen
                if bar:
                    bar.update(step + 1, logs)
            else:
                logs["lr"] = model.optimizer.lr
                if x_val is not None:
                    val = evaluate(
                        model, x_val, y_val, checked=True, input_scale=input_scale
                    )
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["time"] = time.perf_counter() - started
                if bar:
                    bar.finish(logs)
                history.append(epoch, logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
            if model.stop_training:
                if history.stop_reason is None:
                    # Callbacks that stop training (EarlyStopping) say why.
                    reasons = (getattr(cb, "stop_reason", None) for cb in callbacks)
                    history.stop_reason = next(
                        (reason for reason in reasons if reason),
                        "stopped by a callback",
                    )
                break
    finally:
        model.plan.clear()  # a finished fit holds no activations
    for cb in callbacks:
        cb.on_train_end()
    return history


def evaluate(
    model: Any,
    x: Any,
    y: Any,
    *,
    batch_size: int = 256,
    checked: bool = False,
    input_scale: float | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``x, y`` in inference mode.

    The loss is computed by the model's plan, as in training, so train and
    validation losses are comparable. ``input_scale``: the model reads
    ``x * input_scale``, one batch at a time (see ``fit``).
    """
    if model.loss is None:
        raise RuntimeError("call model.compile(...) before evaluate()")
    input_scale = check_input_scale("evaluate", input_scale)
    if not checked:
        x = model.check_inputs(x, convert=input_scale is None)
        y = check_targets(model, y, len(x))
    if len(x) == 0:
        raise ValueError("evaluate() needs at least one example")
    loss_sum, hits = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb = read_inputs(x[start : start + batch_size], input_scale, model.dtype)
        yb = y[start : start + batch_size]
        loss, out = model.plan.evaluate(xb, yb)
        loss_sum += loss * len(out)
        if model.metrics:
            hits += _accuracy_hits(out, yb)
    results = {"loss": loss_sum / len(x)}
    if model.metrics:
        results["accuracy"] = hits / len(x)
    return results
