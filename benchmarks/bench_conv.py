"""Convolution and pooling speed for the classic Keras MNIST convnet, at batch 128.

Measures, in one run and with the same threads:

- the machine's float32 matmul rate (2048x2048 @ 2048x2048 in NumPy/BLAS), and the
  rate of a matmul with each conv's own im2col shape ``(N*ho*wo, 9*cin) @ (9*cin,
  cout)``;
- Conv2D forward and backward (with its ReLU, as the specification runs it) for
  28x28x1 -> 32 and 13x13x32 -> 64 (3x3, valid), alone and fused with the 2x2
  max-pool after it (as the convnet's plan runs them, ``tinynet.plan.ConvPool``), and
  MaxPool2D 2x2 on 26x26x32 and 11x11x64: time, GFLOP/s (convs) or GB/s moved (pools),
  and the naive NumPy reference (``tinynet.kernels.reference``) for comparison;
- one training step (forward, loss, backward, Adam) of the whole convnet
  (``tinynet.zoo.mnist_classic_cnn``: Conv32 relu -> MaxPool -> Conv64 relu ->
  MaxPool -> Flatten -> Dropout 0.5 -> Dense 10): wall time, and the median CPU time
  of the process (with one thread it is immune to other processes on the cores,
  with more it adds up the threads), against Keras' step on this machine (from the
  last ``compare.py`` run, ``results/compare.json``, when it was made on
  a machine with the same CPU); and one 60,000-image epoch of ``fit`` on
  synthetic data (469 steps);
- start-up in fresh processes: cold (empty Numba cache dir: compiles) and warm (the
  same dir again: loads the cache);
- peak memory of training the convnet in a fresh process (tracemalloc over model,
  optimizer state, batch and step temporaries; and the process's max RSS).

FLOP (multiply-add = 2): forward 2*N*ho*wo*kh*kw*cin*cout; backward twice that (dW
and dx, each one matmul of the same size). Times are the best of ``--repeat`` calls
(noise on a shared machine only adds time); JSON also holds medians.

Targets: conv2 forward+backward at >= 50% of the 2048^2 matmul rate; warm start adds
< 1 s; a training step < 1 GB; an epoch faster than Keras/TF's on this machine.

Usage::

    python benchmarks/bench_conv.py [--threads 2] [--json out.json] [--repeat 20]
                                    [--skip-epoch] [--skip-startup]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    format_table,
    machine_info,
    matmul_gflops,
    pin_threads,
    run_python,
    time_call,
    write_json,
)

BATCH = 128
CONVS = (  # name, input shape, filters, first layer (no input gradient)
    ("conv1 28x28x1->32", (28, 28, 1), 32, True),
    ("conv2 13x13x32->64", (13, 13, 32), 64, False),
)
POOLS = (("pool1 26x26x32", (26, 26, 32)), ("pool2 11x11x64", (11, 11, 64)))
EPOCH_IMAGES = 60_000


def bench_conv(
    shape: tuple[int, int, int], filters: int, repeat: int, first: bool
) -> dict[str, Any]:
    """One conv layer alone (forward; backward with dx), and fused with the 2x2
    max-pool after it as the convnet runs it (``first``: no dx wanted)."""
    import numpy as np

    from tinynet import Sequential
    from tinynet.kernels import reference
    from tinynet.layers import Conv2D, MaxPool2D
    from tinynet.threads import single_threaded_blas

    rng = np.random.default_rng(0)
    layer = Conv2D(filters, 3, activation="relu")
    model = Sequential([layer, MaxPool2D(2)], input_shape=shape, seed=0)
    (conv_pool,) = model.plan  # the ConvPool step
    ho, wo, _ = layer.output_shape
    layer.params["b"][...] = rng.standard_normal(filters) * 0.1
    cin = shape[2]
    x = rng.standard_normal((BATCH, *shape), dtype=np.float32)
    dout = rng.standard_normal((BATCH, ho, wo, filters), dtype=np.float32)
    dpool = rng.standard_normal((BATCH, ho // 2, wo // 2, filters), dtype=np.float32)
    # As inside a model: the layers split the batch, the BLAS runs single-threaded.
    with single_threaded_blas():
        fwd = time_call(lambda: layer.forward(x, training=True), repeat=repeat)
        layer.forward(x, training=True)
        bwd = time_call(lambda: layer.backward(dout), repeat=repeat)
        fused_fwd = time_call(
            lambda: conv_pool.forward(x, training=True), repeat=repeat
        )
        conv_pool.forward(x, training=True)
        fused_bwd = time_call(
            lambda: conv_pool.backward(dpool, need_dx=not first), repeat=repeat
        )

    w, b = layer.params["W"], layer.params["b"]
    cols = np.empty((BATCH * ho * wo, 9 * cin), np.float32)
    y, _ = reference.conv2d_forward(x, w, b, 1, 1, 0, 0, ho, wo, cols, True)
    ref_fwd = time_call(
        lambda: reference.conv2d_forward(x, w, b, 1, 1, 0, 0, ho, wo, cols, True),
        repeat=3,
        warmup=0,
    )
    ref_bwd = time_call(
        lambda: reference.conv2d_backward(dout, x, cols, w, 1, 1, 0, 0, True, y),
        repeat=3,
        warmup=0,
    )
    flop_fwd = 2.0 * BATCH * ho * wo * 9 * cin * filters
    m, k = BATCH * ho * wo, 9 * cin
    return {
        "forward_s": fwd,
        "backward_s": bwd,
        "fused_with_pool": {
            "input_gradient": not first,
            "forward_s": fused_fwd,
            "backward_s": fused_bwd,
        },
        "flop_forward": flop_fwd,
        "flop_backward": 2 * flop_fwd,
        "gflops_fwd_bwd": 3 * flop_fwd / (fwd["best"] + bwd["best"]) / 1e9,
        "gflops_forward": flop_fwd / fwd["best"] / 1e9,
        "gflops_backward": 2 * flop_fwd / bwd["best"] / 1e9,
        "im2col_matmul_shape": [m, k, filters],
        "im2col_matmul_gflops": matmul_gflops(m, k, filters, repeat=repeat),
        "reference_forward_s": ref_fwd,
        "reference_backward_s": ref_bwd,
    }


def bench_pool(shape: tuple[int, int, int], repeat: int) -> dict[str, Any]:
    import numpy as np

    from tinynet.kernels import reference
    from tinynet.layers import MaxPool2D

    rng = np.random.default_rng(0)
    layer = MaxPool2D(2)
    out_shape = layer.build(shape, rng, np.float32)
    x = np.maximum(rng.standard_normal((BATCH, *shape), dtype=np.float32), 0)
    dout = rng.standard_normal((BATCH, *out_shape), dtype=np.float32)
    fwd = time_call(lambda: layer.forward(x, training=True), repeat=repeat)
    layer.forward(x, training=True)
    bwd = time_call(lambda: layer.backward(dout), repeat=repeat)

    y = np.empty(dout.shape, np.float32)
    argmax = np.empty(dout.shape, np.uint8)
    dx = np.empty_like(x)
    ref_fwd = time_call(
        lambda: reference.maxpool_forward(x, 2, 2, 2, 2, 0, 0, y, argmax), repeat=3
    )
    ref_bwd = time_call(
        lambda: reference.maxpool_backward(dout, argmax, 2, 2, 2, 2, 0, 0, dx),
        repeat=3,
    )
    # Bytes each pass must move: float32 in/out plus the uint8 argmax.
    moved = x.nbytes + dout.nbytes + argmax.nbytes
    return {
        "forward_s": fwd,
        "backward_s": bwd,
        "bytes_moved_per_pass": moved,
        "gbs_forward": moved / fwd["best"] / 1e9,
        "gbs_backward": moved / bwd["best"] / 1e9,
        "reference_forward_s": ref_fwd,
        "reference_backward_s": ref_bwd,
    }


def bench_training(repeat: int, epoch: bool) -> dict[str, Any]:
    import time

    import numpy as np

    from tinynet import zoo

    rng = np.random.default_rng(0)
    model = zoo.mnist_classic_cnn(seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    step = time_call(lambda: model.train_step(x, y), repeat=max(repeat, 30), warmup=3)
    cpu = []
    for _ in range(max(repeat, 30)):
        start = time.process_time()
        model.train_step(x, y)
        cpu.append(time.process_time() - start)
    result: dict[str, Any] = {
        "step_s": step,
        "step_cpu_s_median": float(np.median(cpu)),
        "steps_per_epoch": -(-EPOCH_IMAGES // BATCH),
        "projected_epoch_s": step["best"] * -(-EPOCH_IMAGES // BATCH),
    }
    if epoch:
        x_all = rng.random((EPOCH_IMAGES, 28, 28, 1), dtype=np.float32)
        y_all = rng.integers(0, 10, EPOCH_IMAGES)
        start = time.perf_counter()
        model.fit(x_all, y_all, epochs=1, batch_size=BATCH, seed=0, verbose=0)
        result["fit_epoch_s"] = time.perf_counter() - start
    return result


STARTUP_PROBE = textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    import json
    import numpy as np
    import tinynet
    from tinynet import zoo
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    model = zoo.mnist_classic_cnn(seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    t2 = time.perf_counter()
    model.train_step(x, y)
    t3 = time.perf_counter()
    steady = []
    for _ in range(5):
        s = time.perf_counter()
        model.train_step(x, y)
        steady.append(time.perf_counter() - s)
    print(json.dumps({"import_s": t1 - t0, "first_step_s": t3 - t2,
                      "steady_step_s": min(steady)}))
    """
)

MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, tracemalloc
    import numpy as np
    from tinynet import zoo
    tracemalloc.start()
    rng = np.random.default_rng(0)
    model = zoo.mnist_classic_cnn(seed=0)
    model.compile(optimizer="adam", loss="cross_entropy")
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    for _ in range(3):
        model.train_step(x, y)
    current, peak = tracemalloc.get_traced_memory()
    print(json.dumps({"tracemalloc_peak_bytes": peak,
                      "tracemalloc_after_bytes": current,
                      "max_rss_bytes": resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss * 1024}))
    """
)


def bench_startup() -> dict[str, Any]:
    """Two fresh processes sharing a new, empty Numba cache dir: cold, then warm."""
    with tempfile.TemporaryDirectory(prefix="tinynet-numba-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = {name: run_python(STARTUP_PROBE, env=env) for name in ("cold", "warm")}
    for run in runs.values():
        # What the first step costs beyond a normal one: compiling or cache loading.
        run["jit_overhead_s"] = run["first_step_s"] - run["steady_step_s"]
    return runs


def keras_step() -> dict[str, Any] | None:
    """Keras' CNN training step from the last ``compare.py`` (or ``keras_compare.py``)
    run on this machine (``results/compare.json``, else ``keras_compare.json``), or
    None if there is none to compare with."""
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    for name in ("compare.json", "keras_compare.json"):
        try:
            with open(os.path.join(results, name)) as f:
                report = json.load(f)
            keras = report["results"]["cnn"]["keras"]
            machine = report["meta"]["machine"]
            break
        except (OSError, KeyError, ValueError):
            continue
    else:
        return None
    if machine.get("cpu") != machine_info().get("cpu"):
        return None  # measured on another kind of machine
    steps = -(-report["meta"]["train_images"] // report["meta"]["batch_size"])
    epoch = keras["steady_epoch_seconds"]
    return {
        "epoch_s": epoch,
        "step_ms": epoch / steps * 1e3,
        "source": f"{name} of {report['meta']['date'][:10]}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="pin all pools")
    parser.add_argument("--json", default=None, help="write results to this path")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls each")
    parser.add_argument("--skip-epoch", action="store_true", help="no 60k-image fit")
    parser.add_argument(
        "--skip-startup", action="store_true", help="no cold/warm/memory subprocesses"
    )
    args = parser.parse_args(argv)
    pin_threads(args.threads)  # before NumPy loads its BLAS

    peak = matmul_gflops(2048, 2048, 2048, repeat=max(5, args.repeat // 2))
    results: dict[str, Any] = {
        "machine": machine_info(),
        "batch": BATCH,
        "matmul_2048_gflops": peak,
    }
    results["conv"] = {
        name: bench_conv(s, f, args.repeat, first) for name, s, f, first in CONVS
    }
    results["pool"] = {name: bench_pool(s, args.repeat) for name, s in POOLS}
    results["training"] = bench_training(args.repeat, not args.skip_epoch)
    if not args.skip_startup:
        results["startup"] = bench_startup()
        results["memory"] = run_python(MEMORY_PROBE)

    ms = 1e3
    rate = peak["best"]
    rows = []
    for name, r in results["conv"].items():
        own = r["im2col_matmul_gflops"]["best"]
        rows.append(
            [
                name,
                r["forward_s"]["best"] * ms,
                r["backward_s"]["best"] * ms,
                r["gflops_fwd_bwd"],
                f"{100 * r['gflops_fwd_bwd'] / rate:.0f}%",
                f"{own:.0f} ({100 * r['gflops_fwd_bwd'] / own:.0f}%)",
                r["fused_with_pool"]["forward_s"]["best"] * ms,
                r["fused_with_pool"]["backward_s"]["best"] * ms,
                r["reference_forward_s"]["best"] * ms,
                r["reference_backward_s"]["best"] * ms,
            ]
        )
    print(f"float32 matmul 2048^2: {rate:.0f} GFLOP/s (median {peak['median']:.0f})")
    print(f"batch {BATCH}; times in ms, best of {args.repeat}\n")
    headers = ["conv 3x3 valid", "fwd", "bwd", "GFLOP/s", "of 2048^2"]
    headers += ["im2col-shape mm (ours/it)", "+pool fwd", "+pool bwd"]
    headers += ["ref fwd", "ref bwd"]
    print(format_table(headers, rows))
    print(
        "(+pool: fused with the 2x2 max-pool after it, as the convnet runs it; conv1 "
        "then computes no input gradient)"
    )
    rows = [
        [
            name,
            r["forward_s"]["best"] * ms,
            r["backward_s"]["best"] * ms,
            r["gbs_forward"],
            r["gbs_backward"],
            r["reference_forward_s"]["best"] * ms,
            r["reference_backward_s"]["best"] * ms,
        ]
        for name, r in results["pool"].items()
    ]
    print()
    headers = [
        "maxpool 2x2",
        "fwd",
        "bwd",
        "fwd GB/s",
        "bwd GB/s",
        "ref fwd",
        "ref bwd",
    ]
    print(format_table(headers, rows))

    t = results["training"]
    print(
        f"\ntraining step (classic convnet, batch {BATCH}, Adam): "
        f"{t['step_s']['best'] * ms:.1f} ms best, {t['step_s']['median'] * ms:.1f} ms "
        f"median -> {t['projected_epoch_s']:.2f} s per {t['steps_per_epoch']} steps"
    )
    print(f"  CPU time {t['step_cpu_s_median'] * ms:.1f} ms median")
    keras = keras_step()
    if keras:
        print(
            f"  Keras/TF on this machine: {keras['step_ms']:.1f} ms per step "
            f"({keras['epoch_s']:.2f} s per epoch, {keras['source']}); 1.5x Keras "
            f"samples/s needs {keras['step_ms'] / 1.5:.1f} ms"
        )
        results["keras"] = keras
    if "fit_epoch_s" in t:
        print(f"fit, one {EPOCH_IMAGES}-image epoch: {t['fit_epoch_s']:.2f} s")
    if "startup" in results:
        for name, r in results["startup"].items():
            print(
                f"{name} start: import {r['import_s']:.2f} s, first step "
                f"{r['first_step_s']:.2f} s (steady {r['steady_step_s'] * ms:.0f} ms), "
                f"JIT/cache overhead {r['jit_overhead_s']:.2f} s, process "
                f"{r['wall_s']:.2f} s"
            )
        m = results["memory"]
        mib = 2**20
        print(
            f"training memory: tracemalloc peak {m['tracemalloc_peak_bytes'] / mib:.0f}"
            f" MiB, process max RSS {m['max_rss_bytes'] / mib:.0f} MiB"
        )
    if args.json:
        write_json(args.json, results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
