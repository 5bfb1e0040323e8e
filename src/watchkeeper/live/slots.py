"""Fair turns at the analysis: cameras sharing a box take turns in the order they asked.

Each camera's analysis thread asks for a turn before analysing a window.
At most ``capacity`` windows (default: one per core) are analysed at once,
and turns go first come, first served: a camera
whose windows take long cannot starve the others, and a camera that falls
behind skips its own windows (the monitor's newest-window rule) instead of
taking more than its share.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class AnalysisSlots:
    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity or os.cpu_count() or 1
        self._lock = threading.Condition()
        self._busy = 0
        self._queue: deque[object] = deque()

    @contextmanager
    def turn(self) -> Iterator[None]:
        ticket = object()
        with self._lock:
            self._queue.append(ticket)
            self._lock.wait_for(lambda: self._queue[0] is ticket and self._busy < self.capacity)
            self._queue.popleft()
            self._busy += 1
            self._lock.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()
