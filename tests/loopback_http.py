"""A real HTTP(S) server on loopback for tests: scripted answers per path, every request recorded."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""  # an iterable is streamed without a Content-Length
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (a slow server)
    hold: threading.Event | None = None  # wait for this before answering (a send in flight)


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class LoopbackServer:
    """``with LoopbackServer() as server:`` serves on 127.0.0.1 in a thread.

    ``server.replies[path]`` is a reply or a list of replies given in turn,
    the last one repeating; unknown paths answer 404.
    """

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.replies: dict[str, Reply | list[Reply]] = {}
        self.received: list[Received] = []
        self._arrivals = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._answer(self)

            def do_POST(self) -> None:
                owner._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # A short poll interval makes shutdown quick, so a server per test costs little.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait_for(self, count: int, timeout_s: float = 20) -> list[Received]:
        """Block until ``count`` requests have arrived; returns them."""
        with self._arrivals:
            if not self._arrivals.wait_for(lambda: len(self.received) >= count, timeout_s):
                raise AssertionError(f"{len(self.received)} requests arrived, {count} awaited")
            return list(self.received)

    def _next_reply(self, path: str) -> Reply:
        scripted = self.replies.get(path.split("?")[0], Reply(404))
        if isinstance(scripted, list):
            return scripted.pop(0) if len(scripted) > 1 else scripted[0]
        return scripted

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._arrivals:
            reply = self._next_reply(handler.path)
            self.received.append(Received(handler.command, handler.path,
                                          {k.lower(): v for k, v in handler.headers.items()}, body))
            self._arrivals.notify_all()
        if reply.hold is not None:
            reply.hold.wait(30)
        time.sleep(reply.delay_s)
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if isinstance(reply.body, bytes):
                if "Content-Length" not in reply.headers:
                    handler.send_header("Content-Length", str(len(reply.body)))
                handler.end_headers()
                handler.wfile.write(reply.body)
            else:
                handler.end_headers()
                for chunk in reply.body:
                    handler.wfile.write(chunk)
        except OSError:
            pass  # the client hung up (a size limit, a timeout, a killed process), as the test intends


def endless(chunk: bytes = bytes(65_536)) -> Iterator[bytes]:
    while True:
        yield chunk
