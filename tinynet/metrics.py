"""Classification metrics as pure functions of labels and scores.

Labels are integer class indices ``0..C-1``. Wherever predictions are expected,
a 2-D array of per-class scores (probabilities or logits) ``(N, C)`` is accepted
too and turned into labels with ``argmax``; likewise a one-hot ``y_true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "format_confusion_matrix",
    "precision_recall",
]


def _labels(y: npt.ArrayLike, name: str, where: str) -> np.ndarray:
    """``y`` as an int64 vector of labels; 2-D scores become their argmax."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] == 0:
            raise ValueError(f"{where}: {name} has shape {y.shape}, with no classes")
        if not (np.issubdtype(y.dtype, np.number) and y.dtype != np.bool_):
            raise TypeError(f"{where}: {name} scores must be numeric, got {y.dtype}")
        winners: np.ndarray = np.argmax(y, axis=1)
        return winners.astype(np.int64)
    if y.ndim != 1:
        raise ValueError(
            f"{where}: {name} must be labels (N,) or scores (N, C), got shape {y.shape}"
        )
    if y.size == 0:  # [] arrives as float64; emptiness is reported by the caller
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{where}: {name} labels must be integers, got {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{where}: {name} has a negative label {int(y.min())}")
    return y.astype(np.int64)


def _pair(y_true: Any, y_pred: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true", where)
    p = _labels(y_pred, "y_pred", where)
    if t.shape != p.shape:
        raise ValueError(
            f"{where}: y_true has {t.shape[0]} samples but y_pred has {p.shape[0]}"
        )
    if t.size == 0:
        raise ValueError(f"{where}: got no samples")
    return t, p


def accuracy(y_true: Any, y_pred_or_probs: Any) -> float:
    """Fraction of samples whose predicted label equals the true label.

    Parameters
    ----------
    y_true : (N,) int labels, or (N, C) one-hot
    y_pred_or_probs : (N,) int labels, or (N, C) scores (argmax is taken)
    """
    t, p = _pair(y_true, y_pred_or_probs, "accuracy")
    return float(np.mean(t == p))


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: int | None = None
) -> np.ndarray:
    """Counts ``cm[i, j]`` of samples of true class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true : (N,) int labels (or (N, C) one-hot)
    y_pred : (N,) int labels (or (N, C) scores)
    num_classes : C; default ``max(label) + 1`` over both arrays (or the
        score width when scores are given).

    Returns
    -------
    cm : (C, C) int64; rows = true class, columns = predicted class.
    """
    t, p = _pair(y_true, y_pred, "confusion_matrix")
    widths = [np.asarray(a).shape[1] for a in (y_true, y_pred) if np.ndim(a) == 2]
    seen = int(max(t.max(), p.max())) + 1
    if num_classes is None:
        num_classes = max([seen, *widths])
    elif isinstance(num_classes, bool) or not isinstance(
        num_classes, (int, np.integer)
    ):
        raise TypeError(
            f"confusion_matrix: num_classes must be an int, got {num_classes!r}"
        )
    elif num_classes < seen:
        raise ValueError(
            f"confusion_matrix: label {seen - 1} does not fit num_classes={num_classes}"
        )
    c = int(num_classes)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64)


def _check_cm(cm: npt.ArrayLike, where: str) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"{where}: expected a square (C, C) matrix, got {cm.shape}")
    if not np.issubdtype(cm.dtype, np.integer):
        raise TypeError(f"{where}: expected integer counts, got {cm.dtype}")
    if cm.min() < 0:
        raise ValueError(f"{where}: counts must be >= 0, got {int(cm.min())}")
    return cm.astype(np.int64)


def precision_recall(cm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall from a confusion matrix.

    ``precision[k] = cm[k, k] / cm[:, k].sum()`` (of those predicted k, how many
    are k); ``recall[k] = cm[k, k] / cm[k, :].sum()``. A class never predicted
    (or never present) has 0/0, reported as 0.0.

    Parameters
    ----------
    cm : (C, C) integer counts, rows = true, columns = predicted.

    Returns
    -------
    precision : (C,) float64
    recall : (C,) float64
    """
    cm = _check_cm(cm, "precision_recall")
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def _label_names(labels: Sequence[Any] | None, c: int, where: str) -> list[str]:
    if labels is None:
        return [str(k) for k in range(c)]
    names = [str(v) for v in labels]
    if len(names) != c:
        raise ValueError(f"{where}: expected {c} labels, got {len(names)}")
    return names


def format_confusion_matrix(cm: Any, labels: Sequence[Any] | None = None) -> str:
    """The matrix as an aligned text table, true classes down, predicted across.

    Example (two classes)::

        true\\pred    0    1
                0   50    2
                1    3   45
    """
    cm = _check_cm(cm, "format_confusion_matrix")
    names = _label_names(labels, cm.shape[0], "format_confusion_matrix")
    corner = "true\\pred"
    first = max(len(corner), *(len(n) for n in names))
    width = max(len(str(int(cm.max()))), *(len(n) for n in names)) + 1
    lines = [corner.rjust(first) + "".join(n.rjust(width + 1) for n in names)]
    for name, row in zip(names, cm, strict=True):
        lines.append(name.rjust(first) + "".join(str(v).rjust(width + 1) for v in row))
    return "\n".join(lines)


def classification_report(
    y_true: Any,
    y_pred: Any,
    labels: Sequence[Any] | None = None,
    num_classes: int | None = None,
) -> str:
    """Per-class precision, recall, F1 and support, then accuracy and macro means.

    Parameters
    ----------
    y_true : (N,) int labels (or (N, C) one-hot)
    y_pred : (N,) int labels (or (N, C) scores)
    labels : display names of the C classes (default ``0..C-1``)
    num_classes : C (see :func:`confusion_matrix`)
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    names = _label_names(labels, cm.shape[0], "classification_report")
    precision, recall = precision_recall(cm)
    denom = precision + recall
    f1 = np.divide(
        2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0
    )
    support = cm.sum(axis=1)
    first = max(9, *(len(n) for n in names))
    head = f"{'':>{first}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"
    lines = [head]
    for k, name in enumerate(names):
        lines.append(
            f"{name:>{first}} {precision[k]:9.4f} {recall[k]:9.4f} {f1[k]:9.4f} "
            f"{support[k]:9d}"
        )
    total = int(support.sum())
    acc = np.trace(cm) / total
    lines.append("")
    lines.append(f"{'accuracy':>{first}} {'':>9} {'':>9} {acc:9.4f} {total:9d}")
    lines.append(
        f"{'macro avg':>{first}} {precision.mean():9.4f} {recall.mean():9.4f} "
        f"{f1.mean():9.4f} {total:9d}"
    )
    return "\n".join(lines)
