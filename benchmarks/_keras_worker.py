"""Keras side of ``compare.py``: train, time and measure one model, print JSON.

Run by the orchestrator in its own process, with the thread variables already set
in its environment (see ``_compare_common.thread_env``). Also runs the parity check
(``--parity``), which needs Keras and tinynet in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# Run as a script: its own folder is on sys.path, so the sibling modules import.
import _common
import _compare_common as cc


def _pin_tensorflow(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_parity(args: argparse.Namespace) -> dict:
    return {
        "parity": [
            cc.parity(kind, dtype, batch=args.parity_batch)
            for kind in args.models.split(",")
            for dtype in ("float32", "float64")
        ]
    }


def run_benchmark(args: argparse.Namespace) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    x, y, xt, yt = cc.load_images(args.model, args.limit, args.test_limit, args.dataset)
    keras.utils.set_random_seed(args.seed)
    model = cc.keras_model(args.model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    timer = EpochTimer()
    history = model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer],
    )
    result = _common.epoch_summary(timer.times, len(x))
    result["train_loss"] = [float(v) for v in history.history["loss"]]
    result["train_accuracy"] = [float(v) for v in history.history["accuracy"]]
    result["test_accuracy"] = float(
        model.evaluate(xt, yt, batch_size=args.predict_batch, verbose=0)[1]
    )

    one = xt[:1]
    result |= cc.inference_timings(
        lambda: model.predict(one, verbose=0),
        lambda: np.asarray(model(one, training=False)),
        lambda: model.predict(xt, batch_size=args.predict_batch, verbose=0),
        len(xt),
        latency_repeat=args.latency_repeat,
    )
    result["versions"] = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
    result["settings"] = {
        "jit_compile": bool(getattr(model, "jit_compile", False)),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    cc.add_worker_args(parser)
    parser.add_argument("--models", default="mlp,cnn", help="for --parity")
    parser.add_argument("--parity", action="store_true")
    parser.add_argument("--parity-batch", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    _pin_tensorflow(args.threads)
    result = run_parity(args) if args.parity else run_benchmark(args)
    result["framework"] = "keras"
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
