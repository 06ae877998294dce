"""Figures for training and prediction: shown inline in a notebook, or PNG files.

Matplotlib is used through ``Figure`` and the Agg canvas directly, never
``pyplot``: no display is needed, no global backend is switched under the
caller's feet, and figures are freed when they go out of scope. Every function
returns an ``InlineFigure``, which Jupyter shows as a PNG; given a ``path``, it
also writes that PNG atomically (temporary file in the same folder, then
``os.replace``).

Images are MNIST-style (white ink on black) and are shown that way.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .metrics import _label_names

__all__ = [
    "InlineFigure",
    "plot_confusion_matrix",
    "plot_history",
    "plot_misclassified",
    "plot_prediction",
    "plot_reliability",
]

PathLike = str | os.PathLike[str] | None
_TRAIN, _VAL, _HIGHLIGHT = "#1f77b4", "#d62728", "#2ca02c"
_DPI = 100


class InlineFigure(Figure):
    """A matplotlib Figure that Jupyter displays inline, with no pyplot involved."""

    def _repr_png_(self) -> bytes:
        FigureCanvasAgg(self)
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=_DPI)
        return buffer.getvalue()


def _save(fig: InlineFigure, path: PathLike, where: str) -> InlineFigure:
    """Write ``fig`` to ``path`` (a PNG) when one is given; return ``fig``."""
    if path is None:
        return fig
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{where}: path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    # Not mkstemp: its 0600 mode would survive os.replace; "xb" honours the umask.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format="png", dpi=_DPI)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return fig


def _images(x: npt.ArrayLike, name: str, where: str) -> np.ndarray:
    """``(N, H, W)`` float images from (N, H, W) or (N, H, W, 1), any numeric dtype."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"{where}: {name} must be numeric images (N, H, W) or (N, H, W, 1), "
            f"got {x.dtype} with shape {x.shape}"
        )
    return x


def _grey_range(x: np.ndarray) -> tuple[float, float]:
    # uint8 images are 0..255; float images are taken to be 0..1.
    return (0.0, 255.0) if x.dtype == np.uint8 or x.max(initial=0) > 1.0 else (0.0, 1.0)


# ----------------------------------------------------------------- history


