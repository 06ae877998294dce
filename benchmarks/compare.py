"""tinynet vs Keras 3 (TensorFlow CPU) vs PyTorch (CPU) on MNIST or Fashion-MNIST:
the same two models, the same data.

Models (built identically in all three; see ``_compare_common`` and
``_torch_models``, which translates tinynet's zoo model layer by layer):

- MLP: Flatten -> Dense 512 relu -> Dropout 0.2 -> Dense 512 relu -> Dropout 0.2
  -> Dense 10 softmax
- CNN: Conv 32 3x3 relu -> MaxPool 2 -> Conv 64 3x3 relu -> MaxPool 2 -> Flatten
  -> Dropout 0.5 -> Dense 10 softmax

All train on the same arrays (float32 in [0, 1]) with Adam(1e-3), batch 128,
from Keras-style initial weights (Glorot-uniform kernels, zero biases), for the same
number of epochs, each framework in its own subprocess pinned to the same thread
count (TensorFlow intra-/inter-op threads, PyTorch's ``set_num_threads`` and
``set_num_interop_threads``; OpenMP, OpenBLAS, MKL and Numba threads). The order of
the frameworks rotates from one run to the next, so drift in the machine's speed
hits all of them. Reported per framework: steady-state seconds per epoch (median of
epochs 2..E) and training samples/s, first-epoch overhead, test accuracy,
single-image latency (``predict`` and a direct model call), batch inference
samples/s over the test set, and peak RSS; then the tinynet/Keras and
tinynet/PyTorch ratios. A parity check copies Keras' initial weights into tinynet
and compares outputs and gradients.

Usage (from the repository root, with ``pip install -e ".[bench,torch]"`` done)::

    python benchmarks/compare.py --epochs 3 --repeats 5  # published figures
    python benchmarks/compare.py --epochs 3              # one seed, ~6 min
    python benchmarks/compare.py --epochs 2 --limit 5000  # quick check
    python benchmarks/compare.py --frameworks keras,tinynet  # without PyTorch
    python benchmarks/compare.py --dataset fashion --models cnn --epochs 12 \
        --repeats 3 --no-parity --latency-repeat 20   # Fashion-MNIST accuracy

Run it on a quiet machine: with other processes on the cores, multi-threaded BLAS
(tinynet) and OpenMP (PyTorch) suffer far more than TensorFlow's thread pool, and
the figures mislead.

Writes ``benchmarks/results/compare.json``, ``compare.png`` (speed) and
``compare_accuracy.png`` (test accuracy per seed, training loss per epoch);
``fashion_compare.*`` with ``--dataset fashion``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402
import _compare_common as cc  # noqa: E402

from tinynet.datasets import TITLES  # noqa: E402

FRAMEWORKS = ("keras", "pytorch", "tinynet")
COLORS = {"keras": "#d62728", "pytorch": "#ff7f0e", "tinynet": "#1f77b4"}
RIVALS = ("keras", "pytorch")  # tinynet's ratios are taken against each of these
NAMES = {"keras": "Keras", "pytorch": "PyTorch", "tinynet": "tinynet"}
WORKERS = {
    "keras": HERE / "_keras_worker.py",
    "pytorch": HERE / "_torch_worker.py",
    "tinynet": HERE / "_tinynet_worker.py",
}

# (metric key, label, unit, higher is better)
METRICS = [
    ("steady_epoch_seconds", "steady-state epoch", "s", False),
    ("train_samples_per_s", "training", "samples/s", True),
    ("first_epoch_overhead_s", "first-epoch overhead", "s", False),
    ("test_accuracy", "test accuracy", "%", True),
    ("latency_predict_ms", "1-image predict()", "ms", False),
    ("latency_call_ms", "1-image direct call", "ms", False),
    ("inference_samples_per_s", "batch inference", "samples/s", True),
    ("peak_rss_mb", "peak RSS", "MiB", False),
]

# The speed targets: (model, rival, minimum tinynet/rival ratio, metric).
TARGETS = [
    ("mlp", "keras", 2.0, "train_samples_per_s"),
    ("cnn", "keras", 1.5, "train_samples_per_s"),
    ("mlp", "keras", 1.5, "inference_samples_per_s"),
    ("cnn", "keras", 1.5, "inference_samples_per_s"),
    ("mlp", "pytorch", 1.5, "train_samples_per_s"),
    ("cnn", "pytorch", 1.5, "train_samples_per_s"),
]
TARGET_LABELS = {
    "train_samples_per_s": "training",
    "inference_samples_per_s": "batch inference",
}
OUTPUT_TOL, GRAD_TOL = 1e-5, 1e-4
# A speed ratio counts only at equal accuracy: tinynet may not trail a rival by more
# than this (points, mean over the seeds; one seed moves by up to 0.3 at 3 epochs).
# Being ahead is not a failure: the parity check already holds the recipes equal.
ACCURACY_TOL = 0.3


def run_worker(
    framework: str, python: str, args: argparse.Namespace, extra: list[str]
) -> dict[str, Any]:
    """Run one worker in a fresh process pinned to ``args.threads``; return its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python, str(WORKERS[framework]), "--threads", str(args.threads)]
        cmd += ["--out", str(out), *extra]
        started = time.perf_counter()
        proc = subprocess.run(
            cmd, env=cc.thread_env(args.threads), capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"{framework} worker failed: {' '.join(cmd)}")
        result = json.loads(out.read_text())
    result["process_seconds"] = time.perf_counter() - started
    return result


