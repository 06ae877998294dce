"""Read handwritten digits from photos or scans with tinynet's pretrained MNIST model.

    python examples/mnist_predict.py IMAGE [IMAGE ...] [--model PATH] [--single]
                                     [--plot OUT.png] [--json]

For each image it prints the digit(s) read, the confidence of each and its three
likeliest classes. The image may hold one digit or a written number / rows of digits
(read left to right, top to bottom); ``--single`` reads all the ink as one digit.

``--json`` prints one JSON object per image and line:
``{"file", "digits": "42", "confidence": [...], "probabilities": [[10 floats], ...],
"top3": [[[digit, p], ...], ...], "error": null}``; for an image that failed,
``"digits"`` is null and ``"error"`` says why.

``--plot OUT.png`` draws the original, the 28x28 input(s) the network saw and the
probabilities: to OUT.png for one image, to OUT_<image stem>.png for each of several.

Exit status: 0 when every image was read, 1 when at least one failed (the others are
still read), 2 for a usage error or a model that cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# One small image at a time: BLAS threads only add synchronisation. On a busy 2-core
# machine the shipped CNN's predict on one 28x28 input took 40 ms with two OpenBLAS
# threads and 0.7 ms with one. Set before NumPy loads; the environment can override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402

from tinynet.vision import ImageError, error_dict, read_digits  # noqa: E402


def plot_paths(out: Path, images: list[str]) -> list[Path]:
    """OUT.png for one image; OUT_<stem>.png per image (made unique) for several."""
    if len(images) == 1:
        return [out]
    paths, seen = [], set()
    for image in images:
        stem = Path(image).stem or "image"
        candidate, n = stem, 2
        while candidate in seen:
            candidate, n = f"{stem}_{n}", n + 1
        seen.add(candidate)
        paths.append(out.with_name(f"{out.stem}_{candidate}{out.suffix or '.png'}"))
    return paths


def describe(file: str, reading) -> str:
    """Human-readable lines for one reading."""
    top3 = reading.top3()

    def fmt(row):
        return ", ".join(f"{d} {p:.3f}" for d, p in row)

    conf = " ".join(f"{c:.3f}" for c in reading.confidence)
    if len(reading.digits) == 1:
        return f"{file}: {reading.digits}  confidence {conf}  top-3: {fmt(top3[0])}"
    lines = [f"{file}: {reading.digits}  confidence {conf}"]
    for i, (d, c, row) in enumerate(
        zip(reading.digits, reading.confidence, top3, strict=True), 1
    ):
        lines.append(f"  digit {i}: {d} ({c:.3f})  top-3: {fmt(row)}")
    return "\n".join(lines)


def load_model(path: str | None):
    if path is None:
        from tinynet.vision import default_model

        return default_model()
    from tinynet.saving import load_model as load

    return load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Read handwritten digits from photos or scans."
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument(
        "--model", help="a saved tinynet model (.npz); default: shipped"
    )
    parser.add_argument("--single", action="store_true", help="each image is one digit")
    parser.add_argument("--plot", metavar="OUT.png", help="write a figure per image")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)

    try:
        model = load_model(args.model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        where = args.model or "the pretrained model"
        print(f"error: cannot load {where}: {exc}", file=sys.stderr)
        return 2

    plots = plot_paths(Path(args.plot), args.images) if args.plot else None
    failed = 0
    for i, file in enumerate(args.images):
        try:
            reading = read_digits(file, model, multi=not args.single)
        except (ImageError, cv2.error) as exc:
            failed += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, cv2.error):
                message = f"{file}: OpenCV could not process the image"
            if args.json:
                print(json.dumps(error_dict(file, message)), flush=True)
            else:
                print(f"error: {message}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(reading.to_dict(file)), flush=True)
        else:
            print(describe(file, reading), flush=True)
        if plots is not None:
            from tinynet.plots import plot_prediction

            plot_prediction(
                reading.image,
                reading.inputs,
                reading.probabilities,
                plots[i],
                digits=list(reading.digits),
            )
            if not args.json:
                print(f"  figure: {plots[i]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
