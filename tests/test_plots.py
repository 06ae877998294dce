"""Plots: every function returns a Figure a notebook shows inline and, given a path,
writes a real, sensibly sized PNG; bad input raises."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from tinynet import History, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(fig, path, min_wh=(250, 150), max_wh=(3000, 3000)):
    assert isinstance(fig, plots.InlineFigure)
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    h, w = img.shape[:2]
    shown = imread(io.BytesIO(fig._repr_png_()))  # what a notebook shows
    assert shown.shape == img.shape
    assert min_wh[0] <= w <= max_wh[0] and min_wh[1] <= h <= max_wh[1], (w, h)
    assert img[..., :3].std() > 0.02  # something was drawn
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    return img


def fake_digits(n, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(6, 18, 2)
        x[i, r : r + 10, c : c + 3] = 255
    return x


HISTORY = {
    "loss": [0.9, 0.5, 0.3, 0.25],
    "accuracy": [0.7, 0.85, 0.9, 0.92],
    "val_loss": [0.8, 0.55, 0.4, 0.45],
    "val_accuracy": [0.75, 0.84, 0.88, 0.87],
}


def test_history(tmp_path):
    path = tmp_path / "h.png"
    img = check_png(plots.plot_history(HISTORY, path), path)
    assert img.shape[1] > 1.8 * img.shape[0]  # two panels side by side


def test_history_object_loss_only_and_nested_folder(tmp_path):
    class History:
        history = {"loss": [1.0, 0.5]}

    path = tmp_path / "new" / "dir" / "h.png"
    img = check_png(plots.plot_history(History(), path), path)
    assert img.shape[1] < 1.6 * img.shape[0]  # one panel only


def test_existing_file_survives_a_failed_write(tmp_path, monkeypatch):
    path = tmp_path / "h.png"
    plots.plot_history(HISTORY, path)
    before = path.read_bytes()

    def broken(self, f, **kwargs):
        f.write(b"half a png")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.plot_history({"loss": [3.0, 2.0]}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png"]


def test_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 20, (10, 10)) + np.diag(rng.integers(800, 1100, 10))
    path = tmp_path / "cm.png"
    check_png(plots.plot_confusion_matrix(cm, path), path, min_wh=(400, 400))
    labels = ["cat", "dog", "bird"]
    path = tmp_path / "c3.png"
    check_png(plots.plot_confusion_matrix(np.eye(3, dtype=int) * 5, path, labels), path)


def test_misclassified(tmp_path):
    x = fake_digits(50)
    y = np.arange(50) % 10
    pred = y.copy()
    pred[::3] = (pred[::3] + 1) % 10  # 17 mistakes
    probs = np.full((50, 10), 0.05)
    probs[np.arange(50), pred] = 0.55
    path = tmp_path / "m.png"
    out = plots.plot_misclassified(x, y, pred, path, probabilities=probs)
    check_png(out, path, min_wh=(400, 300))
    path = tmp_path / "m4.png"
    check_png(plots.plot_misclassified(x / 255.0, y, pred, path, max_images=4), path)


def test_misclassified_titles_use_class_names(tmp_path):
    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    path = tmp_path / "named.png"
    out = plots.plot_misclassified(
        fake_digits(3), [0, 1, 2], [2, 1, 0], path, labels=names
    )
    check_png(out, path)
    titles = sorted(ax.get_title() for ax in out.axes)
    assert titles == [
        "Ankle boot\n\u2192 T-shirt/top",
        "T-shirt/top\n\u2192 Ankle boot",
    ]


def grid(fig):
    """(columns, rows) of a figure's subplot grid."""
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    return cols, rows


def test_misclassified_cells_follow_the_images_shape(tmp_path):
    """Images twice as wide as tall (a scan beside its network input) get cells
    twice as wide: fewer columns, and no empty band above and below each image."""
    y, pred = np.arange(36) % 10, (np.arange(36) + 1) % 10
    square = fake_digits(36)
    wide = np.concatenate([square, square], axis=2)
    path = tmp_path / "wide.png"
    figs = (
        plots.plot_misclassified(square, y, pred),
        plots.plot_misclassified(wide, y, pred, path),
    )
    check_png(figs[1], path)
    (sq_cols, sq_rows), (wide_cols, wide_rows) = grid(figs[0]), grid(figs[1])
    assert wide_cols < sq_cols and wide_rows > sq_rows
    for fig, aspect in zip(figs, (1, 2), strict=True):
        cols, rows = grid(fig)
        width, height = fig.get_size_inches()
        cell = (width / cols) / (height / rows)  # a cell's width over its height
        assert 0.6 * aspect < cell < 1.3 * aspect


def test_misclassified_none_wrong(tmp_path):
    x = fake_digits(3)
    path = tmp_path / "n.png"
    check_png(plots.plot_misclassified(x, [1, 2, 3], [1, 2, 3], path), path)


