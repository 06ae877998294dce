"""Where a multi-threaded training step waits: each batch split of one step
(``tinynet.kernels.batch_split.run``), its wall time next to each thread's busy
time in it, and the time the step spends outside the splits, on the calling thread
alone.

    python benchmarks/split_waits.py --threads 2 --steps 30 --out waits.json

The plan's width is pinned to every thread (``Plan.governor.force("all")``), so
every split runs wide. Per split, in the order a step runs them (named by the plan
step and the function that split), medians over the steps:

- ``wall``: from the call of ``run`` to its return;
- ``busy``: each share's CPU time (``time.thread_time`` of the thread that ran it),
  the caller's share first; a share's wall time above its busy time is time its
  thread was not running (another process held the core);
- ``wait``: ``wall`` less the longest share's busy time: the hand-off, the
  slower thread, and time off the CPU;
- ``last start``: when the last share started, from the call of ``run`` (median
  and 90th percentile): how late the other thread woke to take its share.

A share marked ``*`` ran on the calling thread (the other thread woke too late
to take it). The summary gives the step's wall time, the splits' share of it, the
serial remainder, and the parallel efficiency: busy time over threads x wall.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common

#: Helpers that run a split for a kernel driver: a split is named by their caller.
RUNNERS = {"claim_chunks", "map_chunks"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--model", default="cnn", help="a tinynet.zoo.MODELS name (default: cnn)"
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed train steps")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)
    load = _common.warn_if_busy()

    import numpy as np

    from tinynet import zoo
    from tinynet.kernels import batch_split

    model = zoo.MODELS[args.model](seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    model.plan.governor.force("all")
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    for _ in range(3):
        model.train_step(x, y)

    caller = threading.get_ident()
    running = ["-"]  # the plan step that runs now
    splits: list[dict[str, Any]] = []  # this step's splits, in order
    run = batch_split.run

    def timed_run(work: Any, n: int) -> Any:
        shares: dict[int, tuple[float, float, bool]] = {}
        begin = time.perf_counter()

        def timed_share(start: int, stop: int) -> Any:
            wall, busy = time.perf_counter(), time.thread_time()
            result = work(start, stop)
            shares[start] = (
                wall - begin,
                time.thread_time() - busy,
                threading.get_ident() == caller,
            )
            return result

        frame = sys._getframe(1)
        while frame.f_code.co_name in RUNNERS and frame.f_back is not None:
            frame = frame.f_back
        where = f"{running[0]} {frame.f_code.co_name}"
        result = run(timed_share, n)
        wall = time.perf_counter() - begin
        splits.append({"where": where, "wall": wall, "shares": sorted(shares.items())})
        return result

    def labelled(method: Any, key: str) -> Any:
        def run_labelled(*args: Any, **kwargs: Any) -> Any:
            running[0] = key
            return method(*args, **kwargs)

        return run_labelled

    for i, step in enumerate(model.plan):
        for name in ("forward", "backward"):
            key = f"{name[:3]} {i} {step.kind}"
            setattr(step, name, labelled(getattr(step, name), key))
    batch_split.run = timed_run  # the kernels look it up on the module at each call

    steps: list[list[dict[str, Any]]] = []
    walls, cpu = [], []
    for _ in range(args.steps):
        splits.clear()
        start, busy = time.perf_counter(), time.process_time()
        model.train_step(x, y)
        walls.append(time.perf_counter() - start)
        cpu.append(time.process_time() - busy)
        steps.append(list(splits))
    batch_split.run = run

    median = statistics.median
    rows, record = [], []
    for k, first in enumerate(steps[0]):
        parts = len(first["shares"])
        wall = 1e3 * median(s[k]["wall"] for s in steps)
        busy = [
            1e3 * median(s[k]["shares"][j][1][1] for s in steps) for j in range(parts)
        ]
        on_caller = [
            sum(s[k]["shares"][j][1][2] for s in steps) / len(steps)
            for j in range(parts)
        ]
        wait = wall - max(busy)
        # When the last share started (the other thread's, unless it woke too late).
        late = sorted(1e3 * s[k]["shares"][-1][1][0] for s in steps)
        late_median, late_p90 = median(late), late[int(0.9 * (len(late) - 1))]
        rows.append(
            [
                first["where"],
                wall,
                " ".join(
                    f"{b:.2f}{'*' if c > 0.5 else ''}"
                    for b, c in zip(busy, on_caller, strict=True)
                ),
                wait,
                f"{late_median:.2f} / {late_p90:.2f}",
            ]
        )
        record.append(
            {
                "where": first["where"],
                "wall_ms": wall,
                "busy_ms": busy,
                "share_on_caller": on_caller,
                "wait_ms": wait,
                "last_share_start_ms": {"median": late_median, "p90": late_p90},
            }
        )
    print(
        _common.format_table(
            ["split", "wall ms", "busy ms", "wait ms", "last start ms (median / p90)"],
            rows,
        )
    )
    step_ms = 1e3 * median(walls)
    in_splits = 1e3 * median(sum(s["wall"] for s in step) for step in steps)
    busy_ms = 1e3 * median(cpu)
    summary = {
        "train_step_ms": step_ms,
        "in_splits_ms": in_splits,
        "outside_splits_ms": step_ms - in_splits,
        "cpu_ms": busy_ms,
        "parallel_efficiency": busy_ms / (args.threads * step_ms),
        "splits_per_step": len(steps[0]),
    }
    print(
        f"\nstep {step_ms:.1f} ms (wall, median of {args.steps}): "
        f"{in_splits:.1f} in {len(steps[0])} splits, "
        f"{step_ms - in_splits:.1f} outside them (the calling thread alone); "
        f"CPU {busy_ms:.1f} ms, {summary['parallel_efficiency']:.0%} of "
        f"{args.threads} threads x wall"
    )
    if args.out is not None:
        _common.write_json(args.out, {
            "machine": _common.machine_info(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_at_start": load,
            "model": args.model,
            "threads": args.threads,
            "batch": args.batch,
            "steps": args.steps,
            "summary": summary,
            "splits": record,
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
