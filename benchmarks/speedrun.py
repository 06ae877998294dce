"""Speedrun: how long from process start to a saved, good MNIST model, in tinynet,
Keras 3 (TensorFlow CPU) and PyTorch (CPU), with the same recipe.

The recipe (architecture, epochs, batch size, optimizer and learning-rate schedule,
label smoothing) is ``tinynet.zoo.SPEEDRUN_RECIPE``. Keras and PyTorch get it
translated, never re-typed: the model layer by layer (``tinynet.interop.to_keras``, and
``_torch_models`` for PyTorch) with the same initial weights for a given seed, the
optimizer and schedule from the recipe's tinynet optimizer (``to_config``). Each
run is a fresh process pinned to ``--threads`` threads, timed from spawn to exit:
interpreter start, imports, loading MNIST, training (on all 60,000 images: the
recipe was chosen on a validation split once), the test evaluation and saving the
model. tinynet's run is literally
``python examples/mnist_train.py --model speedrun --seed S --out F``; Keras' and
PyTorch's is ``_speedrun_worker.py``, which never imports tinynet and reads MNIST
from an uncompressed ``.npz`` this script writes first (tinynet's example reads the
gzipped IDX files once, then its decoded cache: ``.npy`` files it memory-maps and
checks against the published SHA-256, ``tinynet.datasets.decoded_cache``).

The frameworks' order rotates from seed to seed. Before the timed runs, each
framework runs once untimed on 512 images, so Numba's cache is warm and every
library is in the OS file cache. Python's bytecode cache is warm too: the runs
ignore ``PYTHONDONTWRITEBYTECODE``, so the warm-up writes tinynet's ``.pyc`` files
as any first run does (pip installed Keras, TensorFlow and PyTorch compiled);
without them every run compiled 72 modules again, 0.1-0.15 s. Reported: wall
time and test accuracy (mean, min, max over the seeds) and the rivals' mean wall
time over tinynet's; and how fast that is next to the machine: the recipe's training
arithmetic (``_common.training_flop``: its products counted as dense layers and direct
convolutions, 2 FLOP per multiply-add) over each framework's mean wall time, and
over tinynet's own training time (``fit``, from its saved model), set next to the
float32 matmul peak with the same threads, measured after the runs
(``_common.measure_matmul_peak``).

Usage (from the repository root, with ``pip install -e ".[bench,torch]"``)::

    python benchmarks/speedrun.py                   # 10 seeds, the published figures
    python benchmarks/speedrun.py --seeds 3         # a quicker look
    python benchmarks/speedrun.py --frameworks tinynet,keras   # without PyTorch

Writes ``benchmarks/results/speedrun.json`` and ``speedrun.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402
import _compare_common as cc  # noqa: E402
import _torch_models as tm  # noqa: E402

FRAMEWORKS = ("keras", "pytorch", "tinynet")
RIVALS = ("keras", "pytorch")
NAMES = {"keras": "Keras", "pytorch": "PyTorch", "tinynet": "tinynet"}
# The targets: rival's mean wall time over tinynet's, at equal accuracy.
SPEEDUP_TARGETS = {"keras": 3.0, "pytorch": 2.0}
# "Equal accuracy": tinynet's mean test accuracy at most this far below the rival's.
ACCURACY_MARGIN = 0.001
WARMUP_IMAGES = 512


class Recipe(Protocol):
    """What the benchmark reads from a speedrun recipe."""

    epochs: int
    batch_size: int
    validation_split: float
    label_smoothing: float

    def model(self, seed: int) -> Any:
        """The tinynet ``Sequential``, initialised from ``seed``."""
        ...

    def optimizer(self, steps_per_epoch: int) -> Any:
        """The tinynet optimizer with its learning-rate schedule."""
        ...


@dataclass(frozen=True)
class ZooRecipe:
    """A recipe of ``tinynet.zoo.RECIPES`` seen through the protocol above. It trains
    on every image it is given (no validation split), as ``examples/mnist_train.py
    --model speedrun`` does: the recipe was chosen on a validation split once."""

    name: str = "speedrun"
    validation_split: float = 0.0

    @property
    def recipe(self) -> Any:
        from tinynet import zoo

        return zoo.RECIPES[self.name]

    @property
    def epochs(self) -> int:
        return int(self.recipe.epochs)

    @property
    def batch_size(self) -> int:
        return int(self.recipe.batch_size)

    @property
    def label_smoothing(self) -> float:
        return float(self.recipe.label_smoothing)

    def model(self, seed: int) -> Any:
        from tinynet import zoo

        return zoo.MODELS[self.name](seed=seed)

    def optimizer(self, steps_per_epoch: int) -> Any:
        return self.recipe.make_optimizer(self.epochs * steps_per_epoch)


RECIPE: Recipe = ZooRecipe()


# ------------------------------------------------------------------------ jobs
def write_data(path: Path, limit: int | None) -> int:
    """MNIST as one uncompressed ``.npz`` for the rivals' workers; returns the
    number of training images."""
    import numpy as np

    from tinynet.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return len(x_train)


def steps_per_epoch(recipe: Recipe, n_train: int) -> int:
    n_val = int(round(n_train * recipe.validation_split))
    return math.ceil((n_train - n_val) / recipe.batch_size)


def write_job(
    folder: Path,
    recipe: Recipe,
    seed: int,
    n_train: int,
    data: Path,
    frameworks: list[str],
) -> Path:
    """The job file of one seed for the rivals' workers: the recipe's numbers, its
    optimizer config, and the model translated for Keras (a ``.keras`` file) and
    PyTorch (a layer spec and an ``.npz`` of weights), all from the same initial
    weights as tinynet's run with this seed."""
    import numpy as np

    from tinynet import optimizers

    model = recipe.model(seed)
    job: dict[str, Any] = {
        "data": str(data),
        "epochs": recipe.epochs,
        "batch_size": recipe.batch_size,
        "validation_split": recipe.validation_split,
        "label_smoothing": recipe.label_smoothing,
        "optimizer": optimizers.to_config(
            recipe.optimizer(steps_per_epoch(recipe, n_train))
        ),
        "input_shape": list(model.input_shape),
        "softmax_output": type(model.layers[-1]).__name__ == "Softmax",
    }
    if "keras" in frameworks:
        from tinynet.interop import save_keras, to_keras

        job["keras_model"] = str(folder / f"initial_{seed}.keras")
        save_keras(to_keras(model), job["keras_model"])
    if "pytorch" in frameworks:
        job["torch_spec"] = tm.torch_spec(model)
        job["torch_weights"] = str(folder / f"initial_{seed}.npz")
        np.savez(job["torch_weights"], **tm.torch_weights(model))
    path = folder / f"job_{seed}.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def command(
    framework: str, seed: int, job: Path, out: Path, result: Path, args: Any
) -> list[str]:
    if framework == "tinynet":
        cmd = [sys.executable, str(REPO / "examples" / "mnist_train.py")]
        cmd += ["--model", "speedrun", "--seed", str(seed), "--out", str(out)]
        return cmd + (["--limit", str(args.limit)] if args.limit else [])
    cmd = [sys.executable, str(HERE / "_speedrun_worker.py"), "--framework", framework]
    cmd += ["--job", str(job), "--seed", str(seed), "--threads", str(args.threads)]
    return cmd + ["--out", str(out), "--result", str(result)]


