"""Wall time of the named steps of a comparison seed (``with clock("train"): ...``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StepClock:
    """Adds the time of each ``with clock(name)`` block to ``seconds[name]``, as read from `timer` (seconds;
    `time.perf_counter` by default)."""

    def __init__(self, timer: Callable[[], float] = time.perf_counter) -> None:
        self.timer = timer
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = self.timer()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.timer() - started
