"""The PyTorch training loop the benchmarks time: what ``fit`` does in tinynet and
Keras (shuffle each epoch, mini-batches, Adam, cross-entropy on logits), written out
because PyTorch has no ``fit``. Imports torch, never tinynet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def pin_threads(threads: int) -> None:
    """Intra- and inter-op thread pools of ``threads`` each (call before any work)."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def adam(net: nn.Module, learning_rate: float) -> torch.optim.Adam:
    """Adam with Keras' (and tinynet's) defaults: betas (0.9, 0.999), epsilon 1e-7.

    PyTorch adds epsilon to the bias-corrected sqrt(v), Keras to the uncorrected
    one; at 1e-7 the difference does not show in training.
    """
    return torch.optim.Adam(
        net.parameters(), lr=learning_rate, betas=(0.9, 0.999), eps=1e-7
    )


def train_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    learning_rate: Callable[[int], float] | None = None,
    step: int = 0,
    label_smoothing: float = 0.0,
) -> dict[str, Any]:
    """One pass over ``x : (N, ...)``, ``y : (N,)`` int64 in a fresh random order.

    ``learning_rate(step)``, when given, sets the rate before each step, counting
    from ``step``. Returns the mean loss and accuracy over the epoch and the step
    count after it.
    """
    net.train()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    order = torch.randperm(len(x), generator=generator)
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        xb, yb = x[index], y[index]
        if learning_rate is not None:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step)
        optimizer.zero_grad(set_to_none=True)
        logits = net(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        step += 1
        with torch.no_grad():
            total_loss += loss.detach() * len(index)
            correct += (logits.argmax(1) == yb).sum()
    return {
        "loss": float(total_loss) / len(x),
        "accuracy": float(correct) / len(x),
        "step": step,
    }


@torch.inference_mode()
def predict_logits(net: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Inference-mode logits of ``x`` in batches of ``batch_size``."""
    net.eval()
    return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> float:
    """Fraction of ``x`` whose arg-max logit is its label."""
    return float((predict_logits(net, x, batch_size).argmax(1) == y).double().mean())


def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """NumPy images (already NCHW for a conv net) and labels as torch tensors."""
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(
        y.astype(np.int64)
    )
