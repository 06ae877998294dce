"""Metrics against hand-counted cases and brute-force loops."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet.metrics import (
    accuracy,
    classification_report,
    confusion_matrix,
    format_confusion_matrix,
    precision_recall,
)

Y_TRUE = np.array([0, 0, 1, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0, 1])


def test_accuracy_labels_and_probabilities():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(3 / 6)
    probs = np.eye(3)[Y_PRED] * 0.6 + 0.1
    assert accuracy(Y_TRUE, probs) == pytest.approx(0.5)
    assert accuracy(np.eye(3)[Y_TRUE], Y_TRUE) == 1.0


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    expected = [[1, 1, 0], [1, 2, 0], [0, 1, 0]]
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    assert confusion_matrix(Y_TRUE, Y_PRED, num_classes=5).shape == (5, 5)
    # Score width sets C even if the top class is never predicted.
    assert confusion_matrix([0, 1], np.eye(4)[[0, 1]]).shape == (4, 4)


def test_precision_recall_by_hand_and_zero_division():
    precision, recall = precision_recall(confusion_matrix(Y_TRUE, Y_PRED))
    # class 2 is never predicted: precision 0/0 -> 0; its recall is 0/1.
    np.testing.assert_allclose(precision, [1 / 2, 2 / 4, 0.0])
    np.testing.assert_allclose(recall, [1 / 2, 2 / 3, 0.0])
    p, r = precision_recall(np.zeros((2, 2), np.int64))
    np.testing.assert_array_equal(p, [0, 0])
    np.testing.assert_array_equal(r, [0, 0])


@settings(max_examples=25, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1),
)
def test_confusion_matrix_matches_a_loop(data):
    t = np.array([a for a, _ in data])
    p = np.array([b for _, b in data])
    cm = confusion_matrix(t, p, num_classes=5)
    loop = np.zeros((5, 5), np.int64)
    for a, b in data:
        loop[a, b] += 1
    np.testing.assert_array_equal(cm, loop)
    assert cm.sum() == len(data)
    assert accuracy(t, p) == pytest.approx(np.trace(cm) / len(data))
    precision, recall = precision_recall(cm)
    for k in range(5):
        tp = sum(1 for a, b in data if a == b == k)
        n_pred = sum(1 for _, b in data if b == k)
        n_true = sum(1 for a, _ in data if a == k)
        assert precision[k] == pytest.approx(tp / n_pred if n_pred else 0.0)
        assert recall[k] == pytest.approx(tp / n_true if n_true else 0.0)


def test_format_confusion_matrix():
    cm = np.array([[1234, 2], [3, 45]])
    text = format_confusion_matrix(cm, labels=["cat", "dog"])
    lines = text.splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert lines[0].split() == ["true\\pred", "cat", "dog"]
    assert lines[1].split() == ["cat", "1234", "2"]
    assert lines[2].split() == ["dog", "3", "45"]
    assert format_confusion_matrix(cm).splitlines()[0].split()[1:] == ["0", "1"]


def test_classification_report():
    text = classification_report(Y_TRUE, Y_PRED)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line}
    assert rows["1"] == ["0.5000", "0.6667", "0.5714", "3"]
    assert rows["2"] == ["0.0000", "0.0000", "0.0000", "1"]
    assert rows["accuracy"] == ["0.5000", "6"]
    assert rows["macro"][1:] == ["0.3333", "0.3889", "0.3571", "6"]
    named = classification_report(Y_TRUE, Y_PRED, labels=["zero", "one", "two"])
    assert "zero" in named and "two" in named


@pytest.mark.parametrize(
    "call, err, pattern",
    [
        (lambda: accuracy([0, 1], [0]), ValueError, "2 samples.*1"),
        (lambda: accuracy([], []), ValueError, "no samples"),
        (lambda: accuracy([0.0, 1.0], [0, 1]), TypeError, "integers.*float"),
        (lambda: accuracy([[[0]]], [0]), ValueError, r"shape \(1, 1, 1\)"),
        (lambda: confusion_matrix([0, -1], [0, 0]), ValueError, "negative"),
        (lambda: confusion_matrix([0, 3], [0, 0], 3), ValueError, "label 3"),
        (lambda: confusion_matrix([0], [0], 2.0), TypeError, "num_classes"),
        (lambda: precision_recall(np.zeros((2, 3), int)), ValueError, "square"),
        (lambda: precision_recall(np.zeros((2, 2))), TypeError, "integer"),
        (lambda: precision_recall(-np.ones((2, 2), int)), ValueError, ">= 0"),
        (
            lambda: format_confusion_matrix(np.eye(2, dtype=int), ["a"]),
            ValueError,
            "2 labels",
        ),
    ],
)
def test_bad_inputs_raise(call, err, pattern):
    with pytest.raises(err, match=pattern):
        call()
