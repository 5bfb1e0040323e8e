"""E-mail through Resend's HTTP API: one JSON POST per delivery, with a text and an HTML part.

The dispatcher delivers at least once: a send whose answer was lost is sent again. Resend drops a repeat
that carries the same ``Idempotency-Key`` within 24 hours, so the key is derived from the delivery: its
id, and a digest of its target and payload, so that another installation (or this one after its database
was reset) reusing the id on the same Resend account does not collide with it.
"""

from __future__ import annotations

import hashlib
import json

import httpx

from ..config import ResendSettings
from ..delivery.dispatcher import Sender, SendOutcome
from ..netguard import USER_AGENT
from ..store.models import Delivery
from .email import html_body
from .message import AlertMessage, alert_sender, plain_text

# Besides 5xx: Resend timed out or asks us to slow down, so a later try may succeed.
_RETRIED_4XX = frozenset({408, 429})
# A 409 of this name: the first send with this key is still in progress at Resend; the next try sees its outcome.
_IN_PROGRESS = "concurrent_idempotent_requests"
_MAX_REASON_CHARS = 300


def resend_sender(settings: ResendSettings, *, timeout_s: float = 15) -> Sender:
    """E-mails the alert to ``delivery.target``, one address, from ``settings.sender``."""
    api_key, sender = settings.api_key, settings.sender
    if not (api_key and sender):
        raise ValueError("Resend needs resend.api_key and resend.sender")
    url = f"{settings.api_base.rstrip('/')}/emails"

    @alert_sender
    def send(delivery: Delivery, message: AlertMessage) -> SendOutcome:
        email = {"from": sender, "to": [delivery.target], "subject": message.title,
                 "text": plain_text(message), "html": html_body(message)}
        headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": idempotency_key(delivery),
                   "User-Agent": USER_AGENT}
        try:
            response = httpx.post(url, json=email, headers=headers, timeout=timeout_s)
        except httpx.TransportError as exc:  # unreachable, timed out, cut off: worth another try
            return SendOutcome(ok=False, error=f"Resend unreachable: {type(exc).__name__}: {exc}", retry=True)
        status = response.status_code
        if 200 <= status < 300:
            return SendOutcome(ok=True, status_code=status)
        name, reason = _reason(response)
        return SendOutcome(ok=False, status_code=status, error=reason,
                           retry=status >= 500 or status in _RETRIED_4XX or name == _IN_PROGRESS)

    return send


def idempotency_key(delivery: Delivery) -> str:
    """The same for every try of one delivery, and for nothing else."""
    content = json.dumps([delivery.target, delivery.payload], sort_keys=True, separators=(",", ":"), default=str)
    return f"watchkeeper-delivery-{delivery.id}-{hashlib.sha256(content.encode()).hexdigest()[:32]}"


def _reason(response: httpx.Response) -> tuple[str | None, str]:
    """Resend's error ``name`` and ``HTTP 422: validation_error: <Resend's message>`` (the bare status otherwise)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        return None, f"HTTP {response.status_code}"
    name = body.get("name")
    return name, f"HTTP {response.status_code}: {name}: {body['message']}"[:_MAX_REASON_CHARS]
