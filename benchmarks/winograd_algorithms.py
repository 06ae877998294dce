"""Each Winograd algorithm on each Winograd convolution of the shipped CNN, against
the plan's choice (``tinynet.plan.conv_bn_relu.fewest_multiplications``).

    python benchmarks/winograd_algorithms.py --rounds 15 [--width 1.5] [--out FILE]

For every ``ConvBNReLU`` step of ``tinynet.zoo.mnist_cnn`` whose training conv runs
by Winograd, the conv's forward (``winograd_conv.conv3x3_forward``) and backward
from its input (``conv3x3_backward``, input gradient included, ``V`` transformed
again as the step does) by F(6x6, 3x3), F(4x4, 3x3) and F(2x2, 3x3), batch 128,
random data of the step's shapes. The algorithms and layers are alternated round
by round; medians of CPU time, one thread by default (``--threads``). It times the
convolution alone, not the step's BatchNorm passes around it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)
    load = _common.warn_if_busy()

    import numpy as np

    from tinynet import zoo
    from tinynet.kernels import winograd, winograd_conv
    from tinynet.kernels.winograd43 import F4X4
    from tinynet.kernels.winograd63 import F6X6
    from tinynet.plan import ConvBNReLU

    model = zoo.mnist_cnn(width=args.width, seed=0)
    rng = np.random.default_rng(0)
    layers = []
    for index, step in enumerate(model.plan):
        if not isinstance(step, ConvBNReLU) or step.winograd_algorithm is None:
            continue
        conv = step.conv
        h, w, c = conv.input_shape
        ho, wo, f = conv.output_shape
        x = rng.standard_normal((args.batch, h, w, c)).astype(np.float32)
        weights = conv.params["W"].astype(np.float32)
        dy = rng.standard_normal((args.batch, ho, wo, f)).astype(np.float32)
        name = f"@{index} {h}x{w}x{c} -> {ho}x{wo}x{f}"
        layers.append((name, step.winograd_algorithm.name, x, weights, dy))
    algorithms = [F6X6, F4X4, winograd.F2X2]

    def run(algorithm: Any, x: Any, weights: Any, dy: Any) -> tuple[float, float]:
        _, ho, wo, f = dy.shape
        y = np.empty_like(dy)
        start = time.process_time()
        winograd_conv.conv3x3_forward(x, weights, None, 0, 0, None, y, algorithm)
        middle = time.process_time()
        winograd_conv.conv3x3_backward(
            dy, None, weights, 0, 0, x.shape, True, x, algorithm
        )
        return middle - start, time.process_time() - middle

    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds + 1):  # the first round compiles and warms up
        for name, _, x, weights, dy in layers:
            for algorithm in algorithms if r % 2 else algorithms[::-1]:
                took = run(algorithm, x, weights, dy)
                if r:
                    times.setdefault((name, algorithm.name), []).append(took)
    rows, results = [], []
    for name, chosen, *_ in layers:
        for algorithm in algorithms:
            pairs = times[(name, algorithm.name)]
            forward = 1e3 * statistics.median(p[0] for p in pairs)
            backward = 1e3 * statistics.median(p[1] for p in pairs)
            mark = "plan" if algorithm.name == chosen else ""
            rows.append(
                [name, algorithm.name, forward, backward, forward + backward, mark]
            )
            results.append(
                {"conv": name, "algorithm": algorithm.name, "forward_ms": forward,
                 "backward_ms": backward, "chosen_by_plan": algorithm.name == chosen}
            )  # fmt: skip
    headers = ["conv", "algorithm", "fwd ms", "bwd ms", "total ms", ""]
    print(_common.format_table(headers, rows))
    if args.out is not None:
        record = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": _common.machine_info(),
            "load_average_at_start": load,
            "threads": args.threads,
            "batch": args.batch,
            "width": args.width,
            "rounds": args.rounds,
            "results": results,
        }
        _common.write_json(args.out, record, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
