"""Train a network on MNIST, report how well it reads the test set, save it.

    python examples/mnist_train.py                       # the MLP, 20 epochs
    python examples/mnist_train.py --model cnn --augment --epochs 15 --out cnn.npz
    python examples/mnist_train.py --model speedrun --out s.npz  # ~99% in seconds
    python examples/mnist_train.py --dataset fashion --model classic_cnn  # clothes

Steps: load MNIST (local files or a verified download), train on the pixels read in
[0, 1] with a held-out validation set (none for a model with its own recipe, tinynet.
zoo.RECIPES: its recipe was chosen on one), calibrate the confidence on it (temperature
scaling), evaluate on the 10,000 test images in one pass, print per-class
precision/recall and the confusion matrix, draw plots if asked, save the model and check
that the saved file reproduces the first test predictions.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import ctypes.util
import gc
import shlex
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NoReturn

import numpy as np

import tinynet
from tinynet import metrics, optimizers, zoo
from tinynet.averaging import refresh_batchnorm
from tinynet.calibration import apply_temperature, calibrate, calibration_errors
from tinynet.callbacks import WeightAveraging
from tinynet.datasets import BY_NAME as DATASETS
from tinynet.deskew import MAX_SLANT, SLANT_MEASURES, Deskewed, deskew_pixels
from tinynet.training import read_inputs, split_validation

# --augment: the default affine and pen-width changes, plus digits stretched to fill
# their frame, writing conventions drawn by label and coarse scans (tinynet.augment).
# Gaps in the strokes (gap_prob) lowered the validation accuracy, so they are off.
AUGMENT = {"fill_prob": 0.15, "convention_prob": 0.5, "coarse_prob": 0.3}
DEFAULTS = {  # model -> (epochs, learning rate, schedule)
    "mlp": (20, 1e-3, "cosine"),
    "classic_cnn": (12, 2e-3, "cosine"),
    "cnn": (15, 2e-3, "cosine"),
    **{
        name: (recipe.epochs, recipe.peak_learning_rate, recipe.decay)
        for name, recipe in zoo.RECIPES.items()
    },
}


RELOAD_CHECK_IMAGES = 1000  # the saved model must reproduce these predictions
# The models read pixels in [0, 1]. The uint8 images stay as loaded and are scaled a
# batch at a time (input_scale), never copied whole as floats (188 MB for MNIST).
PIXEL_SCALE = 1 / 255
M_TOP_PAD = -2  # glibc's mallopt parameter (malloc.h)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(zoo.MODELS), default="mlp")
    p.add_argument(
        "--width",
        type=float,
        help="--model cnn only: multiply its channels (1.5: 48/96 channels, the wide "
        "CNN; default 1, or with --init the width of that file)",
    )
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="mnist",
        help="mnist: handwritten digits; fashion: Fashion-MNIST's photos of clothes",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="default: 20 mlp, 12 classic_cnn, 15 cnn, the recipe's for speedrun",
    )
    p.add_argument("--batch-size", type=int, help="default: 128, or the model's recipe")
    p.add_argument("--lr", type=float, help="peak learning rate (default per model)")
    p.add_argument(
        "--optimizer", default="adam", choices=["adam", "adamw", "sgd", "rmsprop"]
    )
    p.add_argument(
        "--schedule",
        choices=["constant", "cosine", "step"],
        help="cosine: one warm-up epoch then cosine decay per step; step: x0.3 every "
        "third of the epochs (default: cosine)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the validation split, shuffling, dropout, augmentation and (unless "
        "--weights-seed) the initial weights",
    )
    p.add_argument(
        "--weights-seed",
        type=int,
        help="seed of the initial weights alone, so that a second model starts "
        "elsewhere but holds out the same validation images (default: --seed)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="random shifts, rotations, scaling, slant and stroke-width changes on "
        "every training batch; for 15%% of images a stretch that makes the digit "
        "fill a square box (as scans 'to fit the frame' do); for half of the 1s, "
        "4s, 7s and 9s a writing convention (flag or foot on a 1, closed 4 or one "
        "with a high arm, crossed 7, g-like, curved or rho-like 9); for 30%% a "
        "coarse 8-16 px scan",
    )
    p.add_argument(
        "--elastic",
        type=float,
        default=0.0,
        metavar="P",
        help="with --augment, also distort this fraction of the digits elastically "
        "(a smooth random displacement field, Simard et al. 2003)",
    )
    p.add_argument(
        "--deskew",
        type=float,
        nargs="?",
        const=MAX_SLANT,
        metavar="S",
        help="shear every digit upright by its slant (tinynet.deskew), at "
        f"most S columns per row (default {MAX_SLANT}): training batches after "
        "augmentation, the validation and test images once; the saved model records "
        "it, so the digit readers deskew what they read",
    )
    p.add_argument(
        "--deskew-by",
        choices=SLANT_MEASURES,
        help="with --deskew, how the slant is measured: the ink's moments (default) "
        "or its near-vertical strokes alone (tinynet.deskew.slant)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="folder holding the data set's four IDX files (default: "
        "$TINYNET_DATA/mnist or fashion-mnist, then ~/.cache/tinynet/, then "
        "/usr/share/datasets/fashion-mnist for Fashion-MNIST, then download)",
    )
    p.add_argument(
        "--limit", type=int, help="train on the first N training images only"
    )
    p.add_argument(
        "--val-split",
        type=float,
        help="fraction of the training images held out for validation "
        "(default: 5,000 of 60,000; 0, training on all, for a model with a recipe "
        "chosen on that split: speedrun)",
    )
    p.add_argument(
        "--no-calibrate",
        action="store_true",
        help="do not fit a temperature on the validation images (by default the "
        "confidence is calibrated there; see tinynet.calibration)",
    )
    p.add_argument(
        "--init",
        type=Path,
        help="start from the weights of this saved model of the same --model "
        "(fine-tuning, e.g. with a new --augment recipe and a smaller --lr)",
    )
    p.add_argument(
        "--swa",
        type=int,
        metavar="N",
        help="stochastic weight averaging: keep the mean of the weights at the end "
        "of the last N epochs (best with --schedule constant), then recompute "
        "BatchNorm's statistics on the training images",
    )
    p.add_argument("--out", type=Path, help="where to save the model (.npz)")
    p.add_argument("--plots", type=Path, help="folder for PNG plots")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1])
    args = p.parse_args(argv)
    epochs, lr, schedule = DEFAULTS[args.model]
    args.epochs = args.epochs or epochs
    args.lr = args.lr or lr
    args.schedule = args.schedule or schedule
    recipe = zoo.RECIPES.get(args.model)
    if args.batch_size is None:
        args.batch_size = recipe.batch_size if recipe else 128
    if args.val_split is None:
        args.val_split = 0.0 if recipe else 5000 / 60000
    for name in ("epochs", "batch_size", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(
                f"--{name.replace('_', '-')} must be a positive integer, got {value}"
            )
    if args.swa is not None and not 1 <= args.swa <= args.epochs:
        p.error(f"--swa must be in [1, --epochs={args.epochs}], got {args.swa}")
    if args.augment and args.dataset != "mnist":
        p.error(
            "--augment draws handwriting (slants, pen strokes, digit shapes): "
            "it is for --dataset mnist only"
        )
    if args.width is not None and args.model != "cnn":
        p.error(f"--width is for --model cnn, not {args.model}")
    if args.width is not None and not args.width > 0:
        p.error(f"--width must be positive, got {args.width}")
    if args.elastic and not args.augment:
        p.error("--elastic adds to --augment: give both")
    if not 0 <= args.elastic <= 1:
        p.error(f"--elastic must be in [0, 1], got {args.elastic}")
    if args.deskew is not None and not 0 <= args.deskew < float("inf"):
        p.error(f"--deskew must be >= 0, got {args.deskew}")
    if args.deskew_by is not None and args.deskew is None:
        p.error("--deskew-by says how --deskew measures the slant: give both")
    if args.deskew is not None and args.dataset != "mnist":
        p.error("--deskew straightens handwriting: it is for --dataset mnist only")
    if not 0 <= args.val_split < 1:
        p.error(f"--val-split must be in [0, 1), got {args.val_split}")
    return args


def make_optimizer(
    args: argparse.Namespace, steps_per_epoch: int
) -> optimizers.Optimizer:
    total = args.epochs * steps_per_epoch
    recipe = zoo.RECIPES.get(args.model)
    if args.schedule == "cosine":
        warmup = recipe.warmup_steps if recipe else steps_per_epoch
        warmup = min(warmup, total // 2)
        lr = optimizers.CosineDecay(
            args.lr, decay_steps=total - warmup, warmup_steps=warmup
        )
    elif args.schedule == "step":
        lr = optimizers.StepDecay(
            args.lr, step_size=max(1, args.epochs // 3), gamma=0.3
        )
    else:
        lr = args.lr
    return optimizers.get(args.optimizer, learning_rate=lr)


def average_and_refresh(
    model: tinynet.Sequential,
    x_train: np.ndarray,
    y_train: np.ndarray,
    args: argparse.Namespace,
    augment: Callable[..., np.ndarray] | None,
) -> None:
    """After --swa: BatchNorm statistics for the averaged weights, from the images
    fit() trained on (not the held-out ones), augmented as in training."""
    rng = np.random.default_rng(args.seed)
    if args.val_split:
        (x_fit, y_fit), held_out = split_validation(
            x_train, y_train, args.val_split, rng
        )
    else:
        (x_fit, y_fit), held_out = (x_train, y_train), None
    x_fit = read_inputs(x_fit, PIXEL_SCALE, model.dtype)
    if augment is not None:
        x_fit = augment(x_fit, rng, y_fit)
    refresh_batchnorm(model, x_fit)
    print(
        f"\nweights averaged over the last {args.swa} epochs; BatchNorm statistics "
        f"recomputed on {len(x_fit):,} training images"
        + (", augmented" if args.augment else "")
    )
    if held_out is not None:
        scores = model.evaluate(*held_out, input_scale=PIXEL_SCALE)
        print(f"validation accuracy {scores['accuracy']:.4f}")


def deskew_held_out(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    args: argparse.Namespace,
    max_slant: float,
    by: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels with the images that are read as they are, not augmented first,
    deskewed once: the test set and the validation images fit() will hold out (the
    same split_validation call it makes). The training images stay as written:
    each batch is deskewed after its augmentation (Deskewed)."""
    if args.val_split:
        index = np.arange(len(x_train))
        _, (held_out, _) = split_validation(
            index, y_train, args.val_split, np.random.default_rng(args.seed)
        )
        x_train = x_train.copy()
        x_train[held_out] = deskew_pixels(x_train[held_out], max_slant, by=by)
    return x_train, deskew_pixels(x_test, max_slant, by=by)


