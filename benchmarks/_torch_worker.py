"""PyTorch side of ``compare.py``: train, time and measure one model, write JSON.

Run by the orchestrator in its own process with the thread variables set (see
``_compare_common.thread_env``). The model is tinynet's zoo model translated layer
by layer (``_torch_models``), initialised as Keras initialises (Glorot-uniform
kernels, zero biases) from ``torch.manual_seed(seed)``, trained on logits with
``CrossEntropyLoss`` (the fused softmax cross-entropy tinynet uses too).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# Run as a script: its own folder is on sys.path, so the sibling modules import.
import _common
import _compare_common as cc
import _torch_models as tm
import _torch_train as tt


def run_benchmark(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.manual_seed(args.seed)
    spec = tm.torch_spec(cc.tinynet_model(args.model, seed=args.seed))
    net, _ = tm.logits_model(tm.build_torch(spec))
    x, y, xt, yt = cc.load_images(args.model, args.limit, args.test_limit, args.dataset)
    x, y = tt.tensors(tm.nchw(x), y)
    xt, yt = tt.tensors(tm.nchw(xt), yt)
    optimizer = tt.adam(net, 1e-3)
    generator = torch.Generator().manual_seed(args.seed)

    times, losses, accuracies = [], [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        epoch = tt.train_epoch(
            net, optimizer, x, y, batch_size=args.batch_size, generator=generator
        )
        times.append(time.perf_counter() - t0)
        losses.append(epoch["loss"])
        accuracies.append(epoch["accuracy"])
    result = _common.epoch_summary(times, len(x))
    result["train_loss"] = losses
    result["train_accuracy"] = accuracies
    result["test_accuracy"] = tt.accuracy(net, xt, yt, args.predict_batch)

    one_array = xt[:1].numpy()

    def predict_one() -> np.ndarray:
        # What a user's predict does: array in, probabilities out.
        with torch.inference_mode():
            net.eval()
            return torch.softmax(net(torch.from_numpy(one_array)), 1).numpy()

    def call_one() -> torch.Tensor:
        with torch.inference_mode():
            return net(xt[:1])

    result |= cc.inference_timings(
        predict_one,
        call_one,
        lambda: tt.predict_logits(net, xt, args.predict_batch),
        len(xt),
        latency_repeat=args.latency_repeat,
    )
    result["versions"] = {"torch": torch.__version__, "numpy": np.__version__}
    result["settings"] = {
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    cc.add_worker_args(parser)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    tt.pin_threads(args.threads)
    result = run_benchmark(args)
    result["framework"] = "pytorch"
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
