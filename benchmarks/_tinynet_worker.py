"""tinynet side of ``compare.py``: train, time and measure one model, write JSON.

Run by the orchestrator in its own process with the thread variables set (see
``_compare_common.thread_env``). ``--profile PATH`` wraps training in cProfile and
writes the stats to PATH (read with ``python -m pstats PATH``); ``--breakdown``
prints the median time of each step's forward and backward (a fused Conv2D +
MaxPool2D is one step), the loss and the optimizer step instead, e.g.::

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/_tinynet_worker.py \
        --model cnn --threads 1 --breakdown --out /tmp/breakdown.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Run as a script: its own folder is on sys.path, so the sibling modules import.
import _common
import _compare_common as cc


def run_benchmark(args: argparse.Namespace) -> dict:
    import numba
    import numpy as np

    import tinynet
    from tinynet.optimizers import Adam

    x, y, xt, yt = cc.load_images(args.model, args.limit, args.test_limit, args.dataset)
    model = cc.tinynet_model(args.model, seed=args.seed)
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="cross_entropy")

    timer = _common.epoch_timer()

    def train():
        return model.fit(
            x,
            y,
            batch_size=args.batch_size,
            epochs=args.epochs,
            shuffle=True,
            verbose=0,
            seed=args.seed,
            callbacks=[timer],
        )

    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        history = profiler.runcall(train)
        profiler.dump_stats(str(args.profile))
    else:
        history = train()
    result = _common.epoch_summary(timer.times, len(x))
    result["train_loss"] = list(history["loss"])
    result["train_accuracy"] = list(history["accuracy"])
    result["test_accuracy"] = float(
        model.evaluate(xt, yt, batch_size=args.predict_batch)["accuracy"]
    )

    one = xt[:1]
    result |= cc.inference_timings(
        lambda: model.predict(one),
        lambda: model(one),
        lambda: model.predict(xt, batch_size=args.predict_batch),
        len(xt),
        latency_repeat=args.latency_repeat,
    )
    result["versions"] = {
        "tinynet": tinynet.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    result["settings"] = {"numba_threads": numba.get_num_threads()}
    return result


def run_breakdown(args: argparse.Namespace) -> dict:
    """Per-layer milliseconds of a training step on the first batch of MNIST."""
    from tinynet.optimizers import Adam

    x, y, _, _ = cc.load_images(args.model, args.batch_size, dataset=args.dataset)
    model = cc.tinynet_model(args.model, seed=args.seed)
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="cross_entropy")
    cpu_time = args.threads == 1
    ms = cc.layer_breakdown(model, x, y, cpu_time=cpu_time)
    total = ms["whole step"]
    print(
        f"tinynet {args.model}, batch {args.batch_size}, {args.threads} thread(s), "
        f"median {'CPU' if cpu_time else 'wall'} ms per piece of a training step"
    )
    for key, value in ms.items():
        print(f"  {key:28s} {value:8.3f} ms  {100 * value / total:5.1f}%")
    print(f"  => {args.batch_size / total * 1e3:,.0f} samples/s (train_step only)")
    return {"breakdown_ms": ms, "cpu_time": cpu_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    cc.add_worker_args(parser)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="print per-layer times of a training step instead (CPU time if 1 thread)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    result = run_breakdown(args) if args.breakdown else run_benchmark(args)
    result["framework"] = "tinynet"
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