def plot_history(
    history: Mapping[str, Sequence[float]] | Any, path: PathLike = None
) -> InlineFigure:
    """Loss and accuracy per epoch, training against validation.

    Parameters
    ----------
    history : dict of lists of per-epoch values (or an object with such a dict
        in ``.history``), e.g. ``{"loss", "accuracy", "val_loss",
        "val_accuracy"}``. Keys ending in ``loss`` go to the left panel, keys
        ending in ``accuracy``/``acc`` to the right; ``val_`` keys are dashed
        and their best epoch is marked.
    path : where to also write the PNG (optional).
    """
    where = "plot_history"
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping) or not history:
        raise TypeError(f"{where}: expected a non-empty dict of lists, got {history!r}")
    series = {}
    for key, values in history.items():
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{where}: history[{key!r}] must be a non-empty list of numbers, "
                f"got {values!r}"
            )
        series[str(key)] = arr
    loss = {k: v for k, v in series.items() if k.endswith("loss")}
    acc = {k: v for k, v in series.items() if k.endswith(("accuracy", "acc"))}
    if not loss and not acc:
        raise ValueError(
            f"{where}: no key ending in 'loss' or 'accuracy' in {sorted(series)}"
        )
    panels = [(p, t) for p, t in ((loss, "Loss"), (acc, "Accuracy")) if p]
    fig = InlineFigure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
    for i, (group, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, values in sorted(
            group.items(), key=lambda kv: kv[0].startswith("val")
        ):
            epochs = np.arange(1, len(values) + 1)
            val = key.startswith("val")
            label = key
            if val and np.isfinite(values).any():
                pick = np.nanargmin if title == "Loss" else np.nanargmax
                best = int(pick(values))
                ax.plot(epochs[best], values[best], "*", color=_VAL, markersize=12)
                label = f"{key} (best {values[best]:.4g}, epoch {best + 1})"
            ax.plot(
                epochs,
                values,
                "--" if val else "-",
                color=_VAL if val else _TRAIN,
                marker="o" if len(values) <= 30 else None,
                markersize=3,
                label=label,
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        locator = ax.xaxis.get_major_locator()
        if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
            locator.set_params(integer=True)
        if title == "Loss" and all(np.nanmin(v) > 0 for v in group.values()):
            # Losses fall by orders of magnitude; a log axis keeps late epochs readable.
            spread = max(np.nanmax(v) for v in group.values()) / min(
                np.nanmin(v) for v in group.values()
            )
            if spread > 20:
                ax.set_yscale("log")
    return _save(fig, path, where)


# -------------------------------------------------------- confusion matrix


def plot_confusion_matrix(
    cm: Any, path: PathLike = None, labels: Sequence[Any] | None = None
) -> InlineFigure:
    """Heat map of a confusion matrix with the count in every cell.

    Correct predictions (the diagonal) are shaded blue by recall; mistakes are
    shaded red on their own scale, relative to the largest off-diagonal count,
    so that a handful of confusions still stands out next to ~1000 hits.

    Parameters
    ----------
    cm : (C, C) integer counts, rows = true class, columns = predicted.
    path : where to also write the PNG (optional).
    labels : C display names (default ``0..C-1``).
    """
    where = "plot_confusion_matrix"
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"{where}: expected a square (C, C) matrix, got {cm.shape}")
    if not np.issubdtype(cm.dtype, np.integer) or cm.min() < 0:
        raise ValueError(
            f"{where}: expected non-negative integer counts, got {cm.dtype}"
        )
    c = cm.shape[0]
    names = _label_names(labels, c, where)
    rows = cm.sum(axis=1, keepdims=True)
    recall = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    off = cm * (1 - np.eye(c, dtype=cm.dtype))
    diag = np.eye(c, dtype=bool)

    from matplotlib import colormaps

    blues, reds = colormaps["Blues"], colormaps["Reds"]
    off_norm = Normalize(0, max(int(off.max()), 1))
    rgba = np.where(
        diag[..., None],
        blues(0.25 + 0.75 * recall),
        reds(0.85 * off_norm(off)),
    )
    size = max(4.5, 0.55 * c + 1.5)
    fig = InlineFigure(figsize=(size + 0.8, size), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(rgba, interpolation="nearest")
    fontsize = 9 if c <= 12 else 7
    for i in range(c):
        for j in range(c):
            v = int(cm[i, j])
            if i == j:
                dark = recall[i, j] > 0.5
            else:
                dark = off_norm(v) > 0.55
            colour = "white" if dark else ("black" if v else "#b0b0b0")
            ax.text(
                j, i, str(v), ha="center", va="center", color=colour, fontsize=fontsize
            )
    # Names longer than a cell (Fashion-MNIST's "T-shirt/top") are slanted.
    slanted = max(len(n) for n in names) > 3
    ax.set_xticks(
        range(c),
        names,
        rotation=40 if slanted else 0,
        ha="right" if slanted else "center",
        rotation_mode="anchor",
    )
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else 0.0
    ax.set_title(f"Confusion matrix: {total} samples, accuracy {acc:.2%}")
    ax.set_xticks(np.arange(c + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(c + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    fig.supxlabel(
        "blue: correct (shade = recall)    red: mistakes (shade = count)",
        fontsize=8,
        color="#555555",
    )
    return _save(fig, path, where)


# --------------------------------------------------------- misclassified


def plot_misclassified(
    images: Any,
    y_true: Any,
    y_pred: Any,
    path: PathLike = None,
    max_images: int = 36,
    probabilities: Any = None,
    labels: Sequence[Any] | None = None,
) -> InlineFigure:
    """Grid of the images whose prediction is wrong, titled ``true -> pred``.

    Parameters
    ----------
    images : (N, H, W) or (N, H, W, 1); uint8 0-255 or float 0-1.
    y_true, y_pred : (N,) int labels. Only samples with ``y_true != y_pred``
        are drawn, so the whole test set may be passed.
    path : where to also write the PNG (optional).
    max_images : at most this many are drawn.
    probabilities : optional (N, C) predicted probabilities; then the most
        confident mistakes come first and each title shows the confidence.
    labels : display names of the C classes (default: the label numbers).
    """
    where = "plot_misclassified"
    x = _images(images, "images", where)
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != (len(x),) or p.shape != (len(x),):
        raise ValueError(
            f"{where}: expected y_true and y_pred of shape ({len(x)},), got "
            f"{t.shape} and {p.shape}"
        )
    if (
        isinstance(max_images, bool)
        or not isinstance(max_images, int)
        or max_images < 1
    ):
        raise ValueError(f"{where}: max_images must be an int >= 1, got {max_images!r}")
    names = [str(v) for v in labels] if labels is not None else None
    top = int(max(t.max(), p.max())) if len(x) else -1
    if names is not None and len(names) <= top:
        raise ValueError(
            f"{where}: expected a name for every label up to {top}, got "
            f"{len(names)} labels"
        )
    wrong = np.flatnonzero(t != p)
    conf = None
    if probabilities is not None:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(x) or probs.shape[1] <= p.max():
            raise ValueError(
                f"{where}: expected probabilities of shape ({len(x)}, C) covering "
                f"every predicted label, got {probs.shape}"
            )
        conf = probs[np.arange(len(x)), p]
        wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    wrong = wrong[:max_images]
    n = len(wrong)
    # Cells as wide as the images are (a scan beside its network input is 2:1), in
    # about a 9-square-cell-wide grid.
    aspect = x.shape[2] / x.shape[1] if x.shape[1] else 1.0
    cols = int(
        min(
            max(n, 1),
            max(1, 9 // aspect),
            np.ceil(np.sqrt(max(n, 1) / aspect) * 1.3),
        )
    )
    grid_rows = max(1, int(np.ceil(n / cols)))
    fig = InlineFigure(
        figsize=(max(4.0, 1.35 * aspect * cols + 0.3), 1.55 * grid_rows + 0.6),
        layout="constrained",
    )
    if n == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return _save(fig, path, where)
    total = int(np.sum(t != p))
    shown = f"{n} of {total}" if n < total else f"{n}"
    fig.suptitle(f"{shown} misclassified (true \u2192 predicted)")
    lo, hi = _grey_range(x)
    for k, i in enumerate(wrong):
        ax = fig.add_subplot(grid_rows, cols, k + 1)
        ax.imshow(x[i], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        true, pred = (names[t[i]], names[p[i]]) if names else (t[i], p[i])
        title = f"{true} \u2192 {pred}"
        if conf is not None:
            title += f" ({conf[i]:.0%})"
        if len(title) > 16:  # class names: two lines fit the image's width
            title = title.replace(" \u2192 ", "\n\u2192 ")
        ax.set_title(title, fontsize=9 if len(title) <= 16 else 8, color=_VAL)
        ax.set_axis_off()
    return _save(fig, path, where)


# ------------------------------------------------------------- prediction


def plot_prediction(
    original_image: Any,
    model_input: Any,
    probabilities: Any,
    path: PathLike = None,
    digits: Sequence[Any] | None = None,
) -> InlineFigure:
    """The original picture, each 28x28 input the network saw, and its scores.

    Parameters
    ----------
    original_image : (H, W) grey or (H, W, 3) RGB, uint8 or float in [0, 1].
    model_input : one (28, 28) input, or a list / array (k, 28, 28[, 1]) of the
        k digits read from the picture, left to right.
    probabilities : (10,) or (k, 10) class probabilities per input.
    path : where to also write the PNG (optional).
    digits : k names shown above each input (default: the argmax class).
    """
    where = "plot_prediction"
    orig = np.asarray(original_image)
    if not (orig.ndim == 2 or (orig.ndim == 3 and orig.shape[2] in (3, 4))):
        raise ValueError(
            f"{where}: original_image must be (H, W) or (H, W, 3), got {orig.shape}"
        )
    inputs = np.asarray(model_input)
    if inputs.ndim == 2 or (inputs.ndim == 3 and inputs.shape[-1] == 1):
        inputs = inputs.reshape(1, *inputs.shape)
    inputs = _images(inputs, "model_input", where)
    k = len(inputs)
    if k == 0:
        raise ValueError(f"{where}: model_input holds no image")
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim == 1:
        probs = probs[None]
    if probs.ndim != 2 or probs.shape[0] != k or probs.shape[1] < 2:
        raise ValueError(
            f"{where}: expected probabilities of shape ({k}, C) for {k} input(s), "
            f"got {np.shape(probabilities)}"
        )
    if not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1 + 1e-6:
        raise ValueError(f"{where}: probabilities must be finite and in [0, 1]")
    top = probs.argmax(axis=1)
    names = [str(d) for d in top] if digits is None else [str(d) for d in digits]
    if len(names) != k:
        raise ValueError(f"{where}: expected {k} digits, got {len(names)}")
    c = probs.shape[1]
    if k == 1:
        fig = InlineFigure(figsize=(10, 3.4), layout="constrained")
        gs = fig.add_gridspec(1, 3, width_ratios=[1.3, 1, 1.6])
        ax_orig = fig.add_subplot(gs[0, 0])
        input_axes, bar_axes = [fig.add_subplot(gs[0, 1])], [fig.add_subplot(gs[0, 2])]
    else:
        # Give the original the height its aspect ratio needs across k columns.
        top_h = float(np.clip(k * orig.shape[0] / orig.shape[1], 0.6, 2.5))
        width = max(6.0, 1.7 * k)
        height = (top_h + 2.2) * width / k + 0.6
        fig = InlineFigure(figsize=(width, height), layout="constrained")
        gs = fig.add_gridspec(3, k, height_ratios=[top_h, 1, 1])
        ax_orig = fig.add_subplot(gs[0, :])
        input_axes = [fig.add_subplot(gs[1, j]) for j in range(k)]
        bar_axes = [fig.add_subplot(gs[2, j]) for j in range(k)]
    orig_range = _grey_range(orig)
    shown = orig / orig_range[1] if orig.ndim == 3 else orig
    if orig.ndim == 3:
        ax_orig.imshow(np.clip(shown, 0, 1))
    else:
        ax_orig.imshow(orig, cmap="gray", vmin=orig_range[0], vmax=orig_range[1])
    ax_orig.set_title("original")
    ax_orig.set_axis_off()
    lo, hi = _grey_range(inputs)
    for j in range(k):
        ax = input_axes[j]
        ax.imshow(inputs[j], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(
            f"input {j + 1}: {names[j]}" if k > 1 else f"network input: {names[j]}"
        )
        ax.set_xticks([])
        ax.set_yticks([])
        bar = bar_axes[j]
        colours = [_HIGHLIGHT if i == top[j] else "#9e9e9e" for i in range(c)]
        bar.bar(np.arange(c), probs[j], color=colours)
        bar.set_ylim(0, 1.12)
        bar.set_xticks(np.arange(c))
        bar.tick_params(axis="x", labelsize=8 if k > 1 else 10)
        bar.text(
            top[j],
            probs[j, top[j]] + 0.02,
            f"{probs[j, top[j]]:.0%}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
        if k == 1:
            bar.set_xlabel("digit")
        if j == 0:
            bar.set_ylabel("probability")
        else:
            bar.set_yticklabels([])
        bar.grid(axis="y", alpha=0.3)
    if k > 1:
        fig.suptitle("Read: " + " ".join(names))
    return _save(fig, path, where)


# ------------------------------------------------------------- calibration


def plot_reliability(
    diagrams: Mapping[str, Any],
    path: PathLike = None,
    threshold: float | None = None,
) -> InlineFigure:
    """Reliability diagram: accuracy against confidence, one line per named set.

    A calibrated model follows the diagonal; points below it are over-confident.
    A point's area grows with the share of its set's predictions in the bin (so the
    noisy, nearly empty bins do not dominate); empty bins are left out; each set's
    ECE is in the legend.

    Parameters
    ----------
    diagrams : name -> :class:`tinynet.calibration.ReliabilityDiagram` (anything
        with ``confidence``, ``accuracy`` and ``counts`` arrays of one length per
        bin, and an ``ece``).
    path : where to also write the PNG (optional).
    threshold : a confidence to mark with a vertical line (e.g. the "not sure"
        threshold), or None.
    """
    where = "plot_reliability"
    if not diagrams:
        raise ValueError(f"{where}: got no diagrams to draw")
    fig = InlineFigure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#888888", linestyle="--", label="calibrated")
    for name, d in diagrams.items():
        counts = np.asarray(d.counts)
        full = counts > 0
        conf, acc = np.asarray(d.confidence)[full], np.asarray(d.accuracy)[full]
        (line,) = ax.plot(conf, acc, alpha=0.6, label=f"{name} (ECE {d.ece:.3f})")
        share = counts[full] / counts.sum()
        ax.scatter(conf, acc, s=12 + 400 * np.sqrt(share), color=line.get_color())
    if threshold is not None:
        ax.axvline(threshold, color="#e08a00", linestyle=":")
        ax.text(threshold, 0.03, f" not sure < {threshold:g}", color="#8a4b00",
                ha="right", fontsize=8)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (mean per bin)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability: accuracy against confidence")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, where)
