"""Peak memory and time of ``tinynet.load_model`` on hostile model files.

Each case runs in a fresh subprocess under a 4 GB address-space cap and reports
its peak RSS (the interpreter with tinynet imported is the baseline) and the wall
time of the load, and how it ended::

    python benchmarks/bench_hostile_models.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import hostile_models as hm  # noqa: E402

CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import tinynet
started = time.perf_counter()
try:
    tinynet.load_model(sys.argv[1])
    outcome = "loaded"
except BaseException as err:
    outcome = f"{type(err).__name__}: {str(err)[:150]}"
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{peak:7.0f} MB {seconds:7.2f} s  {outcome}")
"""


def cases(folder: Path) -> dict[str, Path]:
    return {
        "baseline (import tinynet, missing file)": folder / "missing.npz",
        "zip bomb (2 GB of zeros)": hm.write_zip_bomb(folder / "bomb.npz", 2 << 30),
        "config asking for 1 GB (Dense(250000) on 1000 inputs)": hm.write_model(
            folder / "big.npz", hm.model_config([hm.dense(250_000)], (1000,))
        ),
        "config asking for 960 MB within the limits (Dense(60000) on 4000 inputs)": (
            hm.write_model(
                folder / "big_in_limits.npz",
                hm.model_config([hm.dense(60_000)], (4000,)),
            )
        ),
        "1,000 ReLU layers (the limit)": hm.write_model(
            folder / "thousand.npz",
            hm.model_config([{"class_name": "ReLU", "config": {}}] * 1_000),
        ),
        "20,000 ReLU layers": hm.write_model(
            folder / "many.npz",
            hm.model_config([{"class_name": "ReLU", "config": {}}] * 20_000),
        ),
        "metadata nested 100,000 deep": hm.write_deep_config(
            folder / "deep.npz", 100_000
        ),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in cases(Path(tmp)).items():
            size = path.stat().st_size / 1e3 if path.exists() else 0
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)],
                capture_output=True,
                text=True,
            )
            line = result.stdout.strip() or f"crashed: {result.stderr[-200:]}"
            print(f"{name} [{size:,.0f} KB]\n    {line}")


if __name__ == "__main__":
    main()
