"""Whether a plan's next call runs on every thread or on the calling thread alone.

On a quiet machine a plan runs wide: its products split by the batch over every
thread (``tinynet.kernels.batch_split``). (Before the Dense layers split too, an
MLP's products ran on OpenBLAS's own threads; the figures below are of those.) When
another process holds one of the cores, each wide call waits for the thread that
shares that core. OpenBLAS hands every matmul to its threads, returns when the
slowest is done, and its idle threads spin meanwhile: with the machine
oversubscribed (load 10-14 on 2 cores), an MLP epoch on two BLAS threads burnt 28-44 s
of CPU time against 3-9 s on one, and took 4-8x as long. A batch split's threads
sleep while they wait (the convnet's CPU time was the same at either width); it
waits for its slowest share. With a busy loop on one of two cores an MLP epoch took
4-5x its quiet time, the convnet's 1.4-1.6x (issue 14).

No cheap signal says which width is faster now: the load average trails by a
minute, and ``os.sched_getaffinity`` only says which cores the process may use, not
who else uses them. So the governor measures. For each kind of call (a training
step at one batch size, an inference batch, ...) it keeps the width that was
fastest, watches how long its calls take, and now and then runs a few calls at the
other width; the faster one stays. The first ``warmup`` calls of a kind are not
timed: they pay once for what later calls reuse (first-touch page faults of new
buffers, the other threads' start, cold caches). The speedrun's first training
step took 1.5-3.5x as long as the steps after it (13-35 ms against 7-13 ms, on a
machine shared with other jobs); in one run the first four were slow, filled half
the window, and the first trial of one thread came within 2% of taking over. A trial
comes early, after ``first_trial`` timed calls, then at intervals that grow
``growth`` times while the width holds (up to ``max_interval`` calls), and at
once when the calls grow ``slowdown`` times slower than the width's best median
(another process has just started). On one thread the intervals stop growing
sooner (``max_interval_on_one``): when the other process ends, nothing slows
down, so only a trial finds out, and until then every call takes 1.5-2x its time
on all threads. A trial whose first call is slower than every recent call at the
current width ends there: on a quiet machine a training step on one thread takes
1.5-2x its time on two, so each trial call costs most of a step.

On a quiet machine the governor costs only those trial calls: with the defaults, 3
of the first 469 training steps and then 1 in 513 (``tests/test_governor.py``),
about 0.4% of a first epoch and 0.1% of the later ones; a noisy machine's passing
slowdowns start a few more (9-17 of 2003 MLP steps on the quiet 2-core VM). Its
bookkeeping takes ~1.6 us a call. Measured there (2026-12-04), against every call
on all threads: the mean training step 0.99-1.02x (MLP) and 0.97-1.02x (classic
convnet) over five interleaved runs of 2,000 steps each
(``benchmarks/interleaved_steps.py --width auto,all . .``); quarter-epochs of
``fit`` back to back, 1.01x for both, where the fixed width against itself came out
0.99x and 1.01x (``benchmarks/contention.py --control``, 12 pairs). Nothing to
tell from the noise.

Nor does it gain there with a busy loop on one of the two cores: a batch split's
share on the shared core runs at half speed, so the split takes about as long as
the whole batch on one thread, 1.5-1.75x its quiet time either way. The trials see
one thread within its margin (the convnet's: 92-102 us a sample on one thread, 94-108
us on all) and keep all threads, at three calls a trial.

The decision logic is plain bookkeeping over the seconds the plan reports; it never
reads a clock, so it is tested with made-up timings.

The width never changes the numbers: a plan's products run in batch shares on
single-threaded BLAS (``tinynet.kernels.batch_split``, ``tinynet.kernels.dense``),
and the shares depend only on the batch size and the thread count. (OpenBLAS's
own threads would not do: on one thread and on two, an MLP's (128, 784) @ (784,
512) comes out up to 6e-5 apart.) :meth:`ThreadGovernor.force` pins the width,
e.g. to compare the two.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

Width = Literal["all", "one"]
"""``"all"``: every thread the libraries are set to use; ``"one"``: the caller's."""


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. under ``taskset``
    or a container's CPU set), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _other(width: Width) -> Width:
    return "one" if width == "all" else "all"