def benchmark_args(model: str, seed: int, args: argparse.Namespace) -> list[str]:
    extra = ["--model", model, "--epochs", str(args.epochs), "--seed", str(seed)]
    extra += ["--dataset", args.dataset]
    extra += ["--batch-size", str(args.batch_size)]
    extra += ["--predict-batch", str(args.predict_batch)]
    extra += ["--latency-repeat", str(args.latency_repeat)]
    if args.limit:
        extra += ["--limit", str(args.limit)]
    if args.test_limit:
        extra += ["--test-limit", str(args.test_limit)]
    return extra


def rotation(frameworks: list[str], turn: int) -> list[str]:
    """``frameworks`` rotated by ``turn``: over as many runs as there are
    frameworks, each one runs once in every position."""
    shift = turn % len(frameworks)
    return frameworks[shift:] + frameworks[:shift]


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every timing over the repeated runs of one framework; the mean
    test accuracy over their seeds."""
    out: dict[str, Any] = {}
    for key, *_ in METRICS:
        values = [r[key] for r in runs if r.get(key) is not None]
        average = statistics.mean if key == "test_accuracy" else statistics.median
        out[key] = average(values) if values else None
    out["test_accuracies"] = [r["test_accuracy"] for r in runs]
    out["epoch_seconds"] = [r["epoch_seconds"] for r in runs]
    out["versions"] = runs[0]["versions"]
    out["settings"] = runs[0]["settings"]
    return out


def ratios(rival: dict[str, Any], tinynet: dict[str, Any]) -> dict[str, float | None]:
    """tinynet's figure over the rival's, for every metric but accuracy."""
    return {
        key: (tinynet[key] / rival[key] if rival[key] and tinynet[key] else None)
        for key, *_ in METRICS
        if key != "test_accuracy"
    }


def check_targets(results: dict[str, Any], parity: list[dict[str, Any]]) -> list[dict]:
    checks = []
    for model, rival, minimum, key in TARGETS:
        ratio = results.get(model, {}).get("ratios", {}).get(rival, {}).get(key)
        if ratio is not None:
            checks.append(
                {
                    "model": model,
                    "target": f"{TARGET_LABELS[key]} >= {minimum}x {NAMES[rival]} "
                    f"samples/s ({ratio:.2f}x)",
                    "met": ratio >= minimum,
                }
            )
    if "cnn" in results:
        ms = results["cnn"]["tinynet"]["latency_predict_ms"]
        checks.append(
            {"model": "cnn", "target": "1-image predict() <= 1 ms", "met": ms <= 1.0}
        )
    for model, r in results.items():
        for rival in RIVALS:
            if rival not in r:
                continue
            diff = 100 * (r["tinynet"]["test_accuracy"] - r[rival]["test_accuracy"])
            checks.append(
                {
                    "model": model,
                    "target": f"test accuracy at most 0.3 points below {NAMES[rival]} "
                    f"({diff:+.2f}, mean of {len(r['tinynet']['test_accuracies'])} "
                    "seed(s))",
                    "met": diff >= -ACCURACY_TOL,
                }
            )
    for p in parity:
        if p["dtype"] == "float32":
            checks.append(
                {
                    "model": p["kind"],
                    "target": "parity float32: outputs <= 1e-5, gradients <= 1e-4",
                    "met": p["output"] <= OUTPUT_TOL and p["max_grad"] <= GRAD_TOL,
                }
            )
    return checks


# ---------------------------------------------------------------------- output
def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{100 * value:.2f}"
    if unit == "samples/s":
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    return f"{value:.2f}"


def table(report: dict[str, Any]) -> str:
    frameworks = report["meta"]["frameworks"]
    rivals = [fw for fw in RIVALS if fw in frameworks]
    lines = []
    for model, r in report["results"].items():
        lines.append(f"\n{model.upper()}")
        head = ["metric", *(NAMES[fw] for fw in frameworks)]
        head += [f"tinynet/{NAMES[fw]}" for fw in rivals]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|---" + "|---:" * (len(head) - 1) + "|")
        for key, label, unit, higher in METRICS:
            better = "higher" if higher else "lower"
            cells = [f"{label} ({unit}, {better} is better)"]
            cells += [fmt(r[fw][key], unit) for fw in frameworks]
            for rival in rivals:
                ratio = r["ratios"][rival].get(key)
                cells.append(f"{ratio:.2f}x" if ratio else "-")
            lines.append("| " + " | ".join(cells) + " |")
    if report["parity"]:
        lines.append(
            "\nParity (Keras' initial weights copied into tinynet; max-norm "
            "relative error, Keras as reference)"
        )
        lines.append("| model | dtype | outputs | loss | worst weight gradient |")
        lines.append("|---|---|---:|---:|---:|")
        for p in report["parity"]:
            worst = max(p["grads"], key=p["grads"].get)
            lines.append(
                f"| {p['kind']} | {p['dtype']} | {p['output']:.1e} | {p['loss']:.1e} | "
                f"{p['max_grad']:.1e} ({worst}) |"
            )
    lines.append("\nTargets")
    for c in report["targets"]:
        lines.append(f"- [{'x' if c['met'] else ' '}] {c['model']}: {c['target']}")
    return "\n".join(lines)


def speedup(factor: float) -> str:
    """``3.2 -> "3.2x faster"``, ``0.5 -> "2.0x slower"``."""
    if factor >= 1:
        return f"{factor:.0f}x faster" if factor >= 10 else f"{factor:.1f}x faster"
    return f"{1 / factor:.1f}x slower"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frameworks = report["meta"]["frameworks"]
    rivals = [fw for fw in RIVALS if fw in frameworks]
    models = list(report["results"])
    panels = [
        ("train_samples_per_s", "Training (samples/s)", False),
        ("inference_samples_per_s", "Batch inference (samples/s)", False),
        ("latency_predict_ms", "1-image predict() latency (ms, log)", True),
        ("latency_call_ms", "1-image direct call latency (ms, log)", True),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4.6))
    width = 0.8 / len(frameworks)
    for ax, (key, title, log) in zip(axes, panels, strict=True):
        for j, fw in enumerate(frameworks):
            vals = [report["results"][m][fw][key] for m in models]
            xs = [
                i + (j - (len(frameworks) - 1) / 2) * width for i in range(len(models))
            ]
            bars = ax.bar(xs, vals, width, label=NAMES[fw], color=COLORS[fw])
            if fw != "tinynet":
                continue
            for bar, m in zip(bars, models, strict=True):
                # tinynet's bar carries its ratio to each rival; for latencies, how
                # many times faster it is rather than a 0.00x ratio.
                label = "\n".join(
                    f"vs {NAMES[rival]}: "
                    + (speedup(1 / ratio) if log else f"{ratio:.2f}x")
                    for rival in rivals
                    if (ratio := report["results"][m]["ratios"][rival][key])
                )
                ax.annotate(
                    label,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(models)), [m.upper() for m in models])
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.margins(y=0.25)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    meta = report["meta"]
    versions = meta["versions"]
    others = []
    if "keras" in frameworks:
        others.append(
            f"Keras {versions.get('keras', '?')} / TensorFlow "
            f"{versions.get('tensorflow', '?')}"
        )
    if "pytorch" in frameworks:
        others.append(f"PyTorch {versions.get('torch', '?')}")
    fig.suptitle(
        f"tinynet {versions.get('tinynet', '?')} vs {' vs '.join(others)} - "
        f"{meta['dataset']}, "
        f"batch {meta['batch_size']}, {meta['threads']} threads each, "
        f"{meta['epochs']} epochs - {meta['machine']['cpu']} ({meta['date'][:10]}, "
        f"load average before {meta['loadavg_before'].split()[0]})",
        fontsize=10,
    )
    fig.tight_layout()
    _common.save_figure(fig, path)


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    """Per model: each seed's test accuracy and their mean, then the training loss
    per epoch (thin: each seed, thick: the mean), the frameworks side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    frameworks = report["meta"]["frameworks"]
    models = list(report["results"])
    fig, axes = plt.subplots(
        len(models), 2, figsize=(10, 3.6 * len(models)), squeeze=False
    )
    for (ax_acc, ax_loss), model in zip(axes, models, strict=True):
        for j, fw in enumerate(frameworks):
            runs = report["runs"][model][fw]
            color = COLORS[fw]
            acc = 100 * np.array([r["test_accuracy"] for r in runs])
            ax_acc.scatter(np.full(len(acc), j), acc, color=color, alpha=0.6)
            ax_acc.hlines(acc.mean(), j - 0.25, j + 0.25, color=color, lw=2.5)
            spread = f" \u00b1 {acc.std(ddof=1):.2f}" if len(acc) > 1 else ""
            ax_acc.annotate(
                f"{acc.mean():.2f}%{spread}", (j + 0.28, acc.mean()), va="center",
                fontsize=9,
            )  # fmt: skip
            losses = np.array([r["train_loss"] for r in runs])
            epochs = np.arange(1, losses.shape[1] + 1)
            for run_loss in losses:
                ax_loss.plot(epochs, run_loss, color=color, alpha=0.25, lw=1)
            ax_loss.plot(epochs, losses.mean(axis=0), color=color, lw=2, label=fw)
        ax_acc.set_xticks(range(len(frameworks)), frameworks)
        ax_acc.set_xlim(-0.5, len(frameworks) - 0.1)
        n_seeds = len(report["runs"][model][frameworks[0]])
        ax_acc.set_title(
            f"{model.upper()}: test accuracy (%), {n_seeds} seed(s), mean"
            + (" \u00b1 s.d." if n_seeds > 1 else ""),
            fontsize=10,
        )
        ax_acc.grid(axis="y", alpha=0.3)
        ax_loss.set_title(f"{model.upper()}: training loss per epoch", fontsize=10)
        ax_loss.set_xlabel("epoch")
        ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_loss.grid(alpha=0.3)
        ax_loss.legend()
    meta = report["meta"]
    fig.suptitle(
        f"{meta['dataset']}: the same model in each framework, Adam 1e-3, batch "
        f"{meta['batch_size']}, {meta['epochs']} epochs on {meta['train_images']:,} "
        f"images ({meta['date'][:10]})",
        fontsize=10,
    )
    fig.tight_layout()
    _common.save_figure(fig, path)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# ------------------------------------------------------------------------ main
