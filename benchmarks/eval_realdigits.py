"""Accuracy and calibration of the pretrained model on real handwriting, and the
photo-to-answer time.

    python benchmarks/eval_realdigits.py [--model PATH ...] [--json] [--data DIR]
        [--usps FILE] [--semeion FILE] [--no-mnist] [--timing-runs N]
        [--sheet OUT.png] [--figures DIR] [--members]

For every set: accuracy, per-class accuracy, the confusion matrix, the expected
calibration error (ECE, 15 bins) and how the "not sure" threshold
(``tinynet.vision.reading.SURE_CONFIDENCE``) splits the readings, plus that split for
a range of thresholds (what the threshold was chosen from).

- realdigits: 109 photos of single handwritten digits (label = first character of the
  file name, writer = second field). Read from ``--data``, else ``$TINYNET_REALDIGITS``,
  else ``../shared/realdigits`` next to the repository. Each photo is read as one digit
  (``multi=False``) and also with digit segmentation on (``multi=True``, the CLI
  default: right only if exactly one digit is found and it is the label).
- USPS test split and Semeion: 16x16 scans in which the digit fills the frame, written
  as dark ink on white grey images and read through the same pipeline.
- MNIST (skipped with ``--no-mnist``): the 5,000 validation images
  ``examples/mnist_train.py`` holds out by default (where the temperature and the
  threshold were chosen) and the 10,000 test images; and ``mnist_val_scans``, the
  validation images as 28x28 grey scans (dark ink on white) read through the same
  pipeline as USPS: tiny grey scans of writers the model knows.
- ``--figures DIR``: ``errors_<set>.png``, the network inputs of the misread digits
  titled true -> read (confidence), the most confident first (for USPS and Semeion
  each beside its scan, ink made bright, so preprocessing failures show), and
  ``reliability.png``, accuracy against confidence for every set.
- ``--members`` (with several ``--model``): each set also read by every model
  alone, its errors, and the digits that every one of them misreads (with their
  indices in the set: the row of a USPS or Semeion file, the photo's file name),
  which averaging those models is most unlikely to fix: an average can be right
  only where a model's runner-up is.
- Timing: a 4000x3000 JPEG photo (a realdigits photo enlarged), from file to answer
  with the model already loaded; median and max over ``--timing-runs`` runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from tinynet.calibration import (
    logits_from_probabilities,
    reliability_diagram,
    temperature_nll,
)
from tinynet.deskew import as_read_by
from tinynet.metrics import confusion_matrix
from tinynet.threads import blas_threads, single_threaded_blas
from tinynet.vision import ImageError, load_image, preprocess, read_digits
from tinynet.vision.reading import SURE_CONFIDENCE

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def realdigits_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("TINYNET_REALDIGITS") or SHARED / "realdigits")


def realdigits_files(folder: Path) -> list[Path]:
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in exts)


def load_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) uint8 dark ink on white, (N,) labels (file: -1 paper, +1 ink)."""
    with gzip.open(path, "rt") as f:
        rows = np.loadtxt(f)
    grey = (1.0 - rows[:, 1:].reshape(-1, 16, 16)) * 127.5
    return np.clip(grey + 0.5, 0, 255).astype(np.uint8), rows[:, 0].astype(int)


