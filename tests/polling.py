"""Waiting in tests: a free loopback port, and polling for a condition with a generous bound."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 120, every_s: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (a wait with a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout_s} s")
        time.sleep(every_s)
