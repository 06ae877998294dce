"""Training throughput of the 784-512-512-10 MLP, as a fraction of the matmul rate.

Trains ``tinynet.zoo.mnist_mlp`` (ReLU, Dropout 0.2, softmax cross-entropy, Adam 1e-3)
at batch 128 on synthetic MNIST-shaped data (uniform pixels, random labels: a dense
layer's cost does not depend on the values) and reports samples/s for ``fit`` and for
bare ``train_step`` calls on ready-made batches (no shuffling or gathering).

FLOP count per training sample (multiply-adds count 2, element-wise work ignored):

- forward:  F = 2 * (784*512 + 512*512 + 512*10) = 1,337,344
- backward: dW of each layer (F) plus dx of the second and third layers
  (F - 2*784*512); the first layer's dx is not needed for training.

So training needs 3F - 2*784*512 = 3,209,216 FLOP per sample; a trainer that also
computes the first layer's dx executes 3F = 4,012,032. tinynet's plan asks its
first trained step for no input gradient (``model.plan.first_trained``), so the
first count is the one it executes. "GFLOP/s" is set next to two references
measured in the same run with the same threads: the machine's float32 matmul peak
(``_common.measure_matmul_peak``: a 2048x2048 product) and the matmuls of one
training step at the MLP's own shapes, batch 128 (8 or 9 products, the same that
tinynet executes). Target: training at >= 50% of the matmul peak.

Where the time goes: a training step broken into its plan steps' forward and
backward, the loss and the optimizer (medians over 100 steps, from the plan's
``timings``), each with its GFLOP/s and share of the peak; the rest of ``fit``'s
time per batch (shuffling, gathering the batch, metrics) is the loop's.

Usage::

    python benchmarks/bench_mlp.py [--threads 2] [--json out.json] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    epoch_summary,
    epoch_timer,
    format_table,
    measure_matmul_peak,
    pin_threads,
    step_flop,
    time_call,
    warn_if_busy,
    write_json,
)

SIZES = (784, 512, 512, 10)


def flops_per_sample(first_dx: bool) -> dict[str, int]:
    """FLOP per training sample: forward, needed for training, executed."""
    fwd = 2 * sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:], strict=True))
    needed = 3 * fwd - 2 * SIZES[0] * SIZES[1]
    return {
        "forward": fwd,
        "needed": needed,
        "executed": 3 * fwd if first_dx else needed,
    }


def best_rate(fn: Any, flop: float, *, seconds: float = 1.5) -> float:
    """GFLOP/s of ``fn`` from the median of repeated calls within ``seconds``."""
    t = time_call(fn, repeat=5, warmup=1, min_seconds=seconds)
    return flop / t["median"] / 1e9


def matmul_rates(batch: int, first_dx: bool, threads: int) -> dict[str, float]:
    import numpy as np

    rng = np.random.default_rng(0)
    peak = measure_matmul_peak(threads)

    # The products of one training step: forward x @ W, backward x.T @ dz for each
    # layer and dz @ W.T for each layer but (unless first_dx) the first.
    acts = [rng.random((batch, k), dtype=np.float32) for k in SIZES]
    ws = [
        rng.random((i, o), dtype=np.float32)
        for i, o in zip(SIZES, SIZES[1:], strict=False)
    ]
    outs = []

    def step() -> None:
        outs.clear()
        for i, (x, w, z) in enumerate(zip(acts, ws, acts[1:], strict=False)):
            outs.append(x @ w)
            outs.append(x.T @ z)
            if i > 0 or first_dx:
                outs.append(z @ w.T)

    own = best_rate(step, batch * flops_per_sample(first_dx)["executed"])
    return {"matmul_peak_gflops": peak, "mlp_shapes_gflops": own}


def step_breakdown(
    model: Any, batches: list[tuple[Any, Any]], peak: float
) -> list[dict[str, Any]]:
    """Median milliseconds of each piece of a training step, with its GFLOP/s."""
    import statistics

    plan = model.plan
    timings: dict[str, list[float]] = {}
    for xb, yb in batches:
        plan.loss_and_gradients(xb, yb, timings=timings)
        start = time.perf_counter()
        model.optimizer.step(model.parameters(), model.gradients())
        timings.setdefault("optimizer", []).append(time.perf_counter() - start)
    batch = len(batches[0][0])
    flop = {}
    for i, step in enumerate(plan.steps):
        fwd, bwd = step_flop(step, batch, need_dx=i > plan.first_trained)
        flop[f"forward {i} {step.kind}"] = fwd
        flop[f"backward {i} {step.kind}"] = bwd
    pieces = []
    for key, seconds in timings.items():
        t = statistics.median(seconds)
        rate = flop.get(key, 0) / t / 1e9
        pieces.append(
            {
                "piece": key,
                "ms": 1e3 * t,
                "gflops": rate or None,
                "fraction_of_peak": rate / peak if rate else None,
            }
        )
    return pieces


def train_rates(model: Any, args: argparse.Namespace, peak: float) -> dict[str, Any]:
    import numpy as np

    from tinynet.optimizers import Adam

    rng = np.random.default_rng(args.seed)
    x = rng.random((args.samples, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=args.samples)
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="cross_entropy")

    timer = epoch_timer()

    def fit() -> None:
        model.fit(
            x,
            y,
            epochs=args.epochs,
            batch_size=args.batch,
            verbose=0,
            seed=args.seed,
            callbacks=[timer],
        )

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(fit)
        profiler.dump_stats(str(args.profile))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    else:
        fit()

    # Bare train_step on pre-sliced batches: the model's own cost, no loop overhead.
    batches = [
        (x[i : i + args.batch], y[i : i + args.batch])
        for i in range(0, args.samples - args.batch + 1, args.batch)
    ][:100]
    for layer in model.layers:
        layer.rng = rng
    model.train_step(*batches[0])
    t0 = time.perf_counter()
    for xb, yb in batches:
        model.train_step(xb, yb)
    step_rate = len(batches) * args.batch / (time.perf_counter() - t0)
    breakdown = step_breakdown(model, batches, peak)
    return {
        "breakdown": breakdown,
        # On a busy machine the plan may have moved its steps to one thread.
        "governor": model.plan.governor.describe().splitlines(),
        "epoch_seconds": timer.times,
        "fit_samples_per_s": epoch_summary(timer.times, args.samples)[
            "train_samples_per_s"
        ],
        "train_step_samples_per_s": step_rate,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=60000, help="per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output")
    args = parser.parse_args(argv)
    pin_threads(args.threads)  # before NumPy or Numba sizes its thread pool

    import numba
    import numpy as np

    load = warn_if_busy()
    from tinynet import zoo

    model = zoo.mnist_mlp(seed=args.seed)
    # The plan's backward stops at its first trained step, which computes no dx.
    first_dx = False
    ref = matmul_rates(args.batch, first_dx, args.threads)
    train = train_rates(model, args, ref["matmul_peak_gflops"])
    flop = flops_per_sample(first_dx)
    fit_gflops = train["fit_samples_per_s"] * flop["executed"] / 1e9
    step_gflops = train["train_step_samples_per_s"] * flop["executed"] / 1e9
    result = {
        "threads": args.threads,
        "batch": args.batch,
        "flop_per_sample": flop,
        "computes_first_layer_dx": first_dx,
        **ref,
        **train,
        "fit_gflops": fit_gflops,
        "train_step_gflops": step_gflops,
        "fit_fraction_of_peak": fit_gflops / ref["matmul_peak_gflops"],
        "fit_fraction_of_mlp_shapes": fit_gflops / ref["mlp_shapes_gflops"],
        "target_met": fit_gflops >= 0.5 * ref["matmul_peak_gflops"],
        "loadavg_before": load,
        "versions": {"numpy": np.__version__, "numba": numba.__version__},
        "python": sys.version.split()[0],
    }
    print(
        f"MLP 784-512-512-10, batch {args.batch}, {args.threads} threads, "
        f"{flop['executed']:,} FLOP/sample executed\n"
        f"  fit:        {train['fit_samples_per_s']:>9,.0f} samples/s "
        f"{fit_gflops:6.1f} GFLOP/s  "
        f"({100 * result['fit_fraction_of_peak']:.0f}% of the matmul peak, "
        f"{100 * result['fit_fraction_of_mlp_shapes']:.0f}% of MLP-shape matmuls)\n"
        f"  train_step: {train['train_step_samples_per_s']:>9,.0f} samples/s "
        f"{step_gflops:6.1f} GFLOP/s\n"
        f"  float32 matmul peak (2048^2): {ref['matmul_peak_gflops']:6.1f} GFLOP/s; "
        f"the MLP's matmuls at batch {args.batch}: "
        f"{ref['mlp_shapes_gflops']:6.1f} GFLOP/s\n"
        f"  target (fit >= 50% of the matmul peak): "
        f"{'met' if result['target_met'] else 'MISSED'}"
    )
    step_ms = sum(p["ms"] for p in train["breakdown"])
    fit_step_ms = 1e3 * args.batch / train["fit_samples_per_s"]
    rows = [
        [
            p["piece"],
            p["ms"],
            f"{100 * p['ms'] / step_ms:.0f}%",
            "-" if p["gflops"] is None else p["gflops"],
            "-" if p["gflops"] is None else f"{100 * p['fraction_of_peak']:.0f}%",
        ]
        for p in train["breakdown"]
    ]
    rows.append(["fit's loop (batching, metrics)", fit_step_ms - step_ms, "", "", ""])
    print(
        "\nWhere a training step's time goes (median ms per piece):\n"
        + format_table(["piece", "ms", "of step", "GFLOP/s", "of peak"], rows)
        + "\nThreads (tinynet.plan.governor): "
        + "; ".join(train["governor"])
    )
    if args.json:
        write_json(args.json, result, sort_keys=False)
    return result


if __name__ == "__main__":
    main()
