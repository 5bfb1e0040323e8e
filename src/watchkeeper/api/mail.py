"""E-mail through seed 000's ``notification`` SMTP settings (standard-library smtplib).

Until the alerts issue brings its notifiers, this is how ``POST /notify``
and the ``notify`` flag of analyses reach people. Port 465 speaks TLS from
the first byte; other ports upgrade with STARTTLS when the server offers it.
"""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from ..config import NotificationSettings, Settings
from ..delivery.dispatcher import Sender, SendOutcome
from ..errors import BadRequestError
from ..store.models import Delivery

log = logging.getLogger(__name__)

ATTACHMENT_MAX_BYTES = 5 * 1024**2
SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2}


class Mailer:
    def __init__(self, config: NotificationSettings, *, timeout_s: float = 20.0) -> None:
        assert config.smtp_server, "a Mailer needs notification.smtp_server"
        self.config = config
        self.timeout_s = timeout_s

    @property
    def default_recipients(self) -> list[str]:
        return list(self.config.default_recipients)

    def send(self, subject: str, text: str, recipients: Sequence[str] | None = None,
             attachment: Path | None = None) -> list[str]:
        """Send one message; returns its recipients. smtplib and OS errors propagate to the caller."""
        to = list(recipients or self.default_recipients)
        if not to:
            raise BadRequestError("no recipients: give some, or set notification.default_recipients")
        cfg = self.config
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = cfg.sender_email or cfg.username or f"watchkeeper@{cfg.smtp_server}"
        message["To"] = ", ".join(to)
        message.set_content(text)
        if attachment is not None and attachment.stat().st_size <= ATTACHMENT_MAX_BYTES:
            mime = mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
            maintype, subtype = mime.split("/", 1)
            message.add_attachment(attachment.read_bytes(), maintype=maintype, subtype=subtype,
                                   filename=attachment.name)
        context = ssl.create_default_context()
        if cfg.port == 465:
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.smtp_server, cfg.port, timeout=self.timeout_s, context=context)
        else:
            client = smtplib.SMTP(cfg.smtp_server, cfg.port, timeout=self.timeout_s)
        with client:
            if cfg.port != 465:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=context)
                    client.ehlo()
            if cfg.username and cfg.password:
                client.login(cfg.username, cfg.password)
            client.send_message(message)
        return to


def mailer_from(settings: Settings) -> Mailer | None:
    """The configured mailer, or None when ``notification.smtp_server`` is not set."""
    config = settings.notification
    return Mailer(config, timeout_s=settings.server.webhook_timeout_s) if config and config.smtp_server else None


def _one_line(value: Any) -> str:
    """A value from a request as one line of text (a line break in a header would be an injection)."""
    return " ".join(str(value).split())


def detection_email(result: dict[str, Any], *, media_name: str | None = None) -> tuple[str, str]:
    """Subject and text of an alert about a detection result (seed 000's flat fields)."""
    crime = _one_line(result.get("crime_type") or "Incident")
    severity = _one_line(result.get("potential_severity") or result.get("severity") or "unknown")
    subject = f"[Watchkeeper] {crime} detected (severity {severity})"
    fields = [("Crime type", crime), ("Severity", severity), ("Confidence", result.get("confidence", "unknown")),
              ("Evidence", result.get("evidence_description", "")), ("Recommendations", result.get("recommendations")),
              ("Media", media_name), ("Time", result.get("timestamp"))]
    return subject, "".join(f"{name}: {_one_line(value)}\n" for name, value in fields if value not in (None, ""))


def alert_threshold(settings: Settings) -> str:
    """Seed 000's ``notify_threshold``: the lowest severity word that sends an alert e-mail."""
    return settings.notification.notify_threshold if settings.notification else "medium"


def reaches_threshold(severity_word: str | None, threshold: str) -> bool:
    return SEVERITY_ORDER.get(severity_word or "", -1) >= SEVERITY_ORDER[threshold]


def email_sender(mailer: Mailer) -> Sender:
    """The dispatcher's sender for the ``email`` channel: payload {subject, text}, target = comma-separated To."""

    def send(delivery: Delivery) -> SendOutcome:
        recipients = [a.strip() for a in delivery.target.split(",") if a.strip()]
        try:
            mailer.send(delivery.payload["subject"], delivery.payload["text"], recipients)
        except smtplib.SMTPResponseException as exc:
            # 5xx replies are permanent (a refused address); 4xx ones may pass later.
            return SendOutcome(ok=False, status_code=exc.smtp_code, error=str(exc), retry=exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError) as exc:
            return SendOutcome(ok=False, status_code=None, error=f"{type(exc).__name__}: {exc}", retry=True)
        return SendOutcome(ok=True, status_code=250, error=None, retry=False)

    return send
