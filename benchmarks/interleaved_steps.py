"""Training-step time and batch predict rate of several tinynet checkouts, one step
at a time in turn, so that every checkout sees the same load on a shared machine.

    python benchmarks/interleaved_steps.py --threads 1 --clock cpu \\
        --rounds 30 /path/to/old /path/to/new

Each checkout runs in its own long-lived subprocess (``PYTHONPATH`` set to it)
holding a built, warmed-up model; the parent asks each in turn for one training
step (and, every fifth round, one ``predict`` of 1024 images) and collects the
times the child measured. ``benchmarks/step_times.py`` alternates whole runs
instead: on a machine whose load changes by the minute, its ratios drift.

``--steps-per-turn K`` runs K training steps in a row at each turn and records
each. A switch between the processes leaves the next step with caches full of the
other checkout's data and its threads asleep; a training run never switches, and the
switch costs a fast step a larger share of its time than a slow one. With K = 1 (the
default) every step pays it; with K = 5 one step in five does, and the ratios come
closer to those of whole training runs while the turns still alternate.

``--width all`` (or ``one``) pins each checkout's thread governor
(``tinynet.plan.governor``) where it has one; by default it chooses, and the JSON
records each child's choices (``widths``) next to its step times. A comma-separated
list gives each checkout its own width, so one checkout named twice compares its
governor with a pinned width in one run (what the governor costs on a quiet
machine)::

    python benchmarks/interleaved_steps.py --model mnist_mlp --threads 2 \\
        --clock wall --rounds 100 --steps-per-turn 20 --width auto,all . .

``--cpus`` pins every child to a set of cores. With ``--threads 1`` the default is
one core, the same for every checkout: single-threaded children left to the
scheduler on the 2-core VM came out 1.58x apart one way and 0.73x the other when
their order was swapped (2026-12-04); pinned to one core, the order made no
difference. With more threads the children are not pinned unless asked.

The mean step is what an epoch costs: it counts the governor's trial calls on one
thread, which the median leaves out. ``others_cores`` in the JSON is how many cores
other processes kept busy during the run, on average (``/proc``; the load average
trails by a minute); it comes from 10 ms ticks, so over a run of a second or less
it can be off by 0.2 either way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common

CHILD = """
import os, sys, time
if {cpus}:
    os.sched_setaffinity(0, {cpus})
import numpy as np
from tinynet import zoo
model = zoo.{model}(seed=0)
model.compile(optimizer="adam", loss="cross_entropy")
governor = getattr(getattr(model, "plan", None), "governor", None)
if governor is not None and "{width}" != "auto":
    governor.force("{width}")
rng = np.random.default_rng(0)
x = rng.random(({batch}, *model.input_shape), dtype=np.float32)
y = rng.integers(0, 10, {batch})
images = rng.random((1024, *model.input_shape), dtype=np.float32)
for _ in range(3):
    model.train_step(x, y)
model.predict(images, batch_size=256)
clock = time.process_time if "{clock}" == "cpu" else time.perf_counter
print("ready", *sorted(os.sched_getaffinity(0)), flush=True)
for line in sys.stdin:
    what, _, count = line.strip().partition(" ")
    seconds = []
    for _ in range(int(count or 1)):
        start = clock()
        if what == "train":
            model.train_step(x, y)
        else:
            model.predict(images, batch_size=256)
        seconds.append(clock() - start)
    print(" ".join(map(str, seconds)), flush=True)
if governor is not None:
    print(governor.describe().replace(chr(10), "; "), flush=True)
else:
    print("no governor", flush=True)
