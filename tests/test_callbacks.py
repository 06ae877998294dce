"""EarlyStopping, ModelCheckpoint, LearningRateScheduler and LivePlot."""

import numpy as np
import pytest
from model_helpers import mlp, spirals

import tinynet
from tinynet.callbacks import (
    EarlyStopping,
    LearningRateScheduler,
    LivePlot,
    ModelCheckpoint,
)


class FakeModel:
    """Just enough of a model for driving a callback by hand."""

    def __init__(self):
        self.stop_training = False
        self.w = 0.0

    def get_weights(self):
        return {"w": np.array(self.w)}

    def set_weights(self, weights):
        self.w = float(weights["w"])


def drive(callback, values, monitor="val_loss"):
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.w = float(epoch)  # the "weights" after this epoch
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epoch


def test_early_stopping_waits_patience_epochs_then_stops():
    model, last = drive(EarlyStopping(patience=2), [1.0, 0.5, 0.6, 0.7, 0.8, 0.1])
    assert model.stop_training and last == 3


def test_early_stopping_restores_best_weights_when_it_stops():
    model, _ = drive(
        EarlyStopping(patience=1, restore_best_weights=True), [3, 1, 2, 2, 2]
    )
    assert model.w == 1.0


def test_early_stopping_restores_best_weights_when_training_runs_out():
    es = EarlyStopping(patience=10, restore_best_weights=True)
    model, last = drive(es, [3.0, 1.0, 2.0])
    assert not model.stop_training and last == 2
    assert model.w == 1.0 and es.best_epoch == 1


def test_early_stopping_mode_and_min_delta():
    model, last = drive(
        EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.01),
        [0.90, 0.905, 0.95],
        monitor="val_accuracy",
    )
    assert model.stop_training and last == 1  # +0.005 is below min_delta


def test_monitoring_a_missing_key_says_what_is_available():
    with pytest.raises(ValueError, match="val_loss"):
        drive(EarlyStopping(), [1.0], monitor="loss")
    with pytest.raises(ValueError):
        EarlyStopping(mode="sideways")


def test_early_stopping_in_fit_records_the_reason():
    x, y = spirals(30)
    model = mlp()
    model.compile()
    history = model.fit(
        x,
        y,
        epochs=50,
        validation_data=(x, y),
        verbose=0,
        callbacks=[EarlyStopping(monitor="val_accuracy", patience=0, min_delta=1.0)],
    )
    assert len(history.epoch) == 2
    assert "early stopping" in history.stop_reason


def test_checkpoint_best_only_keeps_the_best_epoch_and_matches_restored_weights(
    tmp_path,
):
    x, y = spirals(40)
    model = mlp(seed=2)
    model.compile(optimizer=tinynet.optimizers.Adam(5e-2))
    path = tmp_path / "best.npz"
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    es = EarlyStopping(monitor="val_loss", patience=100, restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=8,
        batch_size=16,
        validation_split=0.3,
        seed=1,
        verbose=0,
        callbacks=[ckpt, es],
    )
    improvements = sum(
        v < min(history["val_loss"][:i], default=np.inf)
        for i, v in enumerate(history["val_loss"])
    )
    assert len(ckpt.saved) == improvements
    best = tinynet.load_model(path)
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(best.get_weights()[key], value)
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]  # no temp files left


def test_checkpoint_every_epoch_with_formatted_names(tmp_path):
    x, y = spirals(20)
    model = mlp()
    model.compile()
    ckpt = ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", save_weights_only=True)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m-01.npz",
        "m-02.npz",
        "m-03.npz",
    ]


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    x, y = spirals(20)
    model = mlp()
    model.compile(optimizer=tinynet.optimizers.SGD(learning_rate=0.1))
    history = model.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
    )
    np.testing.assert_allclose(history["lr"], [0.1, 0.05, 0.1 / 3])
    with pytest.raises(TypeError):
        LearningRateScheduler(0.1)


def test_live_plot_writes_the_history_to_its_file(tmp_path):
    x, y = spirals(20)
    model = mlp()
    model.compile(metrics=["accuracy"])
    live = LivePlot(tmp_path / "curves.png", max_overhead=1e-9)
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=8,
        validation_data=(x, y),
        verbose=0,
        callbacks=[live],
    )
    # The first epoch writes; with a budget of ~0 the next ones wait for the end.
    assert live.writes == 2
    assert (tmp_path / "curves.png").stat().st_size > 0
    loss_axes, acc_axes = live.figure.axes
    plotted = {line.get_label().split(" ")[0] for line in loss_axes.get_lines()}
    assert {"loss", "val_loss"} <= plotted
    assert acc_axes.get_lines()[-1].get_ydata().tolist() == history["val_accuracy"]


def test_live_plot_outside_a_notebook_needs_a_path():
    x, y = spirals(20)
    model = mlp()
    model.compile()
    with pytest.raises(ValueError, match="give it a path"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LivePlot()])
    with pytest.raises(ValueError, match="max_overhead"):
        LivePlot("c.png", max_overhead=0)
