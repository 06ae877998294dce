"""Keras or PyTorch side of ``speedrun.py``: one whole run, timed from outside.

Reads the job the orchestrator wrote (architecture, initial weights, optimizer,
schedule, batch size, epochs, validation split), loads MNIST, trains with a
validation pass after each epoch, evaluates the test set, saves the model to
``--out`` and writes its figures to ``--result``. It imports its framework and
NumPy, never tinynet, so the process's wall time is the framework's own::

    python benchmarks/_speedrun_worker.py --framework pytorch --job JOB.json \\
        --seed 0 --threads 2 --out model.pt --result result.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# Run as a script: its own folder is on sys.path, so the sibling modules import.
import _speedrun_common as sc


def run_keras(job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    # Safe mode: the file is tinynet's translation (``to_keras``), weights included.
    model = keras.saving.load_model(job["keras_model"], compile=False, safe_mode=True)
    x, y, x_test, y_test = sc.load_mnist(job["data"])
    shape = (-1, *model.input_shape[1:])
    x, x_test = x.reshape(shape), x_test.reshape(shape)
    train, val = sc.validation_split(len(x), job["validation_split"], args.seed)

    config = job["optimizer"]["config"]
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=keras_schedule(keras, config["learning_rate"]),
            beta_1=config["beta_1"],
            beta_2=config["beta_2"],
            epsilon=config["epsilon"],
            weight_decay=config["weight_decay"] or None,
            global_clipnorm=config["clipnorm"],
        ),
        # Categorical on one-hot labels: the sparse loss has no label smoothing.
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=not job["softmax_output"],
            label_smoothing=job["label_smoothing"],
        ),
        metrics=["categorical_accuracy"],
    )
    one_hot = np.eye(10, dtype=np.float32)
    history = model.fit(
        x[train],
        one_hot[y[train]],
        batch_size=job["batch_size"],
        epochs=job["epochs"],
        validation_data=(x[val], one_hot[y[val]]) if len(val) else None,
        shuffle=True,
        verbose=0,
    )
    test_accuracy = model.evaluate(x_test, one_hot[y_test], batch_size=1000, verbose=0)[
        1
    ]
    model.save(args.out)
    return {
        "test_accuracy": float(test_accuracy),
        "val_accuracy": [
            float(v) for v in history.history.get("val_categorical_accuracy", [])
        ],
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    }


def keras_schedule(keras: Any, rate: float | dict[str, Any]) -> Any:
    """Keras' CosineDecay with warm-up for tinynet's (the same formula), or a number."""
    if not isinstance(rate, dict):
        return rate
    sc.learning_rate(0, rate)  # refuses what does not translate
    c = rate["config"]
    if not c["warmup_steps"]:
        return keras.optimizers.schedules.CosineDecay(
            c["initial_learning_rate"], c["decay_steps"], alpha=c["alpha"]
        )
    return keras.optimizers.schedules.CosineDecay(
        c["warmup_from"],
        c["decay_steps"],
        alpha=c["alpha"],
        warmup_target=c["initial_learning_rate"],
        warmup_steps=c["warmup_steps"],
    )


def run_pytorch(job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import _torch_models as tm
    import _torch_train as tt
    import numpy as np
    import torch

    tt.pin_threads(args.threads)
    torch.manual_seed(args.seed)
    net = tm.build_torch(job["torch_spec"])
    with np.load(job["torch_weights"]) as weights:
        tm.load_weights(net, dict(weights))
    net, _ = tm.logits_model(net)
    x, y, x_test, y_test = sc.load_mnist(job["data"])
    shape = (-1, *job["input_shape"])
    x, x_test = tm.nchw(x.reshape(shape)), tm.nchw(x_test.reshape(shape))
    train, val = sc.validation_split(len(x), job["validation_split"], args.seed)
    x_train, y_train = tt.tensors(x[train], y[train])
    x_val, y_val = tt.tensors(x[val], y[val])

    config = job["optimizer"]["config"]
    optimizer_class = torch.optim.AdamW if config["weight_decay"] else torch.optim.Adam
    optimizer = optimizer_class(
        net.parameters(),
        lr=sc.learning_rate(0, config["learning_rate"]),
        betas=(config["beta_1"], config["beta_2"]),
        eps=config["epsilon"],
        weight_decay=config["weight_decay"],
    )
    if config["clipnorm"] is not None:
        raise ValueError("speedrun: gradient clipping is not translated to PyTorch")
    generator = torch.Generator().manual_seed(args.seed)
    step, val_accuracy = 0, []
    for _ in range(job["epochs"]):
        epoch = tt.train_epoch(
            net,
            optimizer,
            x_train,
            y_train,
            batch_size=job["batch_size"],
            generator=generator,
            learning_rate=lambda t: sc.learning_rate(t, config["learning_rate"]),
            label_smoothing=job["label_smoothing"],
            step=step,
        )
        step = epoch["step"]
        if len(val):
            val_accuracy.append(tt.accuracy(net, x_val, y_val, 1000))
    test_accuracy = tt.accuracy(net, *tt.tensors(x_test, y_test), 1000)
    torch.save(net.state_dict(), args.out)
    return {
        "test_accuracy": test_accuracy,
        "val_accuracy": val_accuracy,
        "versions": {"torch": torch.__version__},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=["keras", "pytorch"], required=True)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the trained model")
    parser.add_argument("--result", type=Path, required=True, help="JSON figures")
    args = parser.parse_args()

    job = sc.read_job(args.job)
    run = run_keras if args.framework == "keras" else run_pytorch
    args.result.write_text(json.dumps(run(job, args), indent=2))


if __name__ == "__main__":
    main()
