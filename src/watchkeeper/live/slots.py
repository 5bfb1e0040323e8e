"""Fair shares of the analysis: cameras sharing a box split its CPU time, not just its turns.

Each camera's analysis thread asks for a turn before analysing a window.
At most ``capacity`` windows (default: one per core) are analysed at once.
When cameras wait, the turn goes to the one that has used the least analysis
time for its weight (a camera's ``analysis_weight``, default 1), so a camera
whose windows cost three times as much gets a third as many turns instead of
three times the CPU. A camera that falls behind skips its own windows (the
monitor's newest-window rule) instead of taking more than its share.

A camera that joins, or comes back after a pause, starts level with the
least served of the cameras asking lately: it gets no credit for the time it
was not asking.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(order=True)
class _Ticket:
    used_s: float  # the camera's weighted analysis time when it asked
    seq: int  # first come, first served among equals
    camera: str = field(compare=False)


class AnalysisSlots:
    ACTIVE_S = 30.0  # a camera that has not asked for this long no longer counts as competing

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity or os.cpu_count() or 1
        self._lock = threading.Condition()
        self._busy = 0
        self._waiting: list[_Ticket] = []
        self._used_s: dict[str, float] = {}  # weighted analysis seconds per camera
        self._asked_at: dict[str, float] = {}
        self._seq = itertools.count()

    def used_s(self, camera: str) -> float:
        """The camera's analysis seconds so far, divided by its weight."""
        with self._lock:
            return self._used_s.get(camera, 0.0)

    @contextmanager
    def turn(self, camera: str = "", weight: float = 1.0) -> Iterator[None]:
        with self._lock:
            now = time.monotonic()
            used = self._used_s.get(camera, 0.0)
            if now - self._asked_at.get(camera, -self.ACTIVE_S) >= self.ACTIVE_S:  # new, or back from a pause
                competing = [self._used_s[c] for c, at in self._asked_at.items() if now - at < self.ACTIVE_S]
                used = max(used, min(competing, default=0.0))
            self._used_s[camera], self._asked_at[camera] = used, now
            ticket = _Ticket(used, next(self._seq), camera)
            self._waiting.append(ticket)
            self._lock.wait_for(lambda: self._busy < self.capacity and min(self._waiting) is ticket)
            self._waiting.remove(ticket)
            self._busy += 1
            self._lock.notify_all()  # the next in line may fit too
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._used_s[camera] = self._used_s.get(camera, 0.0) + (time.perf_counter() - started) / weight
                self._lock.notify_all()
