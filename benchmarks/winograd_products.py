"""The Winograd products of a zoo model's convolutions (the shipped CNN by default),
one chunk of images at a time as the drivers run them: ``np.matmul`` of the stacked
planes against ``tinynet.kernels.winograd_products.products``.

    python benchmarks/winograd_products.py --rounds 9 [--model speedrun] [--out FILE]

For every ``ConvBNReLU`` step (pooled or not) of ``tinynet.zoo.MODELS[--model]``
whose training conv runs by Winograd: the chunk the drivers use at batch 128
(``conv.batch_chunks``), and its three products, forward ``M = V U``, ``dU = V^T dM``
(``V^T`` a transposed view, as the driver passes it) and ``dV = dM U^T``, random
float32 data. The two ways are alternated round by round; medians of CPU time, one
thread by default, GFLOP/s. A product whose width the kernel is not compiled for
runs ``np.matmul`` both ways (``winograd_products.takes_kernel`` says which).
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
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model", default="cnn", help="a tinynet.zoo.MODELS name (default: cnn)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    _common.pin_threads(args.threads)
    load = _common.warn_if_busy()

    import numpy as np

    from tinynet import zoo
    from tinynet.kernels import conv, winograd_products
    from tinynet.plan import ConvBNReLU
    from tinynet.threads import single_threaded_blas

    model = zoo.MODELS[args.model](seed=0)
    rng = np.random.default_rng(0)
    cases: list[tuple[str, str, Any, Any, Any]] = []
    for index, step in enumerate(model.plan):
        if not isinstance(step, ConvBNReLU) or step.winograd_algorithm is None:
            continue
        algorithm = step.winograd_algorithm
        _, _, c = step.conv.input_shape
        ho, wo, f = step.conv.output_shape
        tiles_h, tiles_w = algorithm.tiles(ho, wo)
        tiles, points = tiles_h * tiles_w, algorithm.points
        s, e = conv.batch_chunks(args.batch, points * tiles * max(c, f) * 4)[0]
        k = (e - s) * tiles
        conv_name = f"@{index} {c}->{f} {algorithm.name} k={k}"

        def planes(*shape: int) -> Any:
            return rng.standard_normal(shape).astype(np.float32)

        v, u, dm, u_t = (
            planes(points, k, c),
            planes(points, c, f),
            planes(points, k, f),
            planes(points, f, c),
        )
        cases += [
            (conv_name, "M = V U", v, u, np.empty((points, k, f), np.float32)),
            (conv_name, "dU = V^T dM", v.transpose(0, 2, 1), dm,
             np.empty((points, c, f), np.float32)),
            (conv_name, "dV = dM U^T", dm, u_t, np.empty((points, k, c), np.float32)),
        ]  # fmt: skip

    def by_matmul(a: Any, b: Any, out: Any) -> Any:
        return np.matmul(a, b, out=out)

    ways = {"np.matmul": by_matmul, "products": winograd_products.products}
    times: dict[tuple[int, str], list[float]] = {}
    with single_threaded_blas():
        for _ in range(2):  # compile and warm up
            for _, _, a, b, out in cases:
                for fn in ways.values():
                    fn(a, b, out)
        for _ in range(args.rounds):
            for i, (_, _, a, b, out) in enumerate(cases):
                for name, fn in ways.items():
                    start = time.process_time()
                    for _ in range(20):
                        fn(a, b, out)
                    times.setdefault((i, name), []).append(
                        (time.process_time() - start) / 20
                    )
    rows, results = [], []
    for i, (conv_name, product, a, b, out) in enumerate(cases):
        flop = 2.0 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        us = {name: statistics.median(times[(i, name)]) * 1e6 for name in ways}
        gflops = {name: flop / t / 1e3 for name, t in us.items()}
        kernel = winograd_products.takes_kernel(a, out)
        rows.append(
            [conv_name, product]
            + [f"{us[n]:.0f} us, {gflops[n]:.0f}" for n in ways]
            + ["kernel" if kernel else "np.matmul"]
        )
        results.append({
            "conv": conv_name, "product": product, "us": us, "gflops": gflops,
            "kernel": kernel,
        })  # fmt: skip
    print(_common.format_table(["conv", "product", *ways, "products runs"], rows))
    if args.out is not None:
        _common.write_json(args.out, {"load_average": load, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
