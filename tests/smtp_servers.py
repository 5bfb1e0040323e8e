"""Real SMTP servers on loopback for tests (aiosmtpd): an inbox that keeps what it is given, and a test certificate."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from polling import free_port

controller_module = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd is not installed")
smtp_module = pytest.importorskip("aiosmtpd.smtp", reason="aiosmtpd is not installed")


@dataclass
class Received:
    recipients: list[str]
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS or TLS from the first byte)
    login: str | None  # who logged in, if anyone


class Inbox:
    """An aiosmtpd handler that keeps every message, and answers RCPT with ``rcpt_reply`` when that is set (or
    with ``refuse[address]`` for those addresses)."""

    def __init__(self, *, rcpt_reply: str | None = None, refuse: dict[str, str] | None = None,
                 logins: dict[str, str] | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.refuse = refuse or {}  # address -> the reply that refuses it
        self.logins = logins or {}  # user -> password the authenticator accepts
        self.login_attempts: list[tuple[str, str]] = []
        self.messages: list[Received] = []
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001
        if self.rcpt_reply or address in self.refuse:
            return self.rcpt_reply or self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's handler protocol
        message = message_from_bytes(envelope.content, policy=policy.default)
        tls = server.transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login.decode() if session.authenticated else None
        with self._lock:
            self.messages.append(Received(list(envelope.rcpt_tos), message, tls, login))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> Any:  # noqa: ANN001
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.login_attempts.append((user, password))
        # handled=False: aiosmtpd itself answers 235 or 535.
        return smtp_module.AuthResult(success=self.logins.get(user) == password, handled=False, auth_data=auth_data)


@contextmanager
def smtp_server(inbox: Inbox, *, port: int | None = None, **smtp_options: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 for the block; yields its port. Options go to aiosmtpd's Controller."""
    if inbox.logins:
        smtp_options.setdefault("authenticator", inbox.authenticate)
    controller = controller_module.Controller(inbox, hostname="127.0.0.1", port=port or free_port(), **smtp_options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
