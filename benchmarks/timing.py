"""Repeated timing: batches long enough to measure, the median of several batches.

A measurement first grows a batch of calls until it lasts at least ``min_time`` seconds (this
also warms caches up), then times ``repeats`` batches of that size and reports the median
rate. The operations of the stores compared in one row are timed in interleaved rounds, so
that a busy moment of the machine slows all of them alike. Slow operations (about a second
per call) are timed call by call.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

Operation = Callable[[], object]


@dataclass(frozen=True)
class Timer:
    """How long to measure: each batch lasts >= ``min_time`` s; ``repeats`` batches."""

    min_time: float
    repeats: int

    def rate(self, operation: Operation) -> float:
        """Median calls per second of one operation."""
        return self.rates({"operation": operation})["operation"]

    def rates(
        self, operations: Dict[str, Operation], *, slow: Optional[Dict[str, int]] = None
    ) -> Dict[str, float]:
        """Median calls per second of each operation, timed in interleaved rounds.

        Every round times one batch of each operation in turn, so a slow spell of the machine
        (other processes, frequency changes) hits all of them alike and their ratios hold.
        ``slow`` maps an operation to a number of single timed calls, for operations of about
        a second that need no batch.
        """
        slow = slow or {}
        batches = {}
        for name, operation in operations.items():
            if name in slow:
                operation()  # warm-up
                batches[name] = 1
            else:
                batches[name] = calibrate(operation, self.min_time)
        samples: Dict[str, List[float]] = {name: [] for name in operations}
        for _ in range(max([self.repeats, *slow.values()])):
            for name, operation in operations.items():
                if len(samples[name]) < slow.get(name, self.repeats):
                    samples[name].append(batches[name] / run_batch(operation, batches[name]))
        return {name: statistics.median(values) for name, values in samples.items()}


def run_batch(operation: Operation, calls: int) -> float:
    """Seconds taken by ``calls`` consecutive calls of ``operation``."""
    start = time.perf_counter()
    for _ in range(calls):
        operation()
    return time.perf_counter() - start


def calibrate(operation: Operation, min_time: float, max_batch: int = 10_000_000) -> int:
    """The smallest batch size (grown geometrically) that lasts at least ``min_time`` seconds."""
    batch = 1
    while True:
        elapsed = run_batch(operation, batch)
        if elapsed >= min_time or batch >= max_batch:
            return batch
        guess = int(batch * min_time / max(elapsed, 1e-9) * 1.2) + 1
        batch = min(max_batch, max(batch * 2, guess))


def round_robin(operation: Callable[[Any], object], items: Sequence[Any]) -> Operation:
    """A call without arguments that applies ``operation`` to the next item, cycling."""
    next_item = itertools.cycle(items).__next__
    return lambda: operation(next_item())
