"""The ``tinynet`` command.

    tinynet serve [--model PATH ...] [--host 127.0.0.1] [--port 8000]
    tinynet predict IMAGE [IMAGE ...] [--model PATH ...] [--single] [--json]
    tinynet export MODEL OUT [--opset N]
    tinynet calibrate MODEL --out FILE [--val-split F] [--seed N] [--data-dir DIR]

``serve`` starts the local digit-reader page and JSON API (:mod:`tinynet.server`);
``predict`` reads digits from image files like ``examples/mnist_predict.py``, through
the same :func:`tinynet.vision.read_digits`. Both use the shipped reader
(:func:`tinynet.pretrained.load_reader`) unless ``--model`` names a saved tinynet
model (.npz); ``--model`` given several times averages those models' probabilities
(:class:`tinynet.ensemble.Ensemble`). ``export`` converts a model between tinynet
(.npz), ONNX (.onnx) and Keras (.keras) files (:mod:`tinynet.interop.convert`).
``calibrate`` fits a temperature to an MNIST model on the validation images
``examples/mnist_train.py`` held out and folds it into the model
(:mod:`tinynet.calibration`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

from .threads import single_threaded_blas

MODEL_HELP = (
    "saved tinynet model (.npz); give it several times to average the models' "
    "probabilities (default: the shipped reader)"
)


def _load_model(paths: list[str] | None) -> Any:
    """The shipped reader, one saved model, or several averaged."""
    if not paths:
        from .pretrained import load_reader

        return load_reader("mnist")
    from .ensemble import load_models

    return load_models(paths)


def _model_names(paths: list[str] | None) -> str:
    return ", ".join(paths) if paths else "the pretrained model"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0-65535, got {port}")
    return port


def _megabytes(text: str) -> float:
    try:
        mb = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not mb > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return mb


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinynet",
        description="tinynet: read handwritten digits with a NumPy neural network.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="start the local digit-reader web page and JSON API",
        description="Start a local web server: a page to draw a digit or drop in a "
        "photo and see what the network reads, and POST /api/predict for scripts "
        "(send the image file as the request body). Uploads stay in memory.",
    )
    serve.add_argument("--model", metavar="PATH", action="append", help=MODEL_HELP)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="port (default 8000; 0 picks a free one)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_megabytes,
        default=16.0,
        help="largest accepted upload in MB (default 16)",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log requests")

    predict = sub.add_parser(
        "predict",
        help="read the digits in image files",
        description="Read the digit(s) in each image (photos or scans; a number is "
        "read left to right, rows top to bottom). Exit status 1 if an image failed.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", metavar="PATH", action="append", help=MODEL_HELP)
    predict.add_argument(
        "--single", action="store_true", help="each image shows one digit"
    )
    predict.add_argument(
        "--json", action="store_true", help="one JSON object per image and line"
    )
    _add_export_parser(sub)
    _add_calibrate_parser(sub)
    return parser


def _add_export_parser(sub: Any) -> None:
    export = sub.add_parser(
        "export",
        help="convert a model to ONNX or Keras (or a Keras model to tinynet)",
        description="Convert MODEL (a tinynet .npz or a Keras .keras file) to OUT; "
        "the suffix of OUT chooses the format: .onnx (ONNX, for onnxruntime and "
        "other runtimes), .keras (Keras 3) or .npz (tinynet).",
    )
    export.add_argument("model", metavar="MODEL", help="a .npz or .keras model")
    export.add_argument("out", metavar="OUT", help="the .onnx, .keras or .npz to write")
    export.add_argument(
        "--opset",
        type=int,
        metavar="N",
        help="ONNX operator set, 13 or newer (default 17, which most runtimes read)",
    )


def _add_calibrate_parser(sub: Any) -> None:
    calibrate = sub.add_parser(
        "calibrate",
        help="calibrate an MNIST model's confidence (temperature scaling)",
        description="Fit a temperature to MODEL on the MNIST validation images that "
        "`examples/mnist_train.py --val-split F --seed N` held out (the same random "
        "split as fit(validation_split=F, seed=N)), fold it into the last Dense "
        "layer and save the result to OUT. Prints the expected calibration error "
        "before and after on those images and on the test set.",
    )
    calibrate.add_argument("model", metavar="MODEL", help="a tinynet .npz model")
    calibrate.add_argument(
        "--out", required=True, metavar="FILE", help="the calibrated .npz to write"
    )
    calibrate.add_argument(
        "--val-split",
        type=float,
        metavar="F",
        help="fraction held out by the training run (default: the 'val_split' the "
        "model file records, else 5,000 of 60,000)",
    )
    calibrate.add_argument(
        "--seed",
        type=int,
        help="the training run's seed (default: the 'seed' the file records, else 0)",
    )
    calibrate.add_argument(
        "--data-dir", metavar="DIR", help="folder holding the four MNIST files"
    )


def _calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .calibration import calibrate, calibration_errors, softmax_dense
    from .datasets import mnist
    from .deskew import as_read_by
    from .saving import load_model
    from .training import split_validation

    try:
        model = load_model(args.model)
        try:
            softmax_dense(model)  # a model it cannot calibrate is refused first
        except ValueError as exc:
            raise ValueError(f"{args.model}: {exc}") from None
        recorded = model.metadata  # what examples/mnist_train.py saved
        if args.val_split is None:
            args.val_split = float(recorded.get("val_split", 5000 / 60000))
        if args.seed is None:
            args.seed = int(recorded.get("seed", 0))
        if not 0 < args.val_split < 1:
            raise ValueError(f"--val-split must be in (0, 1), got {args.val_split}")
        (x_train, y_train), (x_test, y_test) = mnist.load_data(args.data_dir)
        shape = (-1, *model.input_shape)
        x_train = (x_train / np.float32(255)).reshape(shape)
        x_test = (x_test / np.float32(255)).reshape(shape)
        _, (x_val, y_val) = split_validation(
            x_train, y_train, args.val_split, np.random.default_rng(args.seed)
        )
        # As the model reads digits: deskewed if it was trained on deskewed ones.
        held_out = (as_read_by(model, x_val), y_val)
        sets = {"validation": held_out, "test": (as_read_by(model, x_test), y_test)}
        before = calibration_errors(model, sets)
        temperature = calibrate(model, *held_out)
        after = calibration_errors(model, sets)
        model.metadata["calibration_ece"] = {k: [before[k], after[k]] for k in sets}
        model.metadata["calibrated_on"] = (
            f"{len(held_out[1])} MNIST training images held out with "
            f"--val-split {args.val_split:.6g} --seed {args.seed}"
        )
        model.save(args.out)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(f"tinynet calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"temperature {temperature:.4f} (fitted on {len(held_out[1]):,} images)")
    for name in sets:
        print(f"ECE {name}: {before[name]:.4f} -> {after[name]:.4f}")
    print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .deskew import DeskewNotExported
    from .interop.convert import convert

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeskewNotExported)
            convert(args.model, args.out, opset=args.opset)
    except (ImportError, OSError, ValueError, TypeError) as exc:
        print(f"tinynet export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    for note in caught:
        if issubclass(note.category, DeskewNotExported):
            print(f"tinynet export: note: {note.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(
                note.message, note.category, note.filename, note.lineno
            )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server import run

    try:
        model = _load_model(args.model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(
            f"tinynet serve: cannot load {_model_names(args.model)}: {exc}",
            file=sys.stderr,
        )
        return 2
    try:
        run(
            model,
            args.host,
            args.port,
            max_upload_bytes=int(args.max_upload_mb * 2**20),
            quiet=args.quiet,
        )
    except OSError as exc:
        print(
            f"tinynet serve: cannot listen on {args.host}:{args.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .vision.report import read_and_report

    try:
        model = _load_model(args.model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        print(
            f"tinynet predict: cannot load {_model_names(args.model)}: {exc}",
            file=sys.stderr,
        )
        return 2
    failed = read_and_report(args.images, model, single=args.single, as_json=args.json)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tinynet`` console script; returns the exit status.

    ``predict`` and ``serve`` read one image at a time, so the BLAS runs on one
    thread (see :mod:`tinynet.threads`) unless the user set its thread count.
    """
    args = build_parser().parse_args(argv)
    try:
        with single_threaded_blas(unless_user_chose=True):
            if args.command == "serve":
                return _serve(args)
            if args.command == "export":
                return _export(args)
            if args.command == "calibrate":
                return _calibrate(args)
            return _predict(args)
    except KeyboardInterrupt:
        print(f"tinynet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tinynet predict *.png | head -1`
        # Python would complain again when flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
