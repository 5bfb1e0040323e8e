"""SMS through Twilio's Messages API: one form POST per delivery, no SDK.

Twilio queues a message when it answers 201; whether the phone received it is reported later (status
callbacks), which alerts do not wait for. A 4xx other than 408/429 is Twilio refusing this message or these
credentials for good, so the delivery is dead; its error code (21211: not a valid phone number) goes into
the error text, which is all an operator needs to look it up.
"""

from __future__ import annotations

import httpx

from ..config import TwilioSettings
from ..delivery.dispatcher import Sender, SendOutcome
from ..netguard import USER_AGENT
from ..store.models import Delivery
from .message import AlertMessage, alert_sender, short_text

# Besides 5xx: Twilio timed out or asks us to slow down, so a later try may succeed.
_RETRIED_4XX = frozenset({408, 429})
_MAX_REASON_CHARS = 300


def sms_sender(settings: TwilioSettings, *, timeout_s: float = 15) -> Sender:
    """Texts ``short_text`` of the alert to ``delivery.target``, an E.164 phone number."""
    sid, token, sender_number = settings.account_sid, settings.auth_token, settings.from_number
    if not (sid and token and sender_number):
        raise ValueError("SMS needs twilio.account_sid, twilio.auth_token and twilio.from_number")
    url = f"{settings.api_base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"

    @alert_sender
    def send(delivery: Delivery, message: AlertMessage) -> SendOutcome:
        form = {"To": delivery.target, "From": sender_number, "Body": short_text(message)}
        try:
            response = httpx.post(url, data=form, auth=(sid, token), timeout=timeout_s,
                                  headers={"User-Agent": USER_AGENT})
        except httpx.TransportError as exc:  # unreachable, timed out, cut off: worth another try
            return SendOutcome(ok=False, error=f"Twilio unreachable: {type(exc).__name__}: {exc}", retry=True)
        status = response.status_code
        if 200 <= status < 300:
            return SendOutcome(ok=True, status_code=status)
        return SendOutcome(ok=False, status_code=status, error=_reason(response),
                           retry=status >= 500 or status in _RETRIED_4XX)

    return send


def _reason(response: httpx.Response) -> str:
    """``HTTP 400: Twilio error 21211: <Twilio's message>``, or the bare status when the body is not Twilio's."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        return f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}: Twilio error {body['code']}: {body.get('message', '')}"[:_MAX_REASON_CHARS]