def run_env(threads: int) -> dict[str, str]:
    """The environment of a timed run: ``threads`` threads, and Python's bytecode
    cache in use (module docstring)."""
    env = cc.thread_env(threads)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(
    framework: str, seed: int, job: Path, folder: Path, args: Any
) -> dict[str, Any]:
    """One timed process: wall time from spawn to exit, and the test accuracy."""
    suffix = {"keras": ".keras", "pytorch": ".pt", "tinynet": ".npz"}[framework]
    out = folder / f"{framework}_{seed}{suffix}"
    result = folder / f"{framework}_{seed}.json"
    cmd = command(framework, seed, job, out, result, args)
    # tinynet's save fsyncs its file, and that can wait for other writes still
    # pending (the warm-up's files, a rival's saved model, other processes'): 3 of
    # ~45 saves took 1.3-1.9 s instead of 0.01 s. Each run starts with them written.
    os.sync()
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, env=run_env(args.threads), capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{framework} run failed: {' '.join(cmd)}")
    if framework == "tinynet":
        import tinynet

        metadata = tinynet.load_model(out).metadata
        figures = {
            "test_accuracy": metadata["test_accuracy"],
            "train_seconds": metadata.get("train_seconds"),
        }
    else:
        figures = json.loads(result.read_text())
    return {"seed": seed, "wall_s": wall, **figures}


