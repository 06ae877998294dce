"""Where a training step of the shipped CNN (``tinynet.zoo.mnist_cnn``) spends its
time: each plan step's forward and backward, and the kernels inside them, with the
convolutions' GFLOP/s next to this machine's float32 matmul rate measured in the
same run.

    python benchmarks/cnn_step_profile.py --threads 1 --steps 20 --out profile.json

One thread and ``process_time`` by default: other processes on a shared machine
barely change this process's CPU time, so the breakdown stays readable there. The
kernel times come from wrapping the kernel modules' functions for the run (a
benchmark's business, never the library's), the Winograd drivers' matrix products
(``products``, kernel or ``np.matmul``) among them; an im2col step's products are
what its time leaves after its kernels; each kernel's time is also given by the
plan step that called it (``name @index``). FLOP counts are those of the direct
convolution (2 x N x ho x wo x kh x kw x C x F per pass, backward twice that with
an input gradient, once without), so a Winograd step can exceed the matmul rate.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common

#: The kernels of each Winograd algorithm
#: (``kernels.winograd_algorithm.Algorithm``), timed per algorithm: the drivers
#: call them through the algorithm, not the module.
WINOGRAD_KERNELS = [
    "input_transform",
    "output_transform",
    "input_transform_adjoint",
    "output_transform_adjoint",
]
KERNELS = {
    "batchnorm": [
        "channel_moments",
        "normalize_relu",
        "normalize_relu_pool",
        "normalize_backward_sums",
        "normalize_backward",
        "pooled_normalize_backward",
        "relu_mask_sums",
    ],
    "conv": ["im2col", "col2im"],
    # As the Winograd drivers call it (imported by name there).
    "winograd_conv": ["products"],
    "convpool": ["unpool_relu", "pooled_weight_grad"],
    "direct_conv_pool": [
        "conv_pool_forward",
        "conv_pool_weight_grad",
        "conv_pool_input_grad",
    ],
}


def time_kernels(totals: dict[tuple[str, str], float], clock: Any) -> list[str]:
    """Wrap the kernels of :data:`KERNELS` and :data:`WINOGRAD_KERNELS` (per
    algorithm) so each call adds its time to ``totals[(kernel, step)]``; returns the
    one-item list that names the running step (:func:`label_steps` writes it)."""
    import importlib

    from tinynet.kernels import winograd, winograd43, winograd63

    current = ["-"]

    def wrap(owner: Any, name: str, key: str) -> None:
        kernel = getattr(owner, name)

        def timed(*args: Any) -> Any:
            start = clock()
            result = kernel(*args)
            totals[(key, current[0])] += clock() - start
            return result

        setattr(owner, name, functools.wraps(kernel)(timed))

    for module_name, names in KERNELS.items():
        module = importlib.import_module(f"tinynet.kernels.{module_name}")
        for name in names:
            wrap(module, name, name)
    for algorithm in (winograd.F2X2, winograd43.F4X4, winograd63.F6X6):
        for name in WINOGRAD_KERNELS:
            wrap(algorithm, name, f"{name} {algorithm.name}")
    return current


def label_steps(model: Any, current: list[str]) -> None:
    """Make each plan step write its index to ``current`` when it runs, so kernel
    times are attributed to steps."""
    for i, step in enumerate(model.plan):
        for method in ("forward", "backward"):
            run = getattr(step, method)

            def labelled(*args: Any, _run: Any = run, _i: int = i, **kw: Any) -> Any:
                current[0] = str(_i)
                return _run(*args, **kw)

            setattr(step, method, labelled)


def conv_flops(model: Any, batch: int) -> dict[int, tuple[float, float]]:
    """Direct-convolution FLOP of each conv step's (forward, backward), by index."""
    plan = model.plan
    return {
        i: _common.step_flop(step, batch, need_dx=i > plan.first_trained)
        for i, step in enumerate(plan)
        if type(step.layers[0]).__name__ == "Conv2D"
    }