def calibrate_on_validation(
    model: tinynet.Sequential,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    args: argparse.Namespace,
) -> None:
    """Fit a temperature on the images fit() held out and fold it into the model."""
    # The same call fit(validation_split=..., seed=...) made, so the same images.
    _, (x_val, y_val) = split_validation(
        x_train, y_train, args.val_split, np.random.default_rng(args.seed)
    )
    sets = {
        "validation": (read_inputs(x_val, PIXEL_SCALE, model.dtype), y_val),
        "test": (read_inputs(x_test, PIXEL_SCALE, model.dtype), y_test),
    }
    before = calibration_errors(model, sets)
    try:
        temperature = calibrate(model, *sets["validation"])
    except ValueError as err:  # e.g. a tiny validation set read without an error
        print(f"\nnot calibrated: {err}")
        return
    after = calibration_errors(model, sets)
    model.metadata["calibration_ece"] = {k: [before[k], after[k]] for k in sets}
    print(
        f"\ncalibrated: temperature {temperature:.3f}; expected calibration error "
        + ", ".join(f"{k} {before[k]:.4f} -> {after[k]:.4f}" for k in sets)
    )


def load_kernels_in_background(
    model: tinynet.Sequential, optimizer: str, loss: object
) -> threading.Thread:
    """Start a thread that runs a training step and a prediction of a copy of
    ``model`` on a few random images, on one thread: Numba then loads every kernel
    they call from its cache (~0.3 s for the speedrun net) while the caller loads
    the data. ``model`` itself is untouched (weights, generator).

    Not a daemon: the interpreter waits for it before shutting down, so a run that
    stops early (a damaged data file) cannot exit while the thread is inside
    Numba's loader, which crashed such a run with SIGSEGV."""
    twin = copy.deepcopy(model)
    twin.compile(optimizers.get(optimizer), loss)
    twin.plan.governor.force("one")
    rng = np.random.default_rng(0)
    x = rng.random((16, *model.input_shape)).astype(model.dtype)
    y = np.arange(len(x)) % model.output_shape[-1]

    def run() -> None:
        twin.train_step(x, y)
        twin.predict(x)

    thread = threading.Thread(target=run, name="load kernels")
    thread.start()
    return thread