# ------------------------------------------------------------------ summary
def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    accuracies = [r["test_accuracy"] for r in runs]
    return {
        "wall_s": {
            "mean": statistics.mean(walls),
            "min": min(walls),
            "max": max(walls),
        },
        "test_accuracy": {
            "mean": statistics.mean(accuracies),
            "min": min(accuracies),
            "max": max(accuracies),
        },
        "seeds": len(runs),
    }


def targets(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    checks = []
    tinynet = summary.get("tinynet")
    if tinynet is None:
        return checks
    for rival, minimum in SPEEDUP_TARGETS.items():
        if rival not in summary:
            continue
        speedup = summary[rival]["wall_s"]["mean"] / tinynet["wall_s"]["mean"]
        gap = tinynet["test_accuracy"]["mean"] - summary[rival]["test_accuracy"]["mean"]
        checks.append(
            {
                "target": f">= {minimum:.0f}x faster than {NAMES[rival]} "
                f"({speedup:.2f}x) at equal accuracy ({100 * gap:+.2f} points)",
                "met": speedup >= minimum and gap >= -ACCURACY_MARGIN,
            }
        )
    accuracy, wall = tinynet["test_accuracy"], tinynet["wall_s"]
    checks.append(
        {
            "target": f"tinynet mean test accuracy >= 99.0% "
            f"({100 * accuracy['mean']:.2f}%), worst seed >= 98.85% "
            f"({100 * accuracy['min']:.2f}%)",
            "met": accuracy["mean"] >= 0.99 and accuracy["min"] >= 0.9885,
        }
    )
    checks.append(
        {
            "target": f"tinynet mean wall time <= 5 s ({wall['mean']:.2f} s)",
            "met": wall["mean"] <= 5.0,
        }
    )
    return checks


def arithmetic(
    runs: dict[str, list[dict[str, Any]]], flop: float, threads: int
) -> dict[str, Any]:
    """GFLOP/s of the recipe's ``flop`` over each framework's mean wall time (and
    over tinynet's mean training time), next to the matmul peak on ``threads``."""
    peak = _common.measure_matmul_peak(threads)
    rates = {
        fw: flop / statistics.mean(r["wall_s"] for r in fw_runs) / 1e9
        for fw, fw_runs in runs.items()
    }
    tinynet = runs.get("tinynet", [])
    fit = [r["train_seconds"] for r in tinynet if r.get("train_seconds")]
    return {
        "training_gflop": flop / 1e9,
        "matmul_peak_gflops": peak,
        "whole_process_gflops": rates,
        "tinynet_fit_gflops": flop / statistics.mean(fit) / 1e9 if fit else None,
    }


def table(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = [
        "| framework | wall time, mean (min-max) | test accuracy, mean (min-max) "
        "| mean wall time / tinynet's |",
        "|---|---:|---:|---:|",
    ]
    for fw, s in summary.items():
        w, a = s["wall_s"], s["test_accuracy"]
        ratio = report["speedups"].get(fw)
        lines.append(
            f"| {NAMES[fw]} | {w['mean']:.2f} s ({w['min']:.2f}-{w['max']:.2f}) | "
            f"{100 * a['mean']:.2f}% ({100 * a['min']:.2f}-{100 * a['max']:.2f}) | "
            f"{f'{ratio:.2f}x' if ratio else '-'} |"
        )
    rate = report.get("arithmetic")
    if rate:
        peak = rate["matmul_peak_gflops"]
        lines.append(
            f"\nTraining arithmetic {rate['training_gflop']:.0f} GFLOP (products as "
            f"direct convolutions and dense layers); float32 matmul peak in this run, "
            f"{report['meta']['threads']} threads: {peak:.0f} GFLOP/s"
        )
        for fw, gflops in rate["whole_process_gflops"].items():
            lines.append(
                f"- {NAMES[fw]}, over the whole process: {gflops:.1f} GFLOP/s "
                f"({gflops / peak:.0%} of the peak)"
            )
        if rate["tinynet_fit_gflops"]:
            fit = rate["tinynet_fit_gflops"]
            lines.append(
                f"- tinynet's fit alone: {fit:.1f} GFLOP/s "
                f"({fit / peak:.0%} of the peak)"
            )
    lines.append("\nTargets")
    for c in report["targets"]:
        lines.append(f"- [{'x' if c['met'] else ' '}] {c['target']}")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"keras": "#d62728", "pytorch": "#ff7f0e", "tinynet": "#1f77b4"}
    frameworks = list(report["summary"])
    fig, (wall_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, fw in enumerate(frameworks):
        summary, runs = report["summary"][fw], report["runs"][fw]
        wall = summary["wall_s"]
        wall_ax.bar(i, wall["mean"], 0.6, color=colors[fw], alpha=0.8)
        wall_ax.plot([i] * len(runs), [r["wall_s"] for r in runs], "k.", markersize=4)
        label = f"{wall['mean']:.1f} s"
        if fw in report["speedups"]:
            label += f"\n{report['speedups'][fw]:.1f}x tinynet's"
        wall_ax.annotate(label, (i, wall["max"]), ha="center", va="bottom")
        # Accuracy: the mean and every seed, no bar (a bar from 0 hides the spread).
        acc = [100 * r["test_accuracy"] for r in runs]
        mean = 100 * summary["test_accuracy"]["mean"]
        acc_ax.plot([i] * len(acc), acc, ".", color=colors[fw], markersize=6)
        acc_ax.plot([i - 0.25, i + 0.25], [mean, mean], color=colors[fw], lw=2)
        acc_ax.annotate(f"{mean:.2f}", (i + 0.27, mean), va="center", fontsize=9)
    wall_ax.set_title("Wall time, process start to saved model (s)", fontsize=10)
    wall_ax.margins(y=0.2)
    acc_ax.set_title("Test accuracy (%): each seed, and the mean", fontsize=10)
    acc_ax.set_xlim(-0.5, len(frameworks) - 0.3)
    for ax in (wall_ax, acc_ax):
        ax.set_xticks(range(len(frameworks)), [NAMES[fw] for fw in frameworks])
        ax.grid(axis="y", alpha=0.3)
    meta = report["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items()))
    fig.suptitle(
        f"MNIST speedrun, {meta['seeds']} seed(s), {meta['threads']} threads "
        f"each - {meta['machine']['cpu']} ({meta['date'][:10]})\n{versions}",
        fontsize=9,
    )
    fig.tight_layout()
    _common.save_figure(fig, path)


# --------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="comma list of " + ", ".join(FRAMEWORKS),
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--limit", type=int, default=None, help="train on the first N images (tests)"
    )
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "speedrun.json")
    parser.add_argument("--png", type=Path, default=HERE / "results" / "speedrun.png")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    chosen = [fw for fw in args.frameworks.split(",") if fw]
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown or not chosen:
        parser.error(f"--frameworks: unknown {unknown}; choose from {FRAMEWORKS}")
    args.frameworks = [fw for fw in FRAMEWORKS if fw in chosen]
    if args.seeds < 1 or args.threads < 1:
        parser.error("--seeds and --threads must be positive integers")
    if "tinynet" in args.frameworks:
        from tinynet import zoo

        if "speedrun" not in zoo.MODELS:
            parser.error(
                "tinynet.zoo has no 'speedrun' model, so examples/mnist_train.py "
                "--model speedrun cannot run; use --frameworks keras,pytorch"
            )
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import numba
    import numpy as np

    import tinynet
    from tinynet import optimizers

    load_before = _common.warn_if_busy()
    frameworks: list[str] = args.frameworks
    runs: dict[str, list[dict[str, Any]]] = {fw: [] for fw in frameworks}
    versions = {"tinynet": tinynet.__version__, "numpy": np.__version__}
    versions["numba"] = numba.__version__
    with tempfile.TemporaryDirectory(prefix="speedrun.") as tmp:
        folder = Path(tmp)
        data = folder / "mnist.npz"
        n_train = write_data(data, args.limit)
        if not args.no_warmup:
            print("warm-up (untimed) ...", flush=True)
            warm = argparse.Namespace(**{**vars(args), "limit": WARMUP_IMAGES})
            warm_data = folder / "warmup.npz"
            write_data(warm_data, WARMUP_IMAGES)
            job = write_job(folder, RECIPE, 0, WARMUP_IMAGES, warm_data, frameworks)
            for fw in frameworks:
                run_once(fw, 0, job, folder, warm)
        for index, seed in enumerate(range(args.seeds)):
            job = write_job(folder, RECIPE, seed, n_train, data, frameworks)
            shift = index % len(frameworks)
            for fw in frameworks[shift:] + frameworks[:shift]:
                run = run_once(fw, seed, job, folder, args)
                versions.update(run.pop("versions", {}))
                runs[fw].append(run)
                print(
                    f"seed {seed} {fw:8s} {run['wall_s']:6.2f} s  "
                    f"test accuracy {100 * run['test_accuracy']:.2f}%",
                    flush=True,
                )

    summary = {fw: summarise(runs[fw]) for fw in frameworks}
    speedups = {}
    if "tinynet" in summary:
        tinynet_wall = summary["tinynet"]["wall_s"]["mean"]
        speedups = {
            fw: summary[fw]["wall_s"]["mean"] / tinynet_wall
            for fw in frameworks
            if fw != "tinynet"
        }
    recipe_model = RECIPE.model(0)
    report: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": "python benchmarks/speedrun.py "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": cc.machine_info(),
            "versions": versions,
            "threads": args.threads,
            "seeds": args.seeds,
            "train_images": n_train,
            "recipe": {
                "source": type(RECIPE).__name__,
                "layers": [layer.describe() for layer in recipe_model.layers],
                "parameters": recipe_model.count_params(),
                "epochs": RECIPE.epochs,
                "batch_size": RECIPE.batch_size,
                "validation_split": RECIPE.validation_split,
                "label_smoothing": RECIPE.label_smoothing,
                "optimizer": optimizers.to_config(
                    RECIPE.optimizer(steps_per_epoch(RECIPE, n_train))
                ),
            },
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg()[0],
        },
        "summary": summary,
        "speedups": speedups,
        "runs": runs,
    }
    report["targets"] = targets(summary)
    report["arithmetic"] = arithmetic(
        runs, _common.training_flop(recipe_model, n_train) * RECIPE.epochs, args.threads
    )
    print(f"\n{report['meta']['date']}  {report['meta']['machine']['cpu']}")
    print(table(report))
    _common.publish(report, args.json, None if args.no_plot else args.png, plot)
    return report


if __name__ == "__main__":
    main()
