"""How long-running commands learn to stop: SIGTERM (service managers, orchestrators) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignals:
    """Catches SIGTERM and SIGINT from construction on (create it before starting anything, so that a signal
    during start-up is kept rather than killing the process half-started); ``wait`` returns the first one's name."""

    def __init__(self) -> None:
        self._received: list[str] = []
        self._arrived = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._note)

    def _note(self, number: int, _: FrameType | None) -> None:
        self._received.append(signal.Signals(number).name)
        self._arrived.set()

    def wait(self) -> str:
        self._arrived.wait()
        return self._received[0]
