"""Training-step times, batch predict throughput and one-image latency of the two
benchmark models, as JSON, through the public API alone.

Only what every tinynet checkout has is used (``tinynet.zoo``, ``compile``,
``train_step``, ``predict``), so one script times two versions side by side::

    PYTHONPATH=/path/to/old python benchmarks/step_times.py --out old.json
    PYTHONPATH=/path/to/new python benchmarks/step_times.py --out new.json

On a shared machine only ratios from runs alternated close in time mean anything;
``--label`` tags a record, ``--repeat`` runs the whole measurement again in the
same process; ``--threads 1 --clock cpu`` times this process's CPU time, which
other processes on a busy machine barely disturb. Inputs are uniform random pixels
with random labels (fixed seed): the shapes, not the values, set the cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_ms(fn: Any, repeat: int, warmup: int, clock: Any) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return 1e3 * statistics.median(times)


def measure(kind: str, args: argparse.Namespace) -> dict[str, float]:
    import numpy as np

    from tinynet import zoo

    build = {
        "mlp": zoo.mnist_mlp,
        "classic_cnn": zoo.mnist_classic_cnn,
        "cnn": zoo.mnist_cnn,  # the shipped model: Conv -> BatchNorm -> ReLU blocks
    }[kind]
    model = build(seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    rng = np.random.default_rng(0)
    shape = model.input_shape
    x = rng.random((args.predict_images, *shape), dtype=np.float32)
    y = rng.integers(0, 10, args.predict_images)
    batches = [
        (x[i : i + args.batch], y[i : i + args.batch])
        for i in range(0, args.predict_images - args.batch + 1, args.batch)
    ]
    count = [0]

    def train_step() -> None:
        xb, yb = batches[count[0] % len(batches)]
        count[0] += 1
        model.train_step(xb, yb)

    clock = CLOCKS[args.clock]
    predict_ms = median_ms(lambda: model.predict(x, batch_size=256), 5, 1, clock)
    return {
        "train_step_ms": median_ms(train_step, args.steps, 5, clock),
        "predict_images_per_s": args.predict_images / (predict_ms / 1e3),
        "latency_ms": median_ms(lambda: model.predict(x[:1]), args.latency, 10, clock),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100, help="timed train steps")
    parser.add_argument("--predict-images", type=int, default=2048)
    parser.add_argument("--latency", type=int, default=200, help="timed 1-image calls")
    parser.add_argument(
        "--models", nargs="+", choices=["classic_cnn", "mlp", "cnn"],
        default=["classic_cnn", "mlp"],
    )  # fmt: skip
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)

    import tinynet

    record: dict[str, Any] = {
        "label": args.label,
        "tinynet": str(Path(tinynet.__file__).resolve().parent),
        "machine": _common.machine_info(),
        "batch": args.batch,
        "clock": args.clock,
        "runs": [
            {kind: measure(kind, args) for kind in args.models}
            for _ in range(args.repeat)
        ],
    }
    text = json.dumps(record, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
