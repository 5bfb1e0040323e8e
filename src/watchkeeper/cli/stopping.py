"""How long-running commands learn to stop: SIGTERM (service managers, orchestrators) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAKE_S = 0.2


class StopSignals:
    """Catches SIGTERM and SIGINT from construction on (create it before starting anything, so that a signal
    during start-up is kept rather than killing the process half-started); ``wait`` returns the first one's name.

    Only the first is caught: a second SIGTERM or Ctrl-C ends the process at once, so a shutdown that hangs
    can still be ended without SIGKILL."""

    def __init__(self) -> None:
        self._received: list[str] = []
        self._arrived = threading.Event()
        for number in SIGNALS:
            signal.signal(number, self._note)

    def _note(self, number: int, _: FrameType | None) -> None:
        name = signal.Signals(number).name
        for each in SIGNALS:  # the default (terminate) again: the next one is not waited on
            signal.signal(each, signal.SIG_DFL)
        self._received.append(name)
        self._arrived.set()
        log.warning("%s received: shutting down; a second SIGTERM or Ctrl-C ends the process at once", name)

    def wait(self) -> str:
        # In slices: the kernel may hand the signal to any thread, and Python runs the handler only when the
        # main thread next runs Python code, which a wait without a timeout never does.
        while not self._arrived.wait(WAKE_S):
            pass
        return self._received[0]
