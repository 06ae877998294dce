"""Training and one-image predict on a quiet machine and with one core kept busy.

Another process holding a core slows every thread that waits for the thread on that
core (issue 14: with a busy loop on one of two cores an MLP epoch took 4-5x its
quiet time). This script starts such a process itself (a Python busy loop, pinned to
one core with ``--pin-busy`` or left to the scheduler), and measures, alternating
quiet and busy within each repeat:

- an epoch of ``zoo.mnist_mlp`` and of ``zoo.mnist_classic_cnn`` with the README's
  settings (Adam, batch 128), timed over ``--fraction`` of the 60,000 training
  images and scaled up to a whole epoch;
- ``model.predict`` of one image: median and 95th percentile of the wall time, and
  the 95th percentile of the calling thread's CPU time.

Each run compares the plan's thread governor (``adaptive``, the default) with every
call on all threads (``fixed``, ``plan.governor.adaptive = False``), so the before
and after come from the same minutes of the same machine: the two variants run back
to back in each condition (under one busy loop when busy), and each repeat reverses
the order of the last (:func:`cell_order`). Before the first timed cell, each model
makes one untimed pass over the data (first-touch page faults, cold caches), at the
fixed width, so that the governor's first timed cell is its first epoch. The ratios
busy / quiet are what to read: the absolute times move with whatever else runs.

Under the table: the governor's epoch time over the fixed width's for each pair
that ran back to back (on the quiet machine, what the governor costs; busy, what it
saves; ``--control`` adds the fixed width once more as a third variant, whose ratio
to the fixed width is the noise of such a ratio), what the governor had chosen
after each of its cells
(``ThreadGovernor.describe``), and a warning when other processes kept the machine
busy during a cell (the column others' cores: the machine's CPU time over the
cell, from ``/proc/stat``, less this process's and its busy loop's; the load
average trails by a minute and says nothing about one cell).

Usage::

    python benchmarks/contention.py --threads 2 [--repeats 3] [--fraction 0.25]
        [--pin-busy CPU] [--control] [--json benchmarks/results/contention.json]

``--smoke`` runs a few batches of synthetic data in seconds (for the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from _common import (  # noqa: E402
    format_table,
    machine_info,
    pin_threads,
    write_json,
)

MODELS = ("mlp", "classic_cnn")
VARIANTS = ("adaptive", "fixed")
# With --control: the fixed width once more, as a variant of its own. Its ratio to
# the fixed width is what a pair of cells differs by with nothing changed.
CONTROL = "fixed again"
CONDITIONS = ("quiet", "busy")
# Cores other processes may keep busy during a cell before the report warns (the
# CPU times come in 10 ms ticks: over a 0.3 s cell that is 0.03 cores each).
OTHERS_NOTICED = 0.15
EPOCH_SAMPLES = 60_000


@contextlib.contextmanager
def busy_core(cpu: int | None) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess spinning on one core (``cpu``, or where the scheduler puts it)
    for the duration of the block; killed and reaped after it."""
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}})\n" if cpu is not None else ""
    proc = subprocess.Popen([sys.executable, "-c", pin + "while True: pass"])
    try:
        time.sleep(0.3)  # let it start and take its core
        if proc.poll() is not None:
            raise RuntimeError(f"the busy loop exited with code {proc.returncode}")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def load_data(samples: int, synthetic: bool) -> tuple[Any, Any]:
    """``samples`` MNIST training images scaled to [0, 1] and their labels, or
    uniform noise with random labels (a step's cost does not depend on values)."""
    import numpy as np

    if not synthetic:
        from tinynet.datasets import mnist

        (x, y), _ = mnist.load_data(download=False)
        return (x[:samples] / np.float32(255)).astype(np.float32), y[:samples]
    rng = np.random.default_rng(0)
    x = rng.random((samples, 28, 28), dtype=np.float32)
    return x, rng.integers(0, 10, size=samples)


