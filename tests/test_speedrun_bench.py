"""``benchmarks/speedrun.py`` gives Keras and PyTorch tinynet's recipe, translated:
the same initial weights (outputs compared), the same learning-rate schedule (step by
step), and each rival's worker runs end to end on a few hundred images. tinynet's
own run needs ``zoo.MODELS["speedrun"]`` and is skipped until it exists. No timing
is checked. Each test skips when its framework is not installed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from bench_helpers import load_benchmark

from tinynet import optimizers, zoo
from tinynet.gradcheck import rel_error

speedrun = load_benchmark("speedrun")
sc = load_benchmark("_speedrun_common")

SCHEDULE = optimizers.CosineDecay(
    1e-2, decay_steps=20, alpha=0.1, warmup_steps=5, warmup_from=1e-4
)


def need_keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pytest.importorskip("tensorflow", reason='pip install -e ".[bench]"')
    return pytest.importorskip("keras", reason='pip install -e ".[bench]"')


def test_plain_schedule_is_tinynets():
    config = optimizers.to_config(optimizers.Adam(SCHEDULE))["config"]["learning_rate"]
    for step in range(30):
        assert sc.learning_rate(step, config) == pytest.approx(
            SCHEDULE(step), rel=1e-12
        )
    assert sc.learning_rate(7, 3e-4) == 3e-4


def test_keras_schedule_is_tinynets():
    keras = need_keras()
    worker = load_benchmark("_speedrun_worker")
    config = optimizers.to_config(optimizers.Adam(SCHEDULE))["config"]["learning_rate"]
    schedule = worker.keras_schedule(keras, config)
    for step in range(30):
        assert float(schedule(step)) == pytest.approx(SCHEDULE(step), rel=1e-6)


def test_validation_split_holds_out_what_fit_holds_out():
    train, val = sc.validation_split(60000, 5000 / 60000, seed=3)
    assert (len(train), len(val)) == (55000, 5000)
    assert not np.intersect1d(train, val).size


def test_training_flop_counts_each_product_once_forward_and_as_trained():
    common = load_benchmark("_common")
    # MLP: forward F = 2 (784*512 + 512*512 + 512*10); backward dW of every layer,
    # dx of all but the first: 3F - 2*784*512 (bench_mlp's docstring).
    forward = 2 * (784 * 512 + 512 * 512 + 512 * 10)
    mlp = zoo.mnist_mlp()
    assert common.training_flop(mlp, 1) == 3 * forward - 2 * 784 * 512 == 3_209_216
    # Speedrun net: conv 5x5 1->8 on 28x28 (24x24 out, first trained: no dx),
    # conv 3x3 8->24 on 12x12 (10x10 out), dense 600->128, dense 128->10.
    conv1 = 2 * 24 * 24 * 5 * 5 * 1 * 8
    rest = 2 * (10 * 10 * 3 * 3 * 8 * 24 + 600 * 128 + 128 * 10)
    per_image = 2 * conv1 + 3 * rest
    assert common.training_flop(speedrun.RECIPE.model(0), 10) == 10 * per_image


def job_for(tmp_path: Path, frameworks: list[str]) -> dict:
    data = tmp_path / "unused.npz"
    path = speedrun.write_job(tmp_path, speedrun.RECIPE, 5, 1000, data, frameworks)
    return json.loads(path.read_text())


def test_pytorch_starts_from_tinynets_initial_weights(tmp_path):
    torch = pytest.importorskip("torch", reason='pip install -e ".[torch]"')
    tm = load_benchmark("_torch_models")
    job = job_for(tmp_path, ["pytorch"])
    net = tm.build_torch(job["torch_spec"])
    with np.load(job["torch_weights"]) as weights:
        tm.load_weights(net, dict(weights))
    model = speedrun.RECIPE.model(5)
    x = np.random.default_rng(0).random((4, *model.input_shape), dtype=np.float32)
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(tm.nchw(x))).numpy()
    assert rel_error(got, model.predict(x), per="array") <= 1e-5


def test_keras_starts_from_tinynets_initial_weights(tmp_path):
    keras = need_keras()
    job = job_for(tmp_path, ["keras"])
    kmodel = keras.saving.load_model(job["keras_model"], safe_mode=True)
    model = speedrun.RECIPE.model(5)
    x = np.random.default_rng(0).random((4, *model.input_shape), dtype=np.float32)
    got = np.asarray(kmodel(x, training=False))
    assert rel_error(got, model.predict(x), per="array") <= 1e-5
    steps = speedrun.steps_per_epoch(speedrun.RECIPE, 1000)
    assert steps == -(
        -(1000 - round(1000 * speedrun.RECIPE.validation_split))
        // speedrun.RECIPE.batch_size
    )
    assert job["optimizer"] == optimizers.to_config(speedrun.RECIPE.optimizer(steps))


def run_speedrun(framework: str, mnist_dir: Path, tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.setenv("TINYNET_DATA", str(mnist_dir.parent))
    out = tmp_path / "speedrun.json"
    report = speedrun.main(
        [
            "--frameworks", framework, "--seeds", "1", "--limit", "600",
            "--threads", "1", "--no-warmup", "--no-plot", "--json", str(out),
        ]
    )  # fmt: skip
    assert json.loads(out.read_text())["summary"].keys() == {framework}
    (run,) = report["runs"][framework]
    assert run["seed"] == 0 and run["wall_s"] > 0
    assert 0.0 <= run["test_accuracy"] <= 1.0
    assert report["meta"]["train_images"] == 600
    rate = report["arithmetic"]
    flop = load_benchmark("_common").training_flop(speedrun.RECIPE.model(0), 600)
    assert rate["training_gflop"] == pytest.approx(flop / 1e9)
    assert rate["whole_process_gflops"][framework] == pytest.approx(
        flop / run["wall_s"] / 1e9
    )
    assert rate["matmul_peak_gflops"] > 0
    return report


@pytest.mark.slow
def test_pytorch_worker_runs_end_to_end(real_mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("torch", reason='pip install -e ".[torch]"')
    report = run_speedrun("pytorch", real_mnist_dir, tmp_path, monkeypatch)
    assert report["meta"]["versions"]["torch"].startswith("2.")


@pytest.mark.slow
def test_keras_worker_runs_end_to_end(real_mnist_dir, tmp_path, monkeypatch):
    need_keras()
    report = run_speedrun("keras", real_mnist_dir, tmp_path, monkeypatch)
    assert "keras" in report["meta"]["versions"]


@pytest.mark.slow
@pytest.mark.skipif(
    "speedrun" not in zoo.MODELS, reason="tinynet.zoo has no 'speedrun' model yet"
)
def test_tinynet_run_end_to_end(real_mnist_dir, tmp_path, monkeypatch):
    report = run_speedrun("tinynet", real_mnist_dir, tmp_path, monkeypatch)
    assert report["targets"]  # tinynet's own targets are always reported
