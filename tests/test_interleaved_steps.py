"""benchmarks/interleaved_steps.py: one checkout named twice, each at its own width
(the governor against a pinned width in one run)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "interleaved_steps.py"


def run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_one_checkout_twice_at_two_widths(tmp_path):
    out = tmp_path / "steps.json"
    done = run(
        "--model", "mnist_mlp", "--rounds", "2", "--steps-per-turn", "2",
        "--threads", "2", "--width", "auto,all", "--out", str(out),
        str(ROOT), str(ROOT),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["width"] == ["auto", "all"]
    auto, fixed = (record["results"][f"{ROOT} --width {w}"] for w in ("auto", "all"))
    for result in (auto, fixed):
        assert len(result["train_step_ms"]) == 4
        assert result["train_step_ms_mean"] >= result["train_step_ms_best"] > 0
    assert "calls on one" in auto["widths"]  # the governor's describe()
    assert fixed["widths"] == ""  # pinned: it records nothing
    assert "cores busy meanwhile" in done.stderr
    assert record["cpus"] == []  # --threads 2: not pinned
    assert auto["cores"] == fixed["cores"] == sorted(os.sched_getaffinity(0))


def test_one_thread_pins_every_checkout_to_the_same_core(tmp_path):
    out = tmp_path / "steps.json"
    done = run(
        "--model", "mnist_mlp", "--rounds", "1", "--out", str(out),
        str(ROOT), str(ROOT),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    last = max(os.sched_getaffinity(0))
    assert record["cpus"] == [last]
    assert list(record["results"]) == [str(ROOT), f"{ROOT} (2)"]
    assert [r["cores"] for r in record["results"].values()] == [[last], [last]]


def test_cpus_must_be_cores_this_process_may_use():
    done = run("--cpus", "100000", str(ROOT))
    assert done.returncode == 2 and "--cpus" in done.stderr
    done = run("--cpus", "first", str(ROOT))
    assert done.returncode == 2 and "--cpus" in done.stderr


def test_a_width_for_each_checkout_or_one_for_all():
    done = run("--width", "auto,all,one", str(ROOT), str(ROOT))
    assert done.returncode == 2 and "one per checkout" in done.stderr
    done = run("--width", "some", str(ROOT))
    assert done.returncode == 2 and "--width" in done.stderr
