"""Helpers shared by the benchmarks: thread pinning, timing, the machine's matmul
rate, load and memory checks, subprocess probes, tables and JSON.

Nothing here imports NumPy at module level: ``pin_threads`` must run before NumPy
(and its BLAS) is loaded, since thread pools are sized when a library starts.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Every variable that sizes a thread pool NumPy's BLAS or Numba may start.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def pin_threads(threads: int | None) -> None:
    """Set every thread-count variable to ``threads`` (None: leave them alone).

    Must run before NumPy is imported; subprocesses inherit the setting.
    """
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"pin_threads: threads must be >= 1, got {threads}")
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def time_call(
    fn: Callable[[], Any],
    *,
    repeat: int = 20,
    warmup: int = 2,
    min_seconds: float = 0.0,
    max_seconds: float | None = None,
) -> dict[str, float]:
    """Seconds per call of ``fn``: best and median of the timed calls.

    After ``warmup`` untimed calls, times ``repeat`` calls, or more while fewer than
    ``min_seconds`` have passed; with ``max_seconds``, stops early once that budget is
    spent (after at least 3 calls). The best is the figure to compare on a shared
    machine (noise only adds time); the median shows how noisy the run was.
    """
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= repeat and elapsed >= min_seconds:
            break
        if max_seconds is not None and len(times) >= 3 and elapsed > max_seconds:
            break
    return {"best": min(times), "median": statistics.median(times)}


def epoch_summary(epoch_times: Sequence[float], n_train: int) -> dict[str, Any]:
    """Steady-state s/epoch (median of epochs 2..E), samples/s and the first epoch's
    extra cost over steady state (compilation, tracing, warm-up)."""
    times = list(epoch_times)
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return {
        "epoch_seconds": times,
        "steady_epoch_seconds": steady,
        "train_samples_per_s": n_train / steady,
        "first_epoch_overhead_s": times[0] - steady if len(times) > 1 else None,
    }


def epoch_timer() -> Any:
    """A tinynet callback that appends each epoch's wall time to its ``times``."""
    from tinynet.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_epoch_begin(self, epoch: int) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
            self.times.append(time.perf_counter() - self._t0)

    return EpochTimer()


