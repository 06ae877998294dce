"""How a model runs: its layers grouped into steps. The only place speed lives.

``tinynet.layers`` is the specification: each layer's forward and backward is the
plain maths. A :class:`Plan` runs those layers in order, except where a composite
step runs neighbours at once, faster, with the same numbers and gradients
(``tests/test_plan.py`` checks every composite step against its layers in float64):

- :class:`ConvPool` (``conv_pool.py``): Conv2D (+ ReLU) then MaxPool2D(2), one
  convolution with the pool in its epilogue, by Winograd where it pays;
- :class:`ConvBNReLUPool` and :class:`ConvBNReLU` (``conv_bn_relu.py``): Conv2D
  then BatchNorm and ReLU (and MaxPool2D(2)), the batch statistics, normalisation,
  ReLU and pool in one pass over the conv output; BatchNorm folded into the
  convolution at inference;
- :class:`FewTapsConvBNReLU` (``few_taps_conv_bn_relu.py``): the same block when
  the convolution has few taps per output (a first layer on 1-channel images):
  the batch statistics and gradients from small products of its im2col rows,
  the convolution's output and its gradient never stored;
- :class:`DenseDropout` (``dense_dropout.py``): Dense(ReLU) then Dropout, the bias,
  ReLU and mask in one pass;
- :class:`Conv2DStep` (``conv2d.py``): any other Conv2D (+ ReLU), the ReLU in the
  convolution's epilogue and the im2col matrix kept between training steps;
- :class:`SoftmaxCrossEntropyStep` (``softmax_cross_entropy.py``) and
  :class:`SigmoidCrossEntropyStep`: the output activation and its loss as one
  gradient on the logits; :class:`LossStep` (``loss.py``) is their specification.

``Sequential(..., fuse=False)`` builds a plan of single-layer steps and the
specification's loss step: the layers alone, for learners, tests and debugging.
Adding a composite step is a new file here and one line in ``COMPOSITE_STEPS``.

Threading belongs here too. Every matrix product a fused plan makes is split by
the batch over threads (``tinynet.kernels.batch_split``: the convolutions, and the
Dense layers through ``tinynet.kernels.dense``), each share on single-threaded
BLAS, so a plan runs the BLAS single-threaded throughout: OpenBLAS's threads spin
for up to ~0.1 s after a multi-threaded call, and even the convnet's one small
Dense matmul between two splits left a spinning thread on the core the split
needed (classic convnet, 2 threads: 35.7 -> 19.6 ms per training step, median of
60). And OpenBLAS's numbers depend on its thread count, while a split's do not.

On a busy machine all threads can be slower than one: each call waits for the
thread whose core another process holds. The plan's :class:`ThreadGovernor`
(``governor.py``) times its calls and runs them on the calling thread alone
(:func:`tinynet.threads.on_calling_thread`) while that is faster; batches of
fewer than :data:`ONE_THREAD_BELOW` samples always run so. Either way the
numbers are the same: the splits keep their shares, which depend only on the
batch size and the thread count, and the BLAS runs on one thread at either width.
So a training run gives the same weights whatever the governor chose
(``Plan.governor.force`` pins the width).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..kernels import batch_split
from ..layers.base import Layer
from ..losses import Loss
from ..threads import on_calling_thread, single_threaded_blas
from .conv2d import Conv2DStep
from .conv_bn_relu import ConvBNReLU, ConvBNReLUPool
from .conv_pool import ConvPool
from .dense import DenseStep
from .dense_dropout import DenseDropout
from .few_taps_conv_bn_relu import FewTapsConvBNReLU
from .governor import ThreadGovernor
from .loss import LossStep
from .sigmoid_cross_entropy import SigmoidCrossEntropyStep
from .softmax_cross_entropy import SoftmaxCrossEntropyStep
from .step import LayerStep, Step

#: The composite steps a fused plan tries at each layer, in this order.
COMPOSITE_STEPS: tuple[type[Step], ...] = (
    ConvPool,
    ConvBNReLUPool,
    FewTapsConvBNReLU,
    ConvBNReLU,
    DenseDropout,
    DenseStep,
    Conv2DStep,
)

#: Batches smaller than this run on the calling thread alone: a second thread only
#: adds its wake-up time to such small work, and on a busy machine it collapses (a
#: one-image predict of the shipped CNN: 0.9 ms on one thread, 58 ms on two).
ONE_THREAD_BELOW = 8

#: The fused output activation + loss steps, tried in this order.
LOSS_STEPS: tuple[type[LossStep], ...] = (
    SoftmaxCrossEntropyStep,
    SigmoidCrossEntropyStep,
)


def group(layers: Sequence[Layer], fuse: bool = True) -> list[Step]:
    """The steps that run ``layers`` in order: a composite step wherever one
    matches (if ``fuse``), a :class:`LayerStep` elsewhere."""
    steps: list[Step] = []
    i = 0
    while i < len(layers):
        rest = layers[i:]
        kind = next((k for k in COMPOSITE_STEPS if fuse and k.matches(rest)), None)
        if kind is None:
            steps.append(LayerStep(layers[i]))
            i += 1
        else:
            steps.append(kind(*rest[: kind.span]))
            i += kind.span
    return steps


class Plan:
    """The steps that run a model's layers, and the loss step that ends training.

    Parameters
    ----------
    layers : the model's layers, in order.
    loss : the compiled loss, or None (the plan can then only run inference).
    fuse : use composite steps (True) or run every layer as its specification.

    Attributes
    ----------
    steps : list of Step, covering the layers in order (but an output activation
        the loss step takes over).
    loss_step : LossStep or None.
    first_trained : index of the first step with parameters; backward stops there
        and asks it for no input gradient.
    governor : ThreadGovernor, which chooses how many threads each call runs on.
    """

    def __init__(
        self, layers: Sequence[Layer], loss: Loss | None = None, *, fuse: bool = True
    ) -> None:
        self.fuse = fuse
        body = list(layers)
        self.loss_step: LossStep | None = None
        if loss is not None:
            last = body[-1]
            if type(last) is loss.output_activation:
                kinds = LOSS_STEPS if fuse else ()
                kind = next((k for k in kinds if k.matches(loss, last)), LossStep)
                self.loss_step = kind(loss, body.pop())
            else:
                self.loss_step = LossStep(loss)
        self.steps = group(body, fuse)
        self.first_trained = next(
            (i for i, step in enumerate(self.steps) if step.params), len(self.steps)
        )
        self.splits_batch = any(step.splits_batch for step in self.steps)
        self.governor = ThreadGovernor()

    @contextlib.contextmanager
    def threads(self, call: str, batch: int) -> Iterator[None]:
        """The threading every step of one ``call`` (``"forward"``, ``"train"``,
        ...) on ``batch`` samples runs under (module docstring)."""
        governor = self.governor
        if batch < ONE_THREAD_BELOW and governor.adaptive and governor.forced is None:
            with on_calling_thread():
                yield
            return
        # Batches of 128 to 255 samples (and so on) share a record, of seconds per
        # sample, so that a predict of any size learns from the ones before.
        key = (call, 1 << (batch.bit_length() - 1))
        width = self.governor.width(key)
        limit = on_calling_thread() if width == "one" else single_threaded_blas()
        start = time.perf_counter()
        with limit:
            yield
        self.governor.record(key, width, (time.perf_counter() - start) / batch)

    def forward(self, x: np.ndarray, *, training: bool = False) -> np.ndarray:
        """The model's output: x : (N, *input_shape) -> (N, *output_shape)."""
        with self.threads("training forward" if training else "forward", len(x)):
            for step in self.steps:
                x = step.forward(x, training=training)
            return x if self.loss_step is None else self.loss_step.activate(x)

    def loss_and_gradients(
        self,
        x: np.ndarray,
        target: Any,
        *,
        timings: dict[str, list[float]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> tuple[float, np.ndarray]:
        """Training forward, loss and backward on one batch: fills every layer's
        ``grads`` and returns the mean loss and what the loss step was given (the
        logits when it holds the output activation).

        ``timings``, if given, collects the seconds (by ``clock``) of each step's
        forward and backward and of the loss, under keys like ``"forward 0
        ConvPool"`` (``benchmarks`` use it to break a training step down).
        """
        loss_step = self._loss_step()

        def timed(
            what: str, i: int, kind: str
        ) -> contextlib.AbstractContextManager[None]:
            if timings is None:
                return contextlib.nullcontext()
            return _timer(timings, f"{what} {i} {kind}", clock)

        with self.threads("train", len(x)):
            out = x
            for i, step in enumerate(self.steps):
                with timed("forward", i, step.kind):
                    out = step.forward(out, training=True)
            with timed("loss", len(self.steps), type(loss_step).__name__):
                value, dout = loss_step.value_and_grad(out, target)
            for i in range(len(self.steps) - 1, self.first_trained - 1, -1):
                step = self.steps[i]
                with timed("backward", i, step.kind):
                    grad = step.backward(dout, need_dx=i > self.first_trained)
                if grad is not None:
                    dout = grad
        return value, out

    def evaluate(self, x: np.ndarray, target: Any) -> tuple[float, np.ndarray]:
        """The mean loss on one batch in inference mode, and what the loss step was
        given (as :meth:`loss_and_gradients`)."""
        loss_step = self._loss_step()
        with self.threads("evaluate", len(x)):
            out = x
            for step in self.steps:
                out = step.forward(out)
            return loss_step.value(out, target), out

    def _loss_step(self) -> LossStep:
        if self.loss_step is None:
            raise RuntimeError("the model has no loss: call model.compile(...) first")
        return self.loss_step

    def clear(self) -> None:
        """Drop every activation and workspace kept for backward."""
        for step in self.steps:
            step.clear()
        if self.loss_step is not None:
            self.loss_step.clear()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def describe(self) -> str:
        """One line per step, the loss step last, then the threading."""
        lines = [f"Plan (fuse={self.fuse}):"]
        lines += [f"  {i}. {step.describe()}" for i, step in enumerate(self.steps)]
        if self.loss_step is not None:
            lines.append(f"  {len(self.steps)}. {self.loss_step.describe()}")
        if self.splits_batch:
            lines.append(
                f"  Products split the batch over {batch_split.threads()} threads;"
                " the BLAS runs single-threaded."
            )
        lines.append(
            "  Each call runs on every thread or on one, whichever was faster lately"
            f" (one below {ONE_THREAD_BELOW} samples)."
        )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


@contextlib.contextmanager
def _timer(
    timings: dict[str, list[float]], key: str, clock: Callable[[], float]
) -> Iterator[None]:
    start = clock()
    yield
    timings.setdefault(key, []).append(clock() - start)


__all__ = [
    "COMPOSITE_STEPS",
    "LOSS_STEPS",
    "Conv2DStep",
    "ConvBNReLU",
    "ConvBNReLUPool",
    "ConvPool",
    "DenseDropout",
    "DenseStep",
    "FewTapsConvBNReLU",
    "LayerStep",
    "LossStep",
    "ONE_THREAD_BELOW",
    "Plan",
    "SigmoidCrossEntropyStep",
    "SoftmaxCrossEntropyStep",
    "Step",
    "ThreadGovernor",
    "group",
]