def keep_freed_memory() -> None:
    """Ask glibc's allocator to keep 64 MB of freed heap memory for the next
    allocations instead of handing it back to the OS at once. The model allocates
    each batch's activations afresh; memory handed back and taken again is
    page-faulted anew, and whether that happens depends on where earlier arrays
    landed: one pass over the test set took 600 or 30,000 page faults (+0.1 s)
    from run to run. Does nothing where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_TOP_PAD, 64 << 20)
    except (OSError, AttributeError, TypeError):  # not glibc: no mallopt
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()
    dataset = DATASETS[args.dataset]
    weights_seed = args.seed if args.weights_seed is None else args.weights_seed
    start = None
    if args.init:
        try:
            start = tinynet.load_model(args.init)
        except (OSError, ValueError, TypeError) as err:
            print(f"error: --init {args.init}: {err}", file=sys.stderr)
            return 2
    build: dict[str, float] = {}
    if args.model == "cnn":
        # A --init file of the CNN says its own width; --width, if given, must agree.
        build["width"] = args.width or 1.0
        if start is not None:
            try:
                file_width = zoo.cnn_width(start)
            except ValueError as err:
                print(f"error: --init {args.init}: {err}", file=sys.stderr)
                return 2
            if args.width is not None and args.width != file_width:
                print(
                    f"error: --init {args.init} holds a CNN of width {file_width:g} "
                    f"({start.name}), not --width {args.width:g}",
                    file=sys.stderr,
                )
                return 2
            build["width"] = file_width
    model = zoo.MODELS[args.model](seed=weights_seed, **build)
    recipe = zoo.RECIPES.get(args.model)
    loss = recipe.make_loss() if recipe else "cross_entropy"
    kernels_loaded = load_kernels_in_background(model, args.optimizer, loss)
    try:
        (x_train, y_train), (x_test, y_test) = dataset.load_data(args.data_dir)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    init_metadata = None
    if start is not None:
        try:
            init_metadata = dict(start.metadata)  # how the starting weights were made
            # Train the network's own logits: a calibrated start's temperature is
            # undone, and calibration after training fits a new one.
            if "temperature" in start.metadata:
                apply_temperature(start, 1 / start.metadata["temperature"])
            model.set_weights(start.get_weights())
        except (ValueError, TypeError) as err:  # weights that do not fit
            print(f"error: --init {args.init}: {err}", file=sys.stderr)
            return 2
    shape = (-1, *model.input_shape)
    x_train, x_test = x_train.reshape(shape), x_test.reshape(shape)  # uint8 pixels
    deskewing, deskew_by = args.deskew, args.deskew_by or "moments"
    if init_metadata is not None and "deskew" in init_metadata:
        # A model that reads deskewed digits is fine-tuned on deskewed digits.
        recorded = (init_metadata["deskew"], init_metadata.get("deskew_by", "moments"))
        if deskewing is not None and (deskewing, deskew_by) != recorded:
            print(
                f"error: --init {args.init} reads digits deskewed with at most "
                f"{recorded[0]:g} by {recorded[1]}, not --deskew {deskewing:g} "
                f"by {deskew_by}",
                file=sys.stderr,
            )
            return 2
        deskewing, deskew_by = recorded
    if deskewing is not None:
        x_train, x_test = deskew_held_out(
            x_train, y_train, x_test, args, deskewing, deskew_by
        )

    n_val = int(round(len(x_train) * args.val_split))
    steps = -(-(len(x_train) - n_val) // args.batch_size)
    model.compile(make_optimizer(args, steps), loss, metrics=["accuracy"])
    model.summary()
    print(
        f"training on {len(x_train) - n_val:,} images, validating on {n_val:,}; "
        f"{args.epochs} epochs of {steps} steps; {args.optimizer} lr {args.lr} "
        f"({args.schedule}){'; augmented' if args.augment else ''}"
        + (
            f"; deskewed by {deskew_by} (slant <= {deskewing:g})"
            if deskewing is not None
            else ""
        )
    )

    augment = None
    if args.augment:
        from tinynet.augment import Augmenter  # OpenCV only when augmenting

        augment = Augmenter(**AUGMENT, elastic_prob=args.elastic)
    if deskewing is not None:
        # What the network sees is upright, as the readers give it.
        augment = Deskewed(augment, deskewing, deskew_by)
    kernels_loaded.join()
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.val_split,
        seed=args.seed,
        verbose=args.verbose,
        augment=augment,
        callbacks=[WeightAveraging(args.epochs - args.swa)] if args.swa else [],
        input_scale=PIXEL_SCALE,
    )
    if args.swa:
        average_and_refresh(model, x_train, y_train, args, augment)
    train_seconds = time.perf_counter() - started
    if not all(np.isfinite(w).all() for w in model.get_weights().values()):
        kept = f"; {args.out} was not written" if args.out else ""
        print(
            f"error: training diverged, the weights are not finite{kept}",
            file=sys.stderr,
        )
        return 1
    if n_val and not args.no_calibrate:
        calibrate_on_validation(model, x_train, y_train, x_test, y_test, args)

    # One pass over the test set: accuracy, loss and the report all come from it.
    probs = model.predict(x_test, input_scale=PIXEL_SCALE)
    y_pred = probs.argmax(axis=1)
    result = {
        "accuracy": metrics.accuracy(y_test, y_pred),
        "loss": model.loss.on_probabilities(probs, y_test)[0],  # as evaluate() does
    }
    names = dataset.class_names
    cm = metrics.confusion_matrix(y_test, y_pred, num_classes=len(names))
    print(
        f"\ntrained in {train_seconds:.1f} s "
        f"({train_seconds / len(history.epoch):.1f} s/epoch)"
    )
    # On how many threads the calls ran, and why (tinynet.plan.governor).
    print("threads: " + "; ".join(model.plan.governor.describe().splitlines()))
    print(f"test accuracy {result['accuracy']:.4f}, test loss {result['loss']:.4f}\n")
    print(metrics.classification_report(y_test, y_pred, names))
    print("confusion matrix (rows: true class, columns: predicted)")
    print(metrics.format_confusion_matrix(cm, names))

    if args.plots:
        from tinynet import plots  # matplotlib only when plotting

        args.plots.mkdir(parents=True, exist_ok=True)
        wrong = np.flatnonzero(y_pred != y_test)
        curves, matrix, mistakes = (
            args.plots / name
            for name in (
                "learning_curves.png",
                "confusion_matrix.png",
                "misclassified.png",
            )
        )
        history.plot(curves)
        plots.plot_confusion_matrix(cm, matrix, labels=names)
        plots.plot_misclassified(
            x_test[wrong].reshape(-1, 28, 28),
            y_test[wrong],
            y_pred[wrong],
            mistakes,
            probabilities=probs[wrong],
            labels=names,
        )
        print(f"\nplots: {curves}, {matrix}, {mistakes}")

    if args.out:
        command = "python examples/mnist_train.py " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        try:
            model.save(
                args.out,
                command=command,
                seed=args.seed,
                val_split=args.val_split,
                **({"init": init_metadata} if args.init else {}),
                test_accuracy=result["accuracy"],
                test_loss=result["loss"],
                train_seconds=round(train_seconds, 2),
                date=date.today().isoformat(),
                tinynet_version=tinynet.__version__,
                dataset=dataset.name,
                **({"width": build["width"]} if build else {}),
                **(
                    {"deskew": deskewing, "deskew_by": deskew_by}
                    if deskewing is not None
                    else {}
                ),
                class_names=list(names),
            )
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        reloaded = tinynet.load_model(args.out)
        checked = slice(0, RELOAD_CHECK_IMAGES)
        same = np.array_equal(
            reloaded.predict(x_test[checked], input_scale=PIXEL_SCALE).argmax(axis=1),
            y_pred[checked],
        )
        print(
            f"\nsaved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); reloaded "
            f"model {'gives identical' if same else 'DIFFERS in its'} test predictions "
            f"(first {len(y_pred[checked]):,} images)"
        )
        if not same:
            return 1
    return 0


def exit_fast(status: int) -> NoReturn:
    """Exit with ``status``, leaving the ~100k objects Numba and LLVM made to the
    OS: the interpreter's last collection would visit and free them one by one
    (0.2-0.4 s of a speedrun)."""
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    exit_fast(main())