def matmul_gflops(
    m: int, k: int, n: int, *, repeat: int = 10, seed: int = 0
) -> dict[str, float]:
    """float32 ``(m, k) @ (k, n)`` rate in GFLOP/s (2*m*k*n FLOP), best and median."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    t = time_call(lambda: a @ b, repeat=repeat)
    flop = 2.0 * m * k * n
    return {"best": flop / t["best"] / 1e9, "median": flop / t["median"] / 1e9}


def step_flop(step: Any, batch: int, need_dx: bool) -> tuple[float, float]:
    """FLOP of a plan step's products on ``batch`` samples, forward and backward
    (2 per multiply-add; element-wise work ignored): a Dense layer's
    ``2 batch in out``, a Conv2D's ``2 batch ho wo kh kw C F``, direct convolution
    (Winograd executes fewer). Backward is the weight gradient, plus the input
    gradient when ``need_dx`` (a plan's first trained step computes none)."""
    forward = 0.0
    for layer in step.layers:
        w = layer.params.get("W")
        if w is None:
            continue
        if w.ndim == 2:
            forward += 2.0 * batch * w.size
        elif w.ndim == 4:
            ho, wo, _ = layer.output_shape
            forward += 2.0 * batch * ho * wo * w.size
    return forward, forward * (2 if need_dx else 1)


def training_flop(model: Any, samples: int) -> float:
    """FLOP of training ``model`` (built) on ``samples`` samples: every plan step's
    :func:`step_flop`, forward and backward, as the plan executes them."""
    plan = model.plan
    return sum(
        sum(step_flop(step, samples, need_dx=i > plan.first_trained))
        for i, step in enumerate(plan.steps)
    )


def measure_matmul_peak(
    threads: int, *, size: int = 2048, seconds: float = 1.0, seed: int = 0
) -> float:
    """The machine's float32 matmul peak in GFLOP/s on ``threads`` BLAS threads.

    The best of repeated ``(size, size) @ (size, size)`` products (2 * size**3 FLOP
    each) over about ``seconds``, written into one preallocated output: on a
    shared machine noise only adds time, so the best is the figure closest to what
    the hardware can do. The BLAS is limited with threadpoolctl for the call, so
    this works after NumPy is loaded, with any ``threads`` up to the BLAS's own
    count; measure it in the same run as the rate it is compared with.
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    if threads < 1:
        raise ValueError(f"measure_matmul_peak: threads must be >= 1, got {threads}")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    with threadpool_limits(limits=threads, user_api="blas"):
        t = time_call(
            lambda: np.matmul(a, b, out=c), repeat=3, warmup=1, min_seconds=seconds
        )
    return 2.0 * size**3 / t["best"] / 1e9


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    cpu = platform.processor() or platform.machine() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine_info() -> dict[str, Any]:
    """CPU, core count, library versions and thread settings, for the JSON record."""
    import numba
    import numpy as np

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "threads": {var: os.environ.get(var) for var in THREAD_VARS},
    }


def warn_if_busy(threshold: float = 0.5) -> float | None:
    """Print a warning when the 1-minute load average says others use the CPUs.

    Returns the load average (None where the OS does not report one). OpenBLAS in
    particular slows down many times over when one of its threads is descheduled.
    """
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    if load > threshold:
        print(
            f"warning: load average {load:.2f} before starting: other processes are "
            "using the CPUs, so timings will be noisy (and multi-threaded BLAS can be "
            "many times slower). Re-run on a quiet machine for numbers to publish.",
            file=sys.stderr,
        )
    return load


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU seconds used so far by process ``pid`` (all its threads), or with None
    by the whole machine (every core, including time the hypervisor gave to other
    guests); None where ``/proc`` does not say (not Linux). The difference over a
    timed block, less what the benchmark itself used, is the load that others put
    on the machine meanwhile: the load average trails by a minute."""
    try:
        if pid is None:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:9]]
            ticks = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        else:
            with open(f"/proc/{pid}/stat") as f:
                # After the command name, which may hold spaces: utime is field 14.
                fields = f.read().rpartition(")")[2].split()
            ticks = int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def other_cores(
    before: list[float | None], after: list[float | None], wall: float
) -> float:
    """The cores that other processes kept busy over ``wall`` seconds: from
    :func:`cpu_seconds` of the machine (first) and of each of the benchmark's own
    processes, taken before and after (NaN where ``/proc`` does not say)."""
    used = [
        b - a if a is not None and b is not None else float("nan")
        for a, b in zip(before, after, strict=True)
    ]
    return (used[0] - sum(used[1:])) / wall


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it must print one JSON object last.

    Returns that object, plus ``"wall_s"``: the subprocess's wall time from spawn
    to exit (interpreter start and imports included).
    """
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats get 3 significant decimals' worth of digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in text
    ]
    return "\n".join(lines)


def write_json(
    path: str | os.PathLike[str], data: Any, *, sort_keys: bool = True
) -> None:
    """Write ``data`` as indented JSON, atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=sort_keys)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save a matplotlib figure as PNG, atomically (temp file + ``os.replace``), and
    close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def publish(
    report: dict[str, Any],
    json_path: Path,
    png_path: Path | None,
    plot: Callable[[dict[str, Any], Path], None],
) -> None:
    """Write a benchmark's report as JSON and, unless ``png_path`` is None, its chart
    drawn by ``plot(report, png_path)``; say where each went."""
    write_json(json_path, report, sort_keys=False)
    print(f"\nwrote {json_path}")
    if png_path is not None:
        plot(report, png_path)
        print(f"wrote {png_path}")


__all__ = [
    "THREAD_VARS",
    "cpu_name",
    "epoch_summary",
    "epoch_timer",
    "format_table",
    "machine_info",
    "matmul_gflops",
    "measure_matmul_peak",
    "peak_rss_mb",
    "pin_threads",
    "publish",
    "run_python",
    "save_figure",
    "time_call",
    "warn_if_busy",
    "write_json",
]