@dataclass
class _Track:
    """What the governor knows about one kind of call."""

    width: Width
    recent: deque[float]  # seconds of the last calls at ``width``
    countdown: int  # calls until the next trial
    interval: int  # calls between trials while the width holds
    warmup: int  # calls still to come before the first one timed
    best: float = float("inf")  # lowest median of a full ``recent`` window seen
    trial: list[float] | None = None  # seconds of the calls at the other width
    calls_on_one: int = 0
    calls: int = 0
    trials: int = 0
    # The medians the last trial compared: {width: median of its calls}.
    last_trial: dict[Width, float] | None = None


class ThreadGovernor:
    """Chooses the width of each call of a plan from the times of earlier calls.

    Usage: ``width = governor.width(key)`` before a call, run it at that width, then
    ``governor.record(key, width, seconds)``. Calls that fail are not recorded.

    Parameters
    ----------
    warmup : the first calls of a kind, which run on all threads untimed: they
        pay for first-touch page faults, thread start-up and cold caches.
    first_trial : timed calls of a kind before the first trial of the other
        width.
    max_interval : the most calls between two trials.
    max_interval_on_one : the most calls between two trials while the calls run
        on one thread.
    growth : the interval between trials grows this many times each time the
        width holds. With the defaults, on a quiet machine, 3 of the first 469
        training steps (an MLP's first epoch) run on one thread, then 1 in 513.
    trial_calls : calls a trial runs at the other width; their median is compared
        with the median of the last ``window`` calls at the current width. A
        trial ends after one call when that call was slower than all of them.
    window : calls whose median stands for the current width.
    slowdown : a window median this many times the width's best median starts a
        trial at once.
    one_margin, all_margin : how much faster (a fraction) one thread must be to
        take over from all, and all threads to take over back. All threads are
        the better bet when timings are noisy (a busy machine whose load comes and
        goes): a batch split, for one, wins from every core it gets, while one
        thread wins by far where it wins at all (an MLP on an oversubscribed
        machine: 4-8x).
    cpus : how many cores the process may use now (asked when a trial is due);
        with one, calls run on one thread and nothing is tried.

    Attributes
    ----------
    adaptive : bool
        False: every call runs on all threads.
    forced : Width or None
        The width every call runs at, if set by :meth:`force`.
    """

    def __init__(
        self,
        *,
        warmup: int = 4,
        first_trial: int = 8,
        max_interval: int = 512,
        max_interval_on_one: int = 64,
        growth: int = 4,
        trial_calls: int = 3,
        window: int = 8,
        slowdown: float = 1.5,
        one_margin: float = 0.25,
        all_margin: float = 0.05,
        cpus: Callable[[], int] = available_cpus,
    ) -> None:
        if not 1 <= first_trial <= max_interval:
            raise ValueError(
                f"ThreadGovernor: need 1 <= first_trial <= max_interval, got "
                f"{first_trial} and {max_interval}"
            )
        if warmup < 0:
            raise ValueError(f"ThreadGovernor: warmup must be >= 0, got {warmup}")
        if min(trial_calls, window, growth, max_interval_on_one) < 1:
            raise ValueError(
                "ThreadGovernor: trial_calls, window, growth and max_interval_on_one "
                f"must be >= 1, got {trial_calls}, {window}, {growth} and "
                f"{max_interval_on_one}"
            )
        self.warmup = warmup
        self.first_trial = first_trial
        self.max_interval = max_interval
        self.max_interval_on_one = max_interval_on_one
        self.growth = growth
        self.trial_calls = trial_calls
        self.window = window
        self.slowdown = slowdown
        self.margins: dict[Width, float] = {"one": one_margin, "all": all_margin}
        self.cpus = cpus
        self.adaptive = True
        self.forced: Width | None = None
        self._tracks: dict[Hashable, _Track] = {}
        self._lock = threading.Lock()  # plans may serve several threads at once

    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy`` of a model) takes the records, not the lock."""
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def force(self, width: Width | None) -> None:
        """Run every call at ``width`` from now on (None: choose again), and record
        none of them."""
        if width not in ("all", "one", None):
            raise ValueError(
                "ThreadGovernor.force: width must be 'all', 'one' or None, got "
                f"{width!r}"
            )
        self.forced = width

    def width(self, key: Hashable) -> Width:
        """The width the next call of kind ``key`` runs at."""
        if self.forced is not None:
            return self.forced
        if not self.adaptive:
            return "all"
        with self._lock:
            track = self._tracks.get(key)
            if track is None:
                track = self._tracks[key] = _Track(
                    width="all",
                    recent=deque(maxlen=self.window),
                    countdown=self.first_trial,
                    interval=self.first_trial,
                    warmup=self.warmup,
                )
            if track.trial is None and track.countdown <= 0:
                if self.cpus() < 2:  # nothing to try: one core is all there is
                    track.width = "one"
                    track.countdown = self.max_interval
                else:
                    track.trial = []
            return track.width if track.trial is None else _other(track.width)

    def record(self, key: Hashable, width: Width, seconds: float) -> None:
        """Note that a call of kind ``key`` at ``width`` took ``seconds``."""
        if not self.adaptive or self.forced is not None:
            return
        with self._lock:
            track = self._tracks.get(key)
            if track is None:
                return
            track.calls += 1
            track.calls_on_one += width == "one"
            if track.warmup > 0:
                track.warmup -= 1
                return
            if track.trial is not None and width != track.width:
                track.trial.append(seconds)
                hopeless = bool(track.recent) and seconds > max(track.recent)
                if hopeless or len(track.trial) >= self.trial_calls:
                    self._decide(track, track.trial)
                return
            if width != track.width:
                return  # a call that started before the width changed
            track.recent.append(seconds)
            track.countdown -= 1
            if len(track.recent) == self.window:
                now = statistics.median(track.recent)
                if now > self.slowdown * track.best:
                    track.countdown = 0
                track.best = min(track.best, now)

    def _decide(self, track: _Track, trial: list[float]) -> None:
        """End a trial: the other width takes over if it was faster by its margin."""
        tried = statistics.median(trial)
        current = statistics.median(track.recent) if track.recent else float("inf")
        track.trials += 1
        track.last_trial = {_other(track.width): tried, track.width: current}
        if tried < (1 - self.margins[_other(track.width)]) * current:
            track.width = _other(track.width)
            track.recent = deque(trial, maxlen=self.window)
            track.interval = min(self.first_trial, self._longest_interval(track))
            track.best = float("inf")
        else:
            longest = self._longest_interval(track)
            track.interval = min(self.growth * track.interval, longest)
            track.best = current
        track.countdown = track.interval
        track.trial = None

    def _longest_interval(self, track: _Track) -> int:
        if track.width == "all":
            return self.max_interval
        return min(self.max_interval, self.max_interval_on_one)

    def describe(self) -> str:
        """One line per kind of call: its width now, how many calls ran on one
        thread so far, and the trials: how many, and the medians the last one
        compared, in microseconds of what was recorded (a plan records the
        seconds of a call per sample)."""
        with self._lock:
            return "\n".join(
                f"{key}: {track.width} threads now; {track.calls_on_one} of "
                f"{track.calls} calls on one" + _describe_trials(track)
                for key, track in self._tracks.items()
            )


def _describe_trials(track: _Track) -> str:
    """``"; 3 trials, the last: one 81.2 us, all 58.0 us"`` (nothing before the
    first)."""
    medians = track.last_trial
    if medians is None:
        return ""
    trials = f"{track.trials} trial{'s' * (track.trials != 1)}"
    one, all_ = (medians[width] * 1e6 for width in ("one", "all"))
    return f"; {trials}, the last: one {one:.1f} us, all {all_:.1f} us"


__all__ = ["ThreadGovernor", "Width", "available_cpus"]
