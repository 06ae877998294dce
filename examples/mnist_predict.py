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
import sys

from tinynet.saving import load_model
from tinynet.threads import single_threaded_blas
from tinynet.vision import default_model
from tinynet.vision.report import figure_paths, read_and_report


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
        model = default_model() if args.model is None else load_model(args.model)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        where = args.model or "the pretrained model"
        print(f"error: cannot load {where}: {exc}", file=sys.stderr)
        return 2

    # Reads each image, prints its digits (or one error line) and draws its figure.
    # One small image at a time: a second BLAS thread would only add wake-ups.
    with single_threaded_blas(unless_user_chose=True):
        failed = read_and_report(
            args.images,
            model,
            single=args.single,
            as_json=args.json,
            plot_paths=figure_paths(args.plot, args.images) if args.plot else None,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C: one line, not a traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)