def load_semeion(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) uint8 dark ink on white, (N,) labels (file: 256 bits, one-hot)."""
    rows = np.loadtxt(path)
    grey = (1.0 - rows[:, :256].reshape(-1, 16, 16)) * 255
    return grey.astype(np.uint8), rows[:, 256:].argmax(axis=1)


def accuracy_by(keys: list, correct: list[bool]) -> dict:
    hits, totals = defaultdict(int), defaultdict(int)
    for k, c in zip(keys, correct, strict=True):
        totals[k] += 1
        hits[k] += int(c)
    return {
        str(k): {"accuracy": hits[k] / totals[k], "n": totals[k]}
        for k in sorted(totals)
    }


def scores(labels: np.ndarray, probs: np.ndarray, correct: np.ndarray) -> dict:
    """Confusion matrix, calibration (ECE, NLL) and the "not sure" split of one set.

    ``correct`` may be False where ``probs.argmax`` is right (an unreadable scan
    counts as wrong); the confusion matrix and the calibration figures use the
    model's probabilities alone.
    """
    confidence = probs.max(axis=1)
    diagram = reliability_diagram(probs, labels)
    return {
        "confusion_matrix": confusion_matrix(
            labels, probs.argmax(axis=1), num_classes=10
        ).tolist(),
        "ece": diagram.ece,
        "nll": temperature_nll(logits_from_probabilities(probs), labels, 1.0),
        "mean_confidence": float(confidence.mean()),
        "not_sure": threshold_split(confidence, correct, SURE_CONFIDENCE),
        "thresholds": {
            f"{t:.2f}": threshold_split(confidence, correct, t)
            for t in (*np.arange(0.5, 0.96, 0.05).round(2), 0.99)
        },
        "_diagram": diagram,
    }


def threshold_split(confidence: np.ndarray, correct: np.ndarray, t: float) -> dict:
    """How many readings fall under confidence ``t``; how often each side is right."""
    low = confidence < t

    def rate(mask: np.ndarray) -> float | None:
        return float(correct[mask].mean()) if mask.any() else None

    return {
        "threshold": t,
        "fraction": float(low.mean()),
        "accuracy_below": rate(low),
        "accuracy_above": rate(~low),
        "errors_flagged": int((low & ~correct).sum()),
        "errors": int((~correct).sum()),
    }


def eval_realdigits(folder: Path, model) -> dict:
    files = realdigits_files(folder)
    labels = [int(p.name[0]) for p in files]
    sources = [p.name.split("_")[1] for p in files]
    single, multi, inputs, preds, probs = [], [], [], [], []
    for path, label in zip(files, labels, strict=True):
        r = read_digits(path, model, multi=False)
        single.append(r.digits == str(label))
        preds.append(int(r.digits))
        inputs.append(r.inputs[0])
        probs.append(r.probabilities[0])
        multi.append(read_digits(path, model, multi=True).digits == str(label))
    return {
        "n": len(files),
        "accuracy": float(np.mean(single)),
        "accuracy_multi": float(np.mean(multi)),
        "per_source": accuracy_by(sources, single),
        "per_class": accuracy_by(labels, single),
        **scores(np.array(labels), np.stack(probs), np.array(single)),
        "misread": [
            {"file": p.name, "read": d}
            for p, d, ok in zip(files, preds, single, strict=True)
            if not ok
        ],
        "_inputs": np.stack(inputs),
        "_names": [f"{p.name[:12]} {d}" for p, d in zip(files, preds, strict=True)],
        "_ok": single,
        "_keys": [p.name for p in files],
        "_labels": np.array(labels),
        "_probs": np.stack(probs),
    }


def eval_scans(images: np.ndarray, labels: np.ndarray, model) -> dict:
    """Read each scan as one digit; a scan the pipeline cannot read counts as wrong."""
    x = np.zeros((len(images), 28, 28), np.float32)
    unread = np.zeros(len(images), bool)
    for i, im in enumerate(images):
        try:
            x[i] = preprocess(im)
        except ImageError:
            unread[i] = True
    return {**eval_inputs(x, labels, model, unread), "_scans": images}


def beside_scans(scans: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """(N, 28, 58) float: each scan (ink made bright, enlarged to 28x28 pixel by
    pixel) beside the network input made of it, so an error figure shows whether
    the scan or the reading of it went wrong."""
    big = [cv2.resize(s, (28, 28), interpolation=cv2.INTER_NEAREST) for s in scans]
    ink = 1.0 - np.stack(big).astype(np.float32) / 255
    gap = np.full((len(scans), 28, 2), 0.5, np.float32)
    return np.concatenate([ink, gap, inputs.reshape(-1, 28, 28)], axis=2)


def eval_inputs(
    x: np.ndarray, labels: np.ndarray, model, unread: np.ndarray | None = None
) -> dict:
    """Accuracy, per-class accuracy and :func:`scores` of (N, 28, 28) inputs."""
    unread = np.zeros(len(x), bool) if unread is None else unread
    x = as_read_by(model, x)  # deskewed for a model trained on deskewed digits
    probs = model.predict(x.reshape(len(x), *model.input_shape), batch_size=256)
    correct = (probs.argmax(axis=1) == labels) & ~unread
    return {
        "n": len(labels),
        "accuracy": float(np.mean(correct)),
        "unread": int(unread.sum()),
        "per_class": accuracy_by(labels.tolist(), list(correct)),
        **scores(labels, probs, correct),
        "_inputs": x,
        "_labels": labels,
        "_probs": probs,
        "_unread": unread,
    }


def members_errors(r: dict, members: list, names: list[str]) -> dict:
    """Each model of ``members`` alone on the network inputs of set result ``r``
    (read for the average): its errors, and the digits every model misreads."""
    unread = r.get("_unread", np.zeros(len(r["_labels"]), bool))
    wrong = []
    for member in members:
        x = as_read_by(member, r["_inputs"])
        probs = member.predict(x.reshape(len(x), *member.input_shape), batch_size=256)
        wrong.append((probs.argmax(axis=1) != r["_labels"]) | unread)
    by_all = np.flatnonzero(np.logical_and.reduce(wrong))
    keys = r.get("_keys", range(len(unread)))
    return {
        "members": [
            {"model": name, "errors": int(w.sum()), "accuracy": float(1 - w.mean())}
            for name, w in zip(names, wrong, strict=True)
        ],
        "misread_by_all": {
            "count": len(by_all),
            "which": [keys[int(i)] for i in by_all],
        },
    }


def eval_mnist(model) -> dict:
    """The trainer's validation split (seed 0, 5,000 images) and the test set; and
    the validation digits as tiny grey scans (dark on white) through the reader."""
    from tinynet.datasets import mnist
    from tinynet.training import split_validation

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    _, (x_val, y_val) = split_validation(
        x_train, y_train, 5000 / 60000, np.random.default_rng(0)
    )
    sets = {
        name: eval_inputs(x / np.float32(255), y.astype(np.int64), model)
        for name, (x, y) in (
            ("mnist_val", (x_val, y_val)),
            ("mnist_test", (x_test, y_test)),
        )
    }
    sets["mnist_val_scans"] = eval_scans(255 - x_val, y_val.astype(np.int64), model)
    return sets


def time_photo(photo: Path, model, runs: int) -> dict:
    """Median / max seconds from a 4000x3000 JPEG file to the answer."""
    big = cv2.resize(
        cv2.imread(str(photo)), (4000, 3000), interpolation=cv2.INTER_CUBIC
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo_4000x3000.jpg"
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
        read_digits(path, model)  # warm-up (first calls allocate, JIT, caches)
        times, stages = [], defaultdict(list)
        for _ in range(runs):
            t0 = time.perf_counter()
            reading = read_digits(path, model)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            image = load_image(path, max_side=1024)
            t1 = time.perf_counter()
            preprocess(image)
            stages["load"].append(t1 - t0)
            stages["preprocess"].append(time.perf_counter() - t1)
    return {
        "source": photo.name,
        "size": "4000x3000 JPEG q92",
        "blas_threads": blas_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "digits": reading.digits,
        "median_ms": 1000 * statistics.median(times),
        "max_ms": 1000 * max(times),
        "median_load_ms": 1000 * statistics.median(stages["load"]),
        "median_preprocess_ms": 1000 * statistics.median(stages["preprocess"]),
        "runs": runs,
    }


def contact_sheet(inputs: np.ndarray, names: list[str], ok: list[bool], path: str):
    cols, cell = 14, 84
    rows = -(-len(inputs) // cols)
    sheet = np.full((rows * (cell + 14), cols * cell, 3), 60, np.uint8)
    for i, (x, name, good) in enumerate(zip(inputs, names, ok, strict=True)):
        r, c = divmod(i, cols)
        tile = cv2.resize((x * 255).astype(np.uint8), (cell, cell), interpolation=0)
        sheet[r * (cell + 14) : r * (cell + 14) + cell, c * cell : (c + 1) * cell] = (
            tile[:, :, None]
        )
        colour = (0, 200, 0) if good else (0, 0, 255)
        org = (c * cell + 2, r * (cell + 14) + cell + 11)
        cv2.putText(sheet, name, org, cv2.FONT_HERSHEY_PLAIN, 0.7, colour, 1)
    cv2.imwrite(path, sheet)


def write_figures(sets: dict, folder: Path) -> list[Path]:
    """``errors_<set>.png`` per set and ``reliability.png``; returns the paths."""
    from tinynet import plots

    written = []
    for name, r in sets.items():
        path = folder / f"errors_{name}.png"
        shown = r["_inputs"]
        if "_scans" in r:
            shown = beside_scans(r["_scans"], shown)
        plots.plot_misclassified(
            shown,
            r["_labels"],
            r["_probs"].argmax(axis=1),
            path,
            probabilities=r["_probs"],
        )
        written.append(path)
    path = folder / "reliability.png"
    diagrams = {k: r["_diagram"] for k, r in sets.items()}
    plots.plot_reliability(diagrams, path, threshold=SURE_CONFIDENCE)
    return [*written, path]


def print_calibration(name: str, r: dict) -> None:
    ns = r["not_sure"]
    below = ns["accuracy_below"]
    print(
        f"  ECE {r['ece']:.4f}, NLL {r['nll']:.4f} (mean confidence "
        f"{r['mean_confidence']:.4f}); "
        f"not sure (< {ns['threshold']}): {100 * ns['fraction']:.1f}% of {name}, "
        f"{ns['errors_flagged']} of its {ns['errors']} errors"
        + (f", right {100 * below:.0f}% of the time" if below is not None else "")
    )


def print_report(res: dict) -> None:
    rd = res.get("realdigits")
    if rd:
        print(
            f"realdigits ({rd['n']} photos): {100 * rd['accuracy']:.1f}% as one digit, "
            f"{100 * rd['accuracy_multi']:.1f}% with segmentation (CLI default)"
        )
        for name, part in (("source", rd["per_source"]), ("class", rd["per_class"])):
            print(
                f"  per {name}: "
                + ", ".join(
                    f"{k} {100 * v['accuracy']:.0f}% ({v['n']})"
                    for k, v in part.items()
                )
            )
        if rd["misread"]:
            print(
                "  misread: "
                + ", ".join(f"{m['file']}->{m['read']}" for m in rd["misread"])
            )
        print_calibration("photos", rd)
    for key in ("usps", "semeion", "mnist_val", "mnist_test", "mnist_val_scans"):
        if key in res:
            r = res[key]
            what = {"mnist_val": "digits", "mnist_test": "digits"}.get(
                key, "scans 28x28" if key == "mnist_val_scans" else "scans 16x16"
            )
            print(
                f"{key} ({r['n']} {what}): {100 * r['accuracy']:.2f}% "
                f"({r['unread']} unreadable)"
            )
            print(
                "  per class: "
                + ", ".join(
                    f"{k} {100 * v['accuracy']:.1f}%" for k, v in r["per_class"].items()
                )
            )
            print_calibration(key, r)
    for key, r in res.items():
        if isinstance(r, dict) and "members" in r:
            alone = ", ".join(f"{m['model']} {m['errors']}" for m in r["members"])
            shared = r["misread_by_all"]
            print(
                f"{key}, errors of each model alone: {alone}; misread by all of "
                f"them: {shared['count']} ({100 * (1 - shared['count'] / r['n']):.2f}% "
                "read by at least one)"
            )
    if "timing" in res:
        t = res["timing"]
        print(
            f"4000x3000 JPEG, file to answer: median {t['median_ms']:.1f} ms, "
            f"max {t['max_ms']:.1f} ms over {t['runs']} runs "
            f"(load {t['median_load_ms']:.1f} ms, preprocess "
            f"{t['median_preprocess_ms']:.1f} ms; BLAS threads "
            f"{t['blas_threads']}, load average {t['load_average']})"
        )
    for path in res.get("figures", []):
        print(f"figure: {path}")
    for note in res.get("skipped", []):
        print(f"skipped: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        action="append",
        help="saved tinynet model (.npz); several: their probabilities averaged "
        "(default: the shipped reader)",
    )
    ap.add_argument("--data", help="realdigits folder")
    ap.add_argument("--usps", default=str(SHARED / "usps" / "zip.test.gz"))
    ap.add_argument("--semeion", default=str(SHARED / "semeion" / "semeion.data"))
    ap.add_argument("--timing-runs", type=int, default=20, help="0 to skip timing")
    ap.add_argument("--sheet", help="write the realdigits network inputs to this PNG")
    ap.add_argument(
        "--figures",
        type=Path,
        help="folder for errors_<set>.png (misread inputs) and reliability.png",
    )
    ap.add_argument(
        "--no-mnist",
        action="store_true",
        help="skip MNIST (the validation split and the test set)",
    )
    ap.add_argument(
        "--members",
        action="store_true",
        help="with several --model: also each model alone, and the digits that "
        "every one of them misreads",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.members and len(args.model or []) < 2:
        ap.error("--members needs two or more --model")
    # One image at a time, as `tinynet predict` reads them (see tinynet.threads).
    with single_threaded_blas(unless_user_chose=True):
        res = evaluate(args)
    if args.json:
        print(json.dumps(res))
    else:
        print_report(res)
    return 0


def evaluate(args: argparse.Namespace) -> dict:
    """Every evaluation whose data is present; a missing one is listed as skipped."""
    if args.model:
        from tinynet.ensemble import load_models

        model = load_models(args.model)
    else:
        from tinynet.vision import default_model

        model = default_model()

    res: dict = {"skipped": []}
    sets: dict = {}
    folder = realdigits_dir(args.data)
    if folder.is_dir():
        rd = eval_realdigits(folder, model)
        if args.sheet:
            contact_sheet(rd["_inputs"], rd["_names"], rd["_ok"], args.sheet)
        sets["realdigits"] = rd
        if args.timing_runs > 0:
            photo = max(realdigits_files(folder), key=lambda p: p.stat().st_size)
            res["timing"] = time_photo(photo, model, args.timing_runs)
    else:
        res["skipped"].append(f"realdigits: no folder {folder}")
    for key, loader in (("usps", load_usps), ("semeion", load_semeion)):
        path = Path(getattr(args, key))
        if path.is_file():
            sets[key] = eval_scans(*loader(path), model)
        else:
            res["skipped"].append(f"{key}: no file {path}")
    if not args.no_mnist:
        try:
            sets.update(eval_mnist(model))
        except (OSError, ValueError) as err:
            res["skipped"].append(f"mnist: {err}")
    if args.members:
        names = [Path(p).name for p in args.model]
        for r in sets.values():
            r.update(members_errors(r, list(model.members), names))
    if args.figures and sets:
        res["figures"] = [str(p) for p in write_figures(sets, args.figures)]
    for key, r in sets.items():  # the JSON keeps the figures, not the arrays
        res[key] = {k: v for k, v in r.items() if not k.startswith("_")}
    return res


if __name__ == "__main__":
    sys.exit(main())