def build(name: str, seed: int) -> Any:
    from tinynet import zoo
    from tinynet.optimizers import Adam

    model = zoo.MODELS[name](seed=seed)
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="cross_entropy")
    return model


def epoch_seconds(model: Any, x: Any, y: Any, batch: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process's, all threads) of one ``fit`` epoch over
    ``x``, scaled to 60,000 samples. CPU well above wall time means threads spin
    while they wait; far below, that they sleep (or wait for a core)."""
    xs = x if model.input_shape == x.shape[1:] else x.reshape(-1, *model.input_shape)
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(xs, y, epochs=1, batch_size=batch, verbose=0)
    scale = EPOCH_SAMPLES / len(x)
    return (time.perf_counter() - wall) * scale, (time.process_time() - cpu) * scale


def predict_ms(model: Any, x: Any, calls: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds (the calling thread's) of ``calls`` one-image
    ``predict`` calls. Wall time far above CPU time is time the thread waited for
    a core; on an oversubscribed machine that dominates the 95th percentile."""
    one = x[:1].reshape(1, *model.input_shape)
    model.predict(one)
    wall, cpu = [], []
    for _ in range(calls):
        start, start_cpu = time.perf_counter(), time.thread_time()
        model.predict(one)
        # To 0.1 us: the JSON keeps every call, and no more digits than the clocks'.
        cpu.append(round(1e3 * (time.thread_time() - start_cpu), 4))
        wall.append(round(1e3 * (time.perf_counter() - start), 4))
    return wall, cpu


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def cell_order(
    repeat: int, variants: tuple[str, ...] = VARIANTS
) -> list[tuple[str, str]]:
    """The (condition, variant) cells of one repeat, in the order they run.

    The variants run back to back under one busy loop (and back to back on the
    quiet machine), so the cells compared see the same minute of the machine. Each
    repeat runs the previous one's order reversed (the variant that ran first in a
    condition runs last in it next time), and every other repeat the variants
    rotate: each runs in each place equally often, and a drift in the load hits
    all."""
    turn = (repeat // 2) % len(variants)
    rotated = variants[turn:] + variants[:turn]
    order = [
        (condition, variant)
        for i, condition in enumerate(CONDITIONS)
        for variant in (rotated if i % 2 == 0 else rotated[::-1])
    ]
    return order[::-1] if repeat % 2 else order


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every (repeat, condition, variant) in alternating order: the raw times, the
    load other processes put on the machine meanwhile, and the governor's state
    after each adaptive cell."""
    x, y = load_data(args.samples, args.synthetic)
    models = {name: build(name, args.seed) for name in args.models}
    for model in models.values():
        # Compile or load the kernels, then one untimed pass over the data: the
        # first pass pays for first-touch page faults and cold caches, and would
        # charge them to whichever variant ran first. At every call on all threads,
        # so the governor starts its records in the first timed cell (as a user's
        # first epoch does: its early trials on one thread count).
        model.plan.governor.adaptive = False
        epoch_seconds(model, x[: 4 * args.batch], y[: 4 * args.batch], args.batch)
        epoch_seconds(model, x, y, args.batch)
    raw: dict[str, list[float]] = {
        f"{variant}/{condition}/{name} {what}": []
        for variant in args.variants
        for condition in CONDITIONS
        for name in models
        for what in (
            "epoch_s",
            "epoch_cpu_s",
            "other_cores",
            "predict_ms",
            "predict_cpu_ms",
        )
    }
    # What the governor had chosen after each cell, and how often it ran on one
    # thread (its counts run on across cells).
    widths: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        order = cell_order(repeat, args.variants)
        for condition in dict.fromkeys(c for c, _ in order):
            busy = busy_core(args.pin_busy) if condition == "busy" else None
            with busy or contextlib.nullcontext() as loop:
                for variant in (v for c, v in order if c == condition):
                    for name, model in models.items():
                        model.plan.governor.adaptive = variant == "adaptive"
                        cell = f"{variant}/{condition}/{name}"
                        pids = [os.getpid()] + ([loop.pid] if loop else [])
                        before = [_common.cpu_seconds(pid) for pid in [None, *pids]]
                        wall, cpu = epoch_seconds(model, x, y, args.batch)
                        after = [_common.cpu_seconds(pid) for pid in [None, *pids]]
                        raw[f"{cell} epoch_s"].append(round(wall, 4))
                        raw[f"{cell} epoch_cpu_s"].append(round(cpu, 4))
                        seconds = wall * len(x) / EPOCH_SAMPLES  # not scaled up
                        others = _common.other_cores(before, after, seconds)
                        raw[f"{cell} other_cores"].append(round(others, 3))
                        wall_ms, cpu_ms = predict_ms(model, x, args.predicts)
                        raw[f"{cell} predict_ms"] += wall_ms
                        raw[f"{cell} predict_cpu_ms"] += cpu_ms
                        if variant == "adaptive":
                            widths[f"{cell} repeat {repeat}"] = (
                                model.plan.governor.describe().splitlines()
                            )
                    print(
                        f"repeat {repeat + 1}/{args.repeats}: {condition} {variant} "
                        "done"
                    )
    return {"times": raw, "governor": widths}


def summarise(
    raw: dict[str, Any], models: list[str], variants: tuple[str, ...] = VARIANTS
) -> dict[str, Any]:
    """Medians (and predict's 95th percentile) per cell, the ratios busy/quiet, and
    the most cores other processes held during any of a cell's epochs."""
    summary: dict[str, Any] = {}
    for variant in variants:
        for name in models:
            row: dict[str, float] = {}
            for condition in CONDITIONS:
                cell = f"{variant}/{condition}/{name}"
                row[f"{condition} epoch_s"] = statistics.median(raw[f"{cell} epoch_s"])
                row[f"{condition} cpu/wall"] = statistics.median(
                    c / w
                    for c, w in zip(
                        raw[f"{cell} epoch_cpu_s"], raw[f"{cell} epoch_s"], strict=True
                    )
                )
                row[f"{condition} other cores max"] = max(raw[f"{cell} other_cores"])
                row[f"{condition} predict_ms median"] = statistics.median(
                    raw[f"{cell} predict_ms"]
                )
                row[f"{condition} predict_ms p95"] = p95(raw[f"{cell} predict_ms"])
                row[f"{condition} predict_cpu_ms p95"] = p95(
                    raw[f"{cell} predict_cpu_ms"]
                )
            row["epoch ratio"] = row["busy epoch_s"] / row["quiet epoch_s"]
            summary[f"{variant} {name}"] = row
    return summary


def governor_vs_fixed(
    raw: dict[str, Any], models: list[str], variants: tuple[str, ...] = VARIANTS
) -> dict[str, Any]:
    """Per model and condition, the governor's epoch time over the fixed width's in
    each repeat (they ran back to back) and their median: on a quiet machine what
    the governor costs, on a busy one what it saves. With the control variant, its
    ratio to the fixed width too: the noise of such a ratio."""
    ratios: dict[str, Any] = {}
    for variant in (v for v in variants if v != "fixed"):
        for name in models:
            for condition in CONDITIONS:
                pairs = zip(
                    raw[f"{variant}/{condition}/{name} epoch_s"],
                    raw[f"fixed/{condition}/{name} epoch_s"],
                    strict=True,
                )
                each = [a / f for a, f in pairs]
                ratios[f"{variant} / fixed, {name} {condition}"] = {
                    "per repeat": each,
                    "median": statistics.median(each),
                    "mean": statistics.mean(each),
                }
    return ratios


def table(summary: dict[str, Any]) -> str:
    headers = [
        "variant, model",
        "quiet s/epoch",
        "busy s/epoch",
        "busy/quiet",
        "CPU/wall quiet, busy",
        "others' cores quiet, busy",
        "predict quiet ms (p95; CPU p95)",
        "predict busy ms (p95; CPU p95)",
    ]
    rows = [
        [
            key,
            row["quiet epoch_s"],
            row["busy epoch_s"],
            f"{row['epoch ratio']:.2f}x",
            f"{row['quiet cpu/wall']:.2f}, {row['busy cpu/wall']:.2f}",
            f"{row['quiet other cores max']:.2f}, {row['busy other cores max']:.2f}",
            *(
                f"{row[f'{c} predict_ms median']:.2f} ({row[f'{c} predict_ms p95']:.2f}"
                f"; {row[f'{c} predict_cpu_ms p95']:.2f})"
                for c in CONDITIONS
            ),
        ]
        for key, row in summary.items()
    ]
    return format_table(headers, rows)


def report(
    ratios: dict[str, Any], governor: dict[str, list[str]], summary: dict[str, Any]
) -> str:
    """The lines under the table: the governor against the fixed width pair by
    pair, what the governor had chosen after each of its cells, and a warning when
    other processes used the machine during a cell."""
    lines = ["epoch time over the fixed width's, each repeat (run back to back):"]
    for key, r in ratios.items():
        each = " ".join(f"{v:.3f}" for v in r["per repeat"])
        lines.append(
            f"  {key}: {each}  (median {r['median']:.3f}, mean {r['mean']:.3f})"
        )
    lines.append("the governor after each of its cells (counts run on across cells):")
    for cell, described in governor.items():
        lines.append(f"  {cell}: " + "; ".join(described))
    others = max(
        row[f"{c} other cores max"] for row in summary.values() for c in CONDITIONS
    )
    if others > OTHERS_NOTICED:
        lines.append(
            f"warning: other processes kept up to {others:.2f} cores busy during a "
            "cell (the column others' cores): that cell's times are not the quiet "
            "or one-busy-core machine they stand for; re-run on a quiet machine."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="default: as the environment says"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--fraction", type=float, default=0.25, help="of an epoch, timed per cell"
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--predicts", type=int, default=200, help="per cell")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--pin-busy", type=int, default=None, metavar="CPU", help="pin the busy loop"
    )
    parser.add_argument("--synthetic", action="store_true", help="noise, not MNIST")
    parser.add_argument(
        "--control",
        action="store_true",
        help=f"add a variant {CONTROL!r}: the fixed width again, whose ratio to "
        "the fixed width shows how far two cells differ with nothing changed",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny and quick")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="write it here too")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.variants = (*VARIANTS, CONTROL) if args.control else VARIANTS
    if unknown := set(args.models) - set(MODELS):
        parser.error(f"--models: unknown {sorted(unknown)}; known: {list(MODELS)}")
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.smoke:
        args.repeats, args.predicts, args.synthetic = 1, 5, True
        args.samples = 2 * args.batch
    else:
        args.samples = int(EPOCH_SAMPLES * args.fraction)
    pin_threads(args.threads)  # before NumPy or Numba sizes its thread pool

    import numba

    from tinynet.threads import blas_threads

    load = os.getloadavg()[0]
    measured = measure(args)
    summary = summarise(measured["times"], args.models, args.variants)
    ratios = governor_vs_fixed(measured["times"], args.models, args.variants)
    text = table(summary) + "\n" + report(ratios, measured["governor"], summary)
    print(text)
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(__file__), *(argv or sys.argv[1:])]),
        "machine": machine_info(),
        "threads": {"numba": numba.get_num_threads(), "blas": blas_threads()},
        "loadavg_before": load,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "table")},
        "summary": summary,
        "over fixed": ratios,
        **measured,
    }
    if args.json:
        write_json(args.json, result, sort_keys=False)
    if args.table:
        args.table.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
