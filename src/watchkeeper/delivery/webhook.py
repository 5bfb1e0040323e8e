"""Webhooks: a signed JSON POST per delivery.

Receivers check ``X-Watchkeeper-Signature`` (``sha256=`` and the hex
HMAC-SHA256 of the raw body under the shared secret) with ``verify``, and
drop repeats by ``X-Watchkeeper-Delivery``: delivery is at least once, so
a message may arrive twice after a crash or a lost answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from ..errors import MediaFetchError, UnsafeTargetError
from ..netguard import UrlPolicy, post_json
from ..store.models import Delivery
from .dispatcher import Sender, SendOutcome

SIGNATURE_HEADER = "X-Watchkeeper-Signature"
EVENT_HEADER = "X-Watchkeeper-Event"
DELIVERY_HEADER = "X-Watchkeeper-Delivery"
# Besides 5xx: the receiver timed out or asks us to slow down, so a later try may succeed.
_RETRIED_4XX = frozenset({408, 429})


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (compared in constant time)."""
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode("utf-8", "replace"))


def webhook_sender(secret: str | None, policy: UrlPolicy, timeout_s: float) -> Sender:
    """POSTs a delivery's payload as canonical JSON to its target URL, signed when ``secret`` is set."""

    def send(delivery: Delivery) -> SendOutcome:
        body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {EVENT_HEADER: delivery.event, DELIVERY_HEADER: str(delivery.id)}
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        try:
            status = post_json(delivery.target, body, headers, policy, timeout_s=timeout_s)
        except UnsafeTargetError as exc:
            return SendOutcome(ok=False, error=str(exc), retry=False)
        except MediaFetchError as exc:  # unreachable, timed out, cut off: worth another try
            return SendOutcome(ok=False, error=str(exc), retry=True)
        if 200 <= status < 300:
            return SendOutcome(ok=True, status_code=status)
        if 300 <= status < 400:
            return SendOutcome(ok=False, status_code=status, error=f"HTTP {status}: webhooks do not follow redirects",
                               retry=False)
        return SendOutcome(ok=False, status_code=status, error=f"HTTP {status}",
                           retry=status >= 500 or status in _RETRIED_4XX)

    return send
