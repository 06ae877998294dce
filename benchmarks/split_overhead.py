"""What one batch split costs beyond its work (``tinynet.kernels.batch_split.run``),
for one or several tinynet checkouts, alternated so each sees the same load.

    python benchmarks/split_overhead.py --threads 2 --rounds 3 /path/to/old /path/to/new

For each checkout (``PYTHONPATH`` set to it, in a subprocess per round), inside
the BLAS limit a plan holds around its steps:

- ``empty``: the median and 90th percentile time of a split whose shares do
  nothing, the hand-off and the wait alone (on a busy machine the percentile shows
  whether the caller waits for a thread that has not woken);
- ``lag``: with shares of one single-threaded (160, 160) matmul each, the median
  time from the start of a split to the start of another thread's share (how long
  a thread takes to wake), and ``tail``: from the end of the last share to the
  return of ``run`` (how long the caller takes to wake when the other thread
  finishes last). Splits the caller ran alone (the other thread woke too late to
  take a share) are counted, not timed.

No argument: the checkout this script belongs to.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import _common

CHILD = """
import json, statistics, threading, time
import numpy as np
from tinynet.kernels import batch_split
from tinynet.threads import single_threaded_blas

caller = threading.get_ident()
a = np.ones((160, 160), np.float32)
outs = [np.empty_like(a) for _ in range(batch_split.threads())]
empty, lag, tail, alone = [], [], [], 0
with single_threaded_blas():
    for i in range({splits} + 200):
        start = time.perf_counter()
        batch_split.run(lambda s, e: None, len(outs))
        if i >= 200:
            empty.append(time.perf_counter() - start)
    for i in range({splits} // 4 + 50):
        shares = []

        def share(s, e):
            began = time.perf_counter()
            np.matmul(a, a, out=outs[s])
            shares.append((threading.get_ident() == caller, began, time.perf_counter()))

        start = time.perf_counter()
        batch_split.run(share, len(outs))
        end = time.perf_counter()
        if i < 50:
            continue
        others = [began for mine, began, _ in shares if not mine]
        if not others:
            alone += 1
            continue
        lag.append(min(others) - start)
        tail.append(end - max(stop for *_, stop in shares))
us = lambda v: 1e6 * statistics.median(v) if v else float("nan")
p90 = 1e6 * statistics.quantiles(empty, n=10)[-1]
print(json.dumps({{"empty_us": us(empty), "empty_p90_us": p90, "lag_us": us(lag),
                  "tail_us": us(tail), "alone": alone, "timed": len(lag)}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--splits", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)
    load = _common.warn_if_busy()
    checkouts = args.checkouts or [Path(__file__).resolve().parent.parent]
    code = CHILD.format(splits=args.splits)
    runs: dict[str, list[dict[str, float]]] = {str(c): [] for c in checkouts}
    for round_ in range(args.rounds):
        order = checkouts if round_ % 2 == 0 else checkouts[::-1]
        for checkout in order:
            env = dict(os.environ, PYTHONPATH=str(checkout.resolve()))
            runs[str(checkout)].append(_common.run_python(code, env=env))
    rows = []
    for checkout, results in runs.items():
        rows.append(
            [
                checkout,
                *(
                    statistics.median(r[what] for r in results)
                    for what in ("empty_us", "empty_p90_us", "lag_us", "tail_us")
                ),
                f"{sum(r['alone'] for r in results)} of "
                f"{sum(r['alone'] + r['timed'] for r in results)}",
            ]
        )
    headers = [
        "checkout", "empty split us", "p90 us", "lag us", "tail us", "caller alone"
    ]  # fmt: skip
    print(f"{args.threads} threads, load average {load}, medians of {args.rounds}")
    print(_common.format_table(headers, rows))
    if args.json is not None:
        _common.write_json(
            args.json,
            {"machine": _common.machine_info(), "load_average_at_start": load,
             "threads": args.threads, "runs": runs},
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