def matmul_peak(clock: Any, size: int = 2048) -> float:
    """One thread's float32 matmul rate in GFLOP/s by ``clock``, best of 5: the BLAS
    as the convolutions run it (one thread per share of the batch)."""
    import numpy as np

    from tinynet.threads import single_threaded_blas

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    best = float("inf")
    with single_threaded_blas():
        for _ in range(5):
            start = clock()
            a @ a
            best = min(best, clock() - start)
    return 2.0 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model", default="cnn", help="a tinynet.zoo.MODELS name (default: cnn)"
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="timed train steps")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)
    _common.warn_if_busy()

    import numpy as np

    from tinynet import zoo

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    kernel_totals: dict[tuple[str, str], float] = collections.defaultdict(float)
    current_step = time_kernels(kernel_totals, clock)
    model = zoo.MODELS[args.model](seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    label_steps(model, current_step)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    for _ in range(3):
        model.train_step(x, y)
    kernel_totals.clear()
    steps: dict[str, list[float]] = collections.defaultdict(list)
    optimizer, whole = [], []
    for _ in range(args.steps):
        start = clock()
        model.plan.loss_and_gradients(x, y, timings=steps, clock=clock)
        middle = clock()
        model.optimizer.step(model.parameters(), model.gradients())
        optimizer.append(clock() - middle)
        whole.append(clock() - start)
    peak = matmul_peak(clock) * args.threads

    flops = conv_flops(model, args.batch)
    rows, record = [], {}
    for key, times in steps.items():
        what, index, kind = key.split(" ")
        ms = 1e3 * statistics.median(times)
        flop = flops.get(int(index), (0.0, 0.0))[what == "backward"]
        rate = flop / ms / 1e6 if flop and what != "loss" else None
        rows.append(
            [
                f"{what} {index}",
                kind,
                ms,
                rate or "",
                f"{rate / peak:.0%}" if rate else "",
            ]
        )
        record[key] = {"ms": ms, "direct_gflops": rate}
    rows.append(
        [
            "optimizer",
            type(model.optimizer).__name__,
            1e3 * statistics.median(optimizer),
            "",
            "",
        ]
    )
    step_ms = 1e3 * statistics.median(whole)
    total_flop = sum(f + b for f, b in flops.values())
    rows.append(
        [
            "whole step",
            "",
            step_ms,
            total_flop / step_ms / 1e6,
            f"{total_flop / step_ms / 1e6 / peak:.0%}",
        ]
    )
    print(_common.format_table(["piece", "step", "ms", "GFLOP/s", "of peak"], rows))
    by_step = {
        f"{name} @{step}": 1e3 * v / args.steps
        for (name, step), v in sorted(kernel_totals.items())
    }
    kernel_ms: dict[str, float] = collections.defaultdict(float)
    for (name, _), v in kernel_totals.items():
        kernel_ms[name] += 1e3 * v / args.steps
    print("\nkernels, ms per training step (summed over the conv steps):")
    print(
        _common.format_table(
            ["kernel", "ms"], sorted(kernel_ms.items(), key=lambda kv: -kv[1])
        )
    )
    print("\nkernels by step (@ the step's index in the plan), ms per training step:")
    print(_common.format_table(["kernel @step", "ms"], list(by_step.items())))
    print(f"\nfloat32 matmul peak, {args.threads} thread(s): {peak:.0f} GFLOP/s")
    if args.out is not None:
        _common.write_json(args.out, {
            "machine": _common.machine_info(),
            "date": time.strftime("%Y-%m-%d"),
            "threads": args.threads,
            "clock": args.clock,
            "batch": args.batch,
            "steps": args.steps,
            "matmul_peak_gflops": peak,
            "train_step_ms": step_ms,
            "pieces": record,
            "kernels_ms": kernel_ms,
            "kernels_by_step_ms": by_step,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
