"""Shared pieces of the tinynet-Keras-PyTorch comparison: data, thread pinning, timing,
the Keras twins of tinynet's zoo models, weight transfer and the parity check.

Imported by ``compare.py``, its three worker scripts and
``tests/test_keras_parity.py``. TensorFlow and Keras are imported lazily, inside the
functions that need them, so the orchestrator and tinynet's worker never load them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinynet.datasets import BY_NAME
from tinynet.gradcheck import rel_error

# The tests load this file by path, without the benchmarks folder on sys.path.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import machine_info  # noqa: E402, F401  (the workers' JSON records)

KINDS = ("mlp", "cnn")

# Every knob that sizes a thread pool in either framework. Set in the environment of
# each worker before it starts, so NumPy's BLAS, Numba and TensorFlow all read them.
THREAD_VARS = _common.THREAD_VARS + ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def thread_env(threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) pinned to ``threads`` threads."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    return env


# -------------------------------------------------------------------------- data
DATASETS = tuple(BY_NAME)


def load_images(
    kind: str,
    limit: int | None = None,
    test_limit: int | None = None,
    dataset: str = "mnist",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST scaled to [0, 1] float32: ``x_train, y_train, x_test,
    y_test``.

    ``x`` is (N, 28, 28) for the MLP and (N, 28, 28, 1) for the CNN; labels are int64.
    ``limit`` keeps the first ``limit`` training images (quick runs).
    """
    if dataset not in BY_NAME:
        raise ValueError(
            f"load_images: dataset must be one of {DATASETS}, got {dataset!r}"
        )
    (x_train, y_train), (x_test, y_test) = BY_NAME[dataset].load_data()
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]

    def prep(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / np.float32(255.0)
        return x[..., None] if kind == "cnn" else x

    return (
        prep(x_train),
        y_train.astype(np.int64),
        prep(x_test),
        y_test.astype(np.int64),
    )


# ------------------------------------------------------------------------ timing
def inference_timings(
    predict_one: Callable[[], Any],
    call_one: Callable[[], Any],
    predict_all: Callable[[], Any],
    n_test: int,
    *,
    latency_repeat: int,
) -> dict[str, float]:
    """Median latency of one-image ``predict`` and direct call (ms), batch inference
    over the ``n_test`` test images (samples/s) and this process's peak RSS (MiB).

    Latencies: up to ``latency_repeat`` calls after 3 warm-up calls, within 20 s.
    """

    def median_ms(fn: Callable[[], Any]) -> float:
        t = _common.time_call(fn, repeat=latency_repeat, warmup=3, max_seconds=20.0)
        return 1e3 * t["median"]

    latency_predict_ms = median_ms(predict_one)
    latency_call_ms = median_ms(call_one)
    batch = _common.time_call(predict_all, repeat=3, warmup=1, max_seconds=20.0)
    return {
        "latency_predict_ms": latency_predict_ms,
        "latency_call_ms": latency_call_ms,
        "inference_samples_per_s": n_test / batch["median"],
        "peak_rss_mb": _common.peak_rss_mb(),
    }


def add_worker_args(parser: argparse.ArgumentParser) -> None:
    """The options both workers take (``compare.benchmark_args`` passes them)."""
    parser.add_argument("--model", choices=KINDS, default="mlp")
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--predict-batch", type=int, default=256)
    parser.add_argument("--latency-repeat", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)


# ---------------------------------------------------------------- Keras models
def keras_model(kind: str, dtype: str = "float32") -> Any:
    """The Keras twin of ``tinynet.zoo.mnist_mlp`` / ``mnist_classic_cnn``.

    Seed Keras first (``keras.utils.set_random_seed``) for reproducible weights.
    """
    import keras
    from keras import layers

    if kind == "mlp":
        stack = [
            keras.Input((28, 28), dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dense(512, activation="relu", dtype=dtype),
            layers.Dropout(0.2, dtype=dtype),
            layers.Dense(512, activation="relu", dtype=dtype),
            layers.Dropout(0.2, dtype=dtype),
            layers.Dense(10, activation="softmax", dtype=dtype),
        ]
    elif kind == "cnn":
        stack = [
            keras.Input((28, 28, 1), dtype=dtype),
            layers.Conv2D(32, 3, activation="relu", dtype=dtype),
            layers.MaxPooling2D(2, dtype=dtype),
            layers.Conv2D(64, 3, activation="relu", dtype=dtype),
            layers.MaxPooling2D(2, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.5, dtype=dtype),
            layers.Dense(10, activation="softmax", dtype=dtype),
        ]
    else:
        raise ValueError(f"keras_model: kind must be one of {KINDS}, got {kind!r}")
    return keras.Sequential(stack, name=f"keras_{kind}")


def tinynet_model(kind: str, seed: int = 0, dtype: str = "float32") -> Any:
    """``tinynet.zoo.mnist_mlp`` or ``mnist_classic_cnn``."""
    from tinynet import zoo

    if kind == "mlp":
        return zoo.mnist_mlp(seed=seed, dtype=dtype)
    if kind == "cnn":
        return zoo.mnist_classic_cnn(seed=seed, dtype=dtype)
    raise ValueError(f"tinynet_model: kind must be one of {KINDS}, got {kind!r}")


def keras_weights_for_tinynet(kmodel: Any, tmodel: Any) -> dict[str, np.ndarray]:
    """Keras' weights renamed to tinynet's parameter keys, with no reshaping at all
    (``tinynet.interop.keras_weights``, which ``from_keras`` uses too).

    Both libraries store Dense kernels as (in, out) and Conv2D kernels as
    (kh, kw, cin, cout), and both flatten NHWC maps in (h, w, c) order, so each
    Keras kernel/bias pair maps one-to-one onto the next tinynet layer with
    parameters. Raises ValueError naming the first mismatch.
    """
    from tinynet.interop import keras_weights

    return keras_weights(kmodel, tmodel)


# ------------------------------------------------------------------------ parity
def parity(
    kind: str, dtype: str = "float32", batch: int = 64, seed: int = 0
) -> dict[str, Any]:
    """Copy a fresh Keras model's weights into tinynet; compare outputs and gradients.

    Both see the same ``batch`` MNIST-like inputs (uniform [0, 1) pixels, fixed
    labels). Keras runs with ``training=False``; tinynet's Dropout layers are set to
    rate 0 so its training path has no randomness either. Keras gradients come from
    ``tf.GradientTape`` on ``SparseCategoricalCrossentropy`` (batch mean) of the
    softmax outputs; tinynet's from ``train_step``, the fused softmax-cross-entropy
    path ``fit`` uses, with ``SGD(learning_rate=0.0)`` so the step changes nothing.

    Returns ``{"output": err, "loss": err, "grads": {"0.W": err, ...},
    "max_grad": err}`` with errors from ``tinynet.gradcheck.rel_error(...,
    per="array")`` (Keras as reference).
    """
    import keras
    import tensorflow as tf

    from tinynet.layers.dropout import Dropout
    from tinynet.optimizers import SGD

    keras.utils.set_random_seed(seed)
    kmodel = keras_model(kind, dtype)
    tmodel = tinynet_model(kind, seed=seed, dtype=dtype)
    weights = keras_weights_for_tinynet(kmodel, tmodel)
    tmodel.set_weights(weights)

    rng = np.random.default_rng(seed)
    shape = (batch, 28, 28) if kind == "mlp" else (batch, 28, 28, 1)
    x = rng.random(shape).astype(dtype)
    y = rng.integers(0, 10, size=batch).astype(np.int64)

    # Keras: outputs, loss and d loss / d weight, inference mode (no dropout).
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        probs_k = kmodel(xt, training=False)
        # dtype: a Keras loss otherwise computes in floatx (float32), whatever
        # the dtype of its inputs.
        loss_fn = keras.losses.SparseCategoricalCrossentropy(dtype=dtype)
        loss_k = loss_fn(tf.constant(y), probs_k)
    grads_k = tape.gradient(loss_k, kmodel.trainable_weights)
    k_layers = [layer for layer in kmodel.layers if layer.weights]

    # tinynet: inference outputs, then one zero-rate training step for gradients.
    probs_t = tmodel.predict(x, batch_size=batch)
    for layer in tmodel.layers:
        if isinstance(layer, Dropout):
            layer.rate = 0.0
    tmodel.compile(optimizer=SGD(learning_rate=0.0), loss="cross_entropy")
    loss_t, _ = tmodel.train_step(x, y)
    grads_t = tmodel.gradients()
    moved = max(
        rel_error(tmodel.parameters()[k], v, per="array") for k, v in weights.items()
    )

    # Pair each tinynet gradient with Keras' by variable identity, not position.
    k_by_id = {id(v): g for v, g in zip(kmodel.trainable_weights, grads_k, strict=True)}
    t_layers = [i for i, layer in enumerate(tmodel.layers) if layer.params]
    grad_errors: dict[str, float] = {}
    for klayer, i in zip(k_layers, t_layers, strict=True):
        kernel_var, bias_var = klayer.weights
        for key, var in (("W", kernel_var), ("b", bias_var)):
            grad_errors[f"{i}.{key}"] = rel_error(
                grads_t[f"{i}.{key}"], np.asarray(k_by_id[id(var)]), per="array"
            )
    return {
        "kind": kind,
        "dtype": dtype,
        "batch": batch,
        "output": rel_error(probs_t, np.asarray(probs_k), per="array"),
        "loss": rel_error(loss_t, float(loss_k), per="array"),
        "grads": grad_errors,
        "max_grad": max(grad_errors.values()),
        "params_moved_by_zero_lr_step": moved,
        "output_dtype": str(probs_t.dtype),
    }


# --------------------------------------------------------------------- profiling
def layer_breakdown(
    model: Any, x: np.ndarray, y: np.ndarray, *, steps: int = 40, cpu_time: bool = False
) -> dict[str, float]:
    """Median milliseconds of each piece of a training step, step by step.

    The pieces are the steps of the model's plan (``model.plan``, the composite
    steps included), timed by ``Plan.loss_and_gradients`` itself, then the
    optimizer step. The model must be compiled. ``cpu_time=True`` measures this
    process's CPU time instead of wall time: with one thread it is immune to other
    processes on the cores (with more threads it adds up the threads' times).
    """
    clock = time.process_time if cpu_time else time.perf_counter
    times: dict[str, list[float]] = {}
    for _ in range(steps + 3):
        start = clock()
        model.plan.loss_and_gradients(x, y, timings=times, clock=clock)
        t0 = clock()
        with model.plan.threads():
            model.optimizer.step(model.parameters(), model.gradients())
        end = clock()
        times.setdefault("optimizer step", []).append(end - t0)
        times.setdefault("whole step", []).append(end - start)
    # The first three steps warm up caches and compile kernels.
    return {k: 1e3 * statistics.median(v[3:]) for k, v in times.items()}
