"""tinynet vs Keras only: ``compare.py --frameworks keras,tinynet`` writing the files
the README's earlier figures came from, ``results/keras_compare.json`` and
``keras_compare.png``. Takes every option of ``compare.py``; see its help."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import compare  # noqa: E402

if __name__ == "__main__":
    defaults = ["--frameworks", "keras,tinynet"]
    if (
        "--dataset" not in sys.argv
    ):  # Fashion-MNIST keeps compare.py's fashion_compare.*
        defaults += ["--json", str(HERE / "results" / "keras_compare.json")]
        defaults += ["--png", str(HERE / "results" / "keras_compare.png")]
    # Later options win in argparse, so the user's own choices override these.
    compare.main([*defaults, *sys.argv[1:]], script="keras_compare.py")
