"""Chat and push (Slack, Discord, Telegram, ntfy, Pushover, Teams, Matrix, ...) through Apprise.

``delivery.target`` is one Apprise URL, and Apprise URLs hold their service's credentials: nothing here
logs one or puts one in an error; errors name the service. Apprise answers a send with a status and the
log lines its plugin wrote during it (the server's refusal, a connection error): those lines, scrubbed of
anything taken from the URL, are the error text. They are the only place Apprise's log goes: it writes
request headers, tokens included, at DEBUG, and quotes servers' replies (which may echo a token) at WARNING,
so its logger is kept at WARNING and out of the application's log.

Used as a library, Apprise loads no plugins and no configuration from the user's home (only its command
line does) and keeps plugin state in memory, since no storage path is given. Each send builds its own
Apprise objects, so concurrent sends share nothing but Apprise's plugin registry, which is locked.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from apprise import Apprise, AppriseAsset, AppriseResultStatus, NotifyFormat, NotifyType

from ..delivery.dispatcher import Sender, SendOutcome
from ..store.models import Delivery
from .message import AlertMessage, alert_sender, plain_text

_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}")
# Runs of URL characters this long may be a token or a password.
_MAX_REASON_CHARS = 500


def apprise_sender(*, timeout_s: float = 15) -> Sender:
    """Sends ``plain_text`` of the alert to the Apprise URL in ``delivery.target``."""
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.WARNING)  # what each send captures, whatever the application's level
    apprise_log.propagate = False

    @alert_sender
    def send(delivery: Delivery, message: AlertMessage) -> SendOutcome:
        asset = AppriseAsset(service_timeout=timeout_s)
        service = Apprise.instantiate(delivery.target, asset=asset)
        if service is None:
            return SendOutcome(ok=False, error=f"not a valid Apprise URL{_schema_hint(delivery.target)}", retry=False)
        notifier = Apprise(asset=asset)
        notifier.add(service)
        with notifier.notify(body=plain_text(message), title=message.title, notify_type=notify_type(message.severity),
                             body_format=NotifyFormat.TEXT, timeout=timeout_s) as result:
            if result:
                return SendOutcome(ok=True)
            if result.status == AppriseResultStatus.TIMEOUT:
                return SendOutcome(ok=False, error=f"{service.service_name}: no answer within {timeout_s:g} s")
            said = "; ".join(entry.message for entry in result.logs())
        reason = _scrub(said, delivery.target) if said else "Apprise gave no reason"
        return SendOutcome(ok=False, error=f"{service.service_name}: {reason}"[:_MAX_REASON_CHARS], retry=True)

    return send


def notify_type(severity: int) -> NotifyType:
    """Severity 4-5 shows as a failure (red), 3 as a warning, 1-2 as information."""
    if severity >= 4:
        return NotifyType.FAILURE
    return NotifyType.WARNING if severity == 3 else NotifyType.INFO


def _schema_hint(target: str) -> str:
    """`` (slack://)``: which service the URL was meant for, and never any part of it after the schema."""
    schema, separator, _ = target.partition("://")
    return f" ({schema.lower()}://)" if separator and _SCHEMA.fullmatch(schema) else ""


def _scrub(text: str, target: str) -> str:
    """``text`` without any part of the URL that may be secret (user, password, path segments, query values),
    as written and as decoded, should a plugin's log quote a server that echoed one. Host names stay."""
    parts = urlsplit(target)
    host = parts.hostname or ""
    pieces = [parts.username, parts.password, *parts.path.split("/"), *(v for _, v in parse_qsl(parts.query))]
    if "." not in host:  # slack://TOKEN/...: the "host" is a token too
        pieces.append(parts.netloc.rpartition("@")[2])
    # Pieces of one or two characters would blank out half the message and hide nothing worth hiding.
    secrets = {form for piece in pieces if piece for form in (piece, unquote(piece)) if len(form) >= 3}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