@pytest.mark.parametrize("k", [1, 4])
def test_prediction(tmp_path, k):
    rng = np.random.default_rng(k)
    original = rng.integers(0, 256, (60, 40 * k, 3), dtype=np.uint8)
    inputs = fake_digits(k).astype(np.float32) / 255.0
    probs = rng.dirichlet(np.ones(10), size=k)
    model_input = inputs[0] if k == 1 else list(inputs)
    path = tmp_path / f"p{k}.png"
    out = plots.plot_prediction(original, model_input, probs, path)
    check_png(out, path, min_wh=(500, 250))


def test_prediction_grey_original_and_digit_names(tmp_path):
    x = fake_digits(2)
    probs = np.full((2, 10), 0.1)
    path = tmp_path / "g.png"
    out = plots.plot_prediction(x[0], x[..., None], probs, path, digits=["?", "?"])
    check_png(out, path)


@pytest.mark.parametrize(
    "call, err, pattern",
    [
        (lambda p: plots.plot_history({}, p), TypeError, "non-empty"),
        (lambda p: plots.plot_history({"loss": []}, p), ValueError, "loss"),
        (lambda p: plots.plot_history({"lr": [0.1]}, p), ValueError, "'loss'"),
        (lambda p: plots.plot_history({"loss": ["a"]}, p), ValueError, "numbers"),
        (lambda p: plots.plot_history({"loss": 0.5}, p), ValueError, "numbers"),
        (
            lambda p: plots.plot_history(HISTORY, p.with_suffix(".jpg")),
            ValueError,
            ".png",
        ),
        (
            lambda p: plots.plot_confusion_matrix(np.ones((2, 3), int), p),
            ValueError,
            "square",
        ),
        (
            lambda p: plots.plot_confusion_matrix(np.ones((2, 2)), p),
            ValueError,
            "integer",
        ),
        (
            lambda p: plots.plot_confusion_matrix(np.ones((2, 2), int), p, ["a"]),
            ValueError,
            "2 labels",
        ),
        (
            lambda p: plots.plot_misclassified(np.zeros((3, 28)), [0], [0], p),
            ValueError,
            "images",
        ),
        (
            lambda p: plots.plot_misclassified(
                np.zeros((3, 28, 28)), [0, 1], [0, 1], p
            ),
            ValueError,
            r"\(3,\)",
        ),
        (
            lambda p: plots.plot_misclassified(
                np.zeros((2, 28, 28)), [0, 1], [1, 0], p, max_images=0
            ),
            ValueError,
            "max_images",
        ),
        (
            lambda p: plots.plot_misclassified(
                np.zeros((2, 28, 28)), [0, 2], [1, 0], p, labels=["a", "b"]
            ),
            ValueError,
            "every label up to 2, got 2 labels",
        ),
        (
            lambda p: plots.plot_prediction(
                np.zeros((5, 5)), np.zeros((2, 28, 28)), np.full((3, 10), 0.1), p
            ),
            ValueError,
            r"\(2, C\)",
        ),
        (
            lambda p: plots.plot_prediction(
                np.zeros((5, 5)), np.zeros((28, 28)), np.full(10, 2.0), p
            ),
            ValueError,
            r"\[0, 1\]",
        ),
        (
            lambda p: plots.plot_prediction(
                np.zeros((5, 5, 2)), np.zeros((28, 28)), np.full(10, 0.1), p
            ),
            ValueError,
            "original_image",
        ),
        (
            lambda p: plots.plot_prediction(
                np.zeros((5, 5)), np.zeros((0, 28, 28)), np.zeros((0, 10)), p
            ),
            ValueError,
            "no image",
        ),
    ],
)
def test_bad_inputs_raise(tmp_path, call, err, pattern):
    path = tmp_path / "x.png"
    with pytest.raises(err, match=pattern):
        call(path)
    assert not path.exists()


def test_without_a_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plots.plot_history(HISTORY)
    assert fig._repr_png_()[:8] == PNG_MAGIC
    assert list(tmp_path.iterdir()) == []


def test_history_plots_itself(tmp_path):
    history = History()
    for epoch, (loss, acc) in enumerate([(0.9, 0.6), (0.4, 0.8), (0.3, 0.9)]):
        history.append(epoch, {"loss": loss, "accuracy": acc, "lr": 0.01})
    path = tmp_path / "h.png"
    fig = history.plot(path)
    check_png(fig, path)
    lines = [ax.get_lines()[-1].get_ydata().tolist() for ax in fig.axes]
    assert lines == [history["loss"], history["accuracy"]]
    with pytest.raises(ValueError, match="no epoch has finished"):
        History().plot()


def test_reliability(tmp_path):
    from tinynet.calibration import reliability_diagram

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(10, 0.3), size=500)
    labels = rng.integers(0, 10, 500)
    diagrams = {"random": reliability_diagram(probs, labels)}
    path = tmp_path / "reliability.png"
    check_png(plots.plot_reliability(diagrams, path), path, min_wh=(400, 400))
    path = tmp_path / "with_threshold.png"
    check_png(plots.plot_reliability(diagrams, path, threshold=0.9), path)
    with pytest.raises(ValueError, match="no diagrams"):
        plots.plot_reliability({}, tmp_path / "none.png")
