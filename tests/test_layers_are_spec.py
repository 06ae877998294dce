"""The two tiers stay apart: nothing in ``tinynet/layers/`` knows about the plan's
speed tricks (they live in ``tinynet/plan/`` and ``tinynet/kernels/``)."""

import re
from pathlib import Path

import tinynet.layers

SPEED_WORDS = re.compile(
    r"fuse|fused|fusion|winograd|batch_split|workspace|needs_input_grad", re.I
)


def test_layer_files_never_mention_the_fast_paths():
    folder = Path(tinynet.layers.__file__).parent
    hits = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(folder.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SPEED_WORDS.search(line)
    ]
    assert not hits, "\n".join(hits)