def parse_frameworks(text: str, parser: argparse.ArgumentParser) -> list[str]:
    chosen = [fw for fw in text.split(",") if fw]
    unknown = [fw for fw in chosen if fw not in FRAMEWORKS]
    if unknown:
        parser.error(f"--frameworks: unknown {unknown}; choose from {FRAMEWORKS}")
    if "tinynet" not in chosen or len(chosen) < 2:
        parser.error("--frameworks: name tinynet and at least one of keras, pytorch")
    return [fw for fw in FRAMEWORKS if fw in chosen]


def main(argv: list[str] | None = None, *, script: str = "compare.py") -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="mlp,cnn", help="comma list: mlp,cnn")
    parser.add_argument(
        "--frameworks",
        default=",".join(FRAMEWORKS),
        help="comma list: tinynet and keras and/or pytorch",
    )
    parser.add_argument(
        "--dataset",
        choices=cc.DATASETS,
        default="mnist",
        help="fashion: Fashion-MNIST (results go to fashion_compare.*)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="training images used")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per framework and model, seeds seed..seed+repeats-1; timings are "
        "medians, accuracy the mean over the seeds",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--predict-batch", type=int, default=256)
    parser.add_argument("--latency-repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keras-python", default=sys.executable, help="interpreter with Keras"
    )
    parser.add_argument(
        "--torch-python", default=sys.executable, help="interpreter with PyTorch"
    )
    parser.add_argument("--tinynet-python", default=sys.executable)
    parser.add_argument("--no-parity", action="store_true")
    parser.add_argument("--json", type=Path, help="default: results/compare.json")
    parser.add_argument(
        "--png", type=Path, help="speed figure; its accuracy twin is *_accuracy.png"
    )
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="cProfile tinynet's training into DIR/tinynet_<model>.prof (slower)",
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in cc.KINDS:
            parser.error(f"--models: unknown model {m!r}; choose from {cc.KINDS}")
    frameworks = parse_frameworks(args.frameworks, parser)
    stem = "compare" if args.dataset == "mnist" else f"{args.dataset}_compare"
    args.json = args.json or HERE / "results" / f"{stem}.json"
    args.png = args.png or HERE / "results" / f"{stem}.png"
    rivals = [fw for fw in RIVALS if fw in frameworks]
    pythons = {
        "keras": args.keras_python,
        "pytorch": args.torch_python,
        "tinynet": args.tinynet_python,
    }

    load_before = loadavg()
    _common.warn_if_busy()
    parity: list[dict[str, Any]] = []
    if not args.no_parity and "keras" in frameworks:
        print("parity check ...", flush=True)
        parity = run_worker(
            "keras",
            args.keras_python,
            args,
            ["--parity", "--models", ",".join(models)],
        )["parity"]

    runs: dict[str, dict[str, list]] = {
        m: {fw: [] for fw in frameworks} for m in models
    }
    turn = 0
    for model in models:
        for rep in range(args.repeats):
            for fw in rotation(frameworks, turn):
                print(f"{model}: {fw} ...", flush=True)
                # Each repeat its own seed (weights, shuffling, dropout), the same
                # for every framework, so accuracy is compared over seeds.
                extra = benchmark_args(model, args.seed + rep, args)
                if fw == "tinynet" and args.profile_dir:
                    args.profile_dir.mkdir(parents=True, exist_ok=True)
                    prof = args.profile_dir.resolve() / f"tinynet_{model}.prof"
                    extra += ["--profile", str(prof)]
                result = run_worker(fw, pythons[fw], args, extra)
                runs[model][fw].append(result)
                print(
                    f"  {result['steady_epoch_seconds']:.2f} s/epoch, "
                    f"{result['train_samples_per_s']:,.0f} samples/s, "
                    f"test accuracy {100 * result['test_accuracy']:.2f}%",
                    flush=True,
                )
            turn += 1

    results = {}
    versions: dict[str, str] = {}
    for model in models:
        agg = {fw: aggregate(runs[model][fw]) for fw in frameworks}
        for fw in frameworks:
            versions.update(agg[fw]["versions"])
        results[model] = {
            **agg,
            "ratios": {rival: ratios(agg[rival], agg["tinynet"]) for rival in rivals},
        }

    report: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": f"python benchmarks/{script} "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": cc.machine_info(),
            "dataset": TITLES[args.dataset],
            "versions": versions,
            "frameworks": frameworks,
            "threads": args.threads,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "predict_batch": args.predict_batch,
            "train_images": args.limit or 60000,
            "repeats": args.repeats,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        },
        "results": results,
        "parity": parity,
        "runs": runs,
    }
    report["targets"] = check_targets(results, parity)
    text = table(report)
    meta = report["meta"]
    print(
        f"\n{meta['date']}  {meta['machine']['cpu']}, {meta['threads']} threads each, "
        f"{meta['epochs']} epochs, {meta['train_images']} training images, "
        f"load average before/after {meta['loadavg_before']} / {meta['loadavg_after']}"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(text)
    _common.publish(report, args.json, None if args.no_plot else args.png, plot)
    if not args.no_plot:
        accuracy_png = args.png.with_name(f"{args.png.stem}_accuracy.png")
        plot_accuracy(report, accuracy_png)
        print(f"wrote {accuracy_png}")
    return report


if __name__ == "__main__":
    main()
