"""Where the time of one speedrun process goes: start-up and imports, loading the
data, waiting for the kernels, training, the test evaluation, saving, the reload
check and the interpreter's exit.

Runs ``examples/mnist_train.py --model speedrun --seed S --out F`` in fresh
processes (``--runs`` of them, seeds 0, 1, ...), each through
``_speedrun_phases_worker.py``, which times the example's calls to the library
(``load_data``, ``fit``, ``predict``, ``save``, ``load_model``, the wait for the
kernel-loading thread) without changing them; the rest of ``main`` is reported as
"other in main" (building the model, the summary, the report). Wall-clock times
from spawn to exit, so the phases add up to the process's wall time, and the CPU
seconds of each phase (all threads: a wait costs none, a two-thread phase counts
twice), the steadier figure when others share the machine: read a wall time as a
share of the run it was measured in, and quote the load average printed with it.
Run as ``speedrun.py`` runs them: the bytecode cache in use (its ``run_env``),
and after an untimed run on a few images that warms it and Numba's cache.
``--variant`` adds runs with environment variables set, alternated with the plain
runs seed by seed (with ``PYTHONPATH`` naming another checkout, e.g. ``git archive
main | tar -x -C DIR``, the variant runs that checkout's example and library)::

    python benchmarks/speedrun_phases.py --runs 3
    python benchmarks/speedrun_phases.py --runs 5 --variant NUMPY_MADVISE_HUGEPAGE=0
    python benchmarks/speedrun_phases.py --runs 5 --variant PYTHONPATH=/tmp/main
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from speedrun import WARMUP_IMAGES, run_env  # noqa: E402

# Phases in process order, as the worker names them; "other in main" and "exit"
# are what lies between.
PHASES = (
    "start-up",
    "imports",
    "load_data",
    "kernels wait",
    "fit",
    "predict test",
    "save",
    "reload check",
    "other in main",
    "exit",
)


def run_once(
    seed: int,
    folder: Path,
    threads: int,
    env: dict[str, str],
    extra: tuple[str, ...] = (),
) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds (all threads) per phase of one process, with ``env``
    added to the environment and ``extra`` to the example's arguments:
    ``{"wall": {phase: s, ..., "total": s}, "cpu": ...}``."""
    out, events = folder / f"speedrun_{seed}.npz", folder / f"events_{seed}.json"
    cmd = [sys.executable, str(HERE / "_speedrun_phases_worker.py"), str(events)]
    cmd += ["--model", "speedrun", "--seed", str(seed), "--out", str(out), *extra]
    os.sync()  # as speedrun.run_once: no earlier writes left for the save's fsync
    cpu_before = children_cpu()
    spawned = time.time()
    proc = subprocess.run(
        cmd, env={**run_env(threads), **env}, capture_output=True, text=True
    )
    exited = time.time(), children_cpu() - cpu_before
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"run failed: {' '.join(cmd)}")
    record = json.loads(events.read_text())
    started, entered, left = (
        record[key] for key in ("started", "main_entered", "main_left")
    )
    runs = {}
    for clock, origin in (("wall", spawned), ("cpu", 0.0)):
        i = 0 if clock == "wall" else 1
        phases = {name: 0.0 for name in PHASES}
        phases["start-up"] = started[i] - origin
        phases["imports"] = entered[i] - started[i]
        inside = 0.0
        for name, begin, end in record["calls"]:
            phases[name] += end[i] - begin[i]
            inside += end[i] - begin[i]
        phases["other in main"] = left[i] - entered[i] - inside
        phases["exit"] = exited[i] - left[i]
        phases["total"] = exited[i] - origin
        runs[clock] = phases
    return runs


def children_cpu() -> float:
    """CPU seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def parse_variant(text: str) -> dict[str, str]:
    """``"VAR=VALUE,VAR=VALUE"`` as a dict."""
    pairs = [item.partition("=") for item in text.split(",") if item]
    if not pairs or any(not name or not sep for name, sep, _ in pairs):
        raise argparse.ArgumentTypeError(
            f"expected VAR=VALUE[,VAR=VALUE], got {text!r}"
        )
    return {name: value for name, _, value in pairs}


def print_table(title: str, runs: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    header = "".join(f"{f'seed {s}':>9s}" for s in range(len(runs)))
    print(f"{'phase':16s}{header}{'mean':>9s}")
    for name in (*PHASES, "total"):
        values = [run[name] for run in runs]
        cells = "".join(f"{v:9.3f}" for v in values)
        print(f"{name:16s}{cells}{statistics.mean(values):9.3f}")


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="VAR=VALUE[,...]",
        help="also run with these environment variables (repeatable)",
    )
    args = parser.parse_args(argv)
    variants = {"as is": {}} | {
        ",".join(f"{k}={v}" for k, v in env.items()): env for env in args.variant
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="speedrun_phases.") as tmp:
        for env in variants.values():  # untimed: warms the caches, as speedrun.py
            run_once(0, Path(tmp), args.threads, env, ("--limit", str(WARMUP_IMAGES)))
        for seed in range(args.runs):
            order = list(variants)
            shift = seed % len(order)  # who goes first rotates from seed to seed
            for name in order[shift:] + order[:shift]:
                runs[name].append(
                    run_once(seed, Path(tmp), args.threads, variants[name])
                )
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    for name, variant_runs in runs.items():
        for clock in ("wall", "cpu"):
            what = "wall seconds" if clock == "wall" else "CPU seconds, all threads"
            print_table(f"{name}: {what}", [run[clock] for run in variant_runs])
    return runs


if __name__ == "__main__":
    main()