"""

WIDTHS = ("auto", "all", "one")


def child_cpus(spec: str | None, threads: int) -> set[int] | None:
    """The cores to pin the children to (empty: not pinned), from ``--cpus``; None
    for a spec that names cores this process may not use."""
    allowed = os.sched_getaffinity(0)
    if spec is None:
        return {max(allowed)} if threads == 1 else set()
    if spec == "none":
        return set()
    try:
        cpus = {int(c) for c in spec.split(",")}
    except ValueError:
        return None
    return cpus if cpus and cpus <= allowed else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--model", default="mnist_cnn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--steps-per-turn",
        type=int,
        default=1,
        help="training steps each checkout runs in a row at its turn (each recorded)",
    )
    parser.add_argument(
        "--width",
        default="auto",
        help="auto: each checkout's thread governor chooses (where it has one); "
        "all or one: pinned, to tell the governor's choices from the kernels' speed; "
        "a comma-separated list: one per checkout",
    )
    parser.add_argument(
        "--cpus",
        default=None,
        help="comma-separated cores every child runs on (default: with --threads 1, "
        "the last core this process may use; else none pinned); 'none' to not pin",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    cpus = child_cpus(args.cpus, args.threads)
    if cpus is None:
        parser.error(f"--cpus: core numbers this process may use, got {args.cpus!r}")
    if args.steps_per_turn < 1:
        parser.error(f"--steps-per-turn must be >= 1, got {args.steps_per_turn}")
    widths = args.width.split(",")
    if len(widths) == 1:
        widths *= len(args.checkouts)
    if len(widths) != len(args.checkouts) or not set(widths) <= set(WIDTHS):
        parser.error(
            f"--width: one of {WIDTHS}, or a list of them, one per checkout; got "
            f"{args.width!r} for {len(args.checkouts)} checkouts"
        )
    # A checkout named twice (at two widths) needs a label of its own.
    labels = [
        f"{checkout} --width {width}" if "," in args.width else str(checkout)
        for checkout, width in zip(args.checkouts, widths, strict=True)
    ]
    # The same checkout twice at one width: "(2)" on the second.
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        labels[i] = label if seen[label] == 1 else f"{label} ({seen[label]})"
    _common.pin_threads(args.threads)
    load = _common.warn_if_busy()
    children, cores = [], []  # cores: where each child may run, as it reports
    for checkout, width in zip(args.checkouts, widths, strict=True):
        code = CHILD.format(
            model=args.model, batch=args.batch, clock=args.clock, width=width,
            cpus=sorted(cpus),
        )  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
        child = subprocess.Popen(
            [sys.executable, "-c", code], env=env, text=True, cwd="/",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        ready = child.stdout.readline().split() if child.stdout else []
        if ready[:1] != ["ready"]:
            raise RuntimeError(f"{checkout}: the benchmark child did not start")
        children.append(child)
        cores.append([int(c) for c in ready[1:]])

    def ask(child: Any, what: str) -> list[float]:
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return [float(t) for t in child.stdout.readline().split()]

    train: list[list[float]] = [[] for _ in children]
    predict: list[list[float]] = [[] for _ in children]
    # The CPU time of the machine and of each child, to tell what other processes
    # used meanwhile (the load average trails by a minute).
    pids = [None, *(child.pid for child in children)]
    cpu_before = [_common.cpu_seconds(pid) for pid in pids]
    start = time.perf_counter()
    for r in range(args.rounds):
        order = list(range(len(children)))[:: 1 if r % 2 == 0 else -1]
        for i in order:
            train[i] += ask(children[i], f"train {args.steps_per_turn}")
        if r % 5 == 0:
            for i in order:
                predict[i] += ask(children[i], "predict")
    wall = time.perf_counter() - start
    cpu_after = [_common.cpu_seconds(pid) for pid in pids]
    # This parent's share is negligible.
    others = _common.other_cores(cpu_before, cpu_after, wall)
    chosen = []
    for child in children:
        if child.stdin is not None:
            child.stdin.close()
        chosen.append(child.stdout.readline().strip())
        child.wait()
    results = {
        label: {
            "train_step_ms_median": 1e3 * statistics.median(train[i]),
            "train_step_ms_mean": 1e3 * statistics.mean(train[i]),
            "train_step_ms_best": 1e3 * min(train[i]),
            "predict_images_per_s_median": 1024 / statistics.median(predict[i]),
            "train_step_ms": [round(1e3 * t, 2) for t in train[i]],
            "widths": chosen[i],
            "cores": cores[i],
        }
        for i, label in enumerate(labels)
    }
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": _common.machine_info(),
        "load_average_at_start": load,
        "others_cores": others,
        "model": args.model,
        "threads": args.threads,
        "cpus": sorted(cpus),
        "clock": args.clock,
        "width": widths,
        "batch": args.batch,
        "rounds": args.rounds,
        "steps_per_turn": args.steps_per_turn,
        "results": results,
    }
    print(json.dumps(record, indent=2))
    for label, result in results.items():  # to stderr, for whoever reads along
        print(
            f"{label}: training step median {result['train_step_ms_median']:.2f} ms,"
            f" mean {result['train_step_ms_mean']:.2f} ms, best "
            f"{result['train_step_ms_best']:.2f} ms; batch predict "
            f"{result['predict_images_per_s_median']:,.0f} img/s",
            file=sys.stderr,
        )
    print(f"other processes kept {others:.2f} cores busy meanwhile", file=sys.stderr)
    if args.out is not None:
        _common.write_json(args.out, record, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
