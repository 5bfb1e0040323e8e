"""Alert e-mail: a text and HTML message with the snapshot inline, sent over SMTP for the ``email`` channel.

The HTML is written for mail clients rather than browsers: tables and inline
styles, no scripts, nothing remote. The snapshot travels inside the message
(``multipart/related``, referenced by ``cid:``), so it shows without the reader
allowing remote content and without the server being reachable from outside.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from ..artefacts import ArtefactStore, referenced_address
from ..config import SmtpSettings
from ..delivery.dispatcher import Sender, SendOutcome
from ..errors import WatchkeeperError
from ..reasoning.render import severity_color, text_color_on
from ..store.models import Delivery
from .message import AlertMessage, facts, plain_text

log = logging.getLogger(__name__)

SNAPSHOT_MAX_BYTES = 5 * 1024**2
_IMAGE_SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
_LINK_LABELS = {"incident": "Open incident", "acknowledge": "Acknowledge", "report": "Report",
                "snapshot": "Snapshot", "clip": "Clip"}
_FONT = "font-family:Arial,Helvetica,sans-serif"


# --------------------------------------------------------------------------------------------- composing


def compose(message: AlertMessage, sender: str, recipients: list[str],
            artefacts: ArtefactStore | None = None) -> EmailMessage:
    """The alert as an e-mail: plain text for every client, HTML (with the snapshot inline) for most.

    A snapshot that is an ``artefact:`` reference is read from ``artefacts``. Raises ValueError for a recipient
    that is not a plain address (``name@domain``).
    """
    domain = parseaddr(_one_line(sender))[1].rpartition("@")[2] or "watchkeeper.invalid"
    mail = EmailMessage()
    mail["Subject"] = _one_line(message.title)
    mail["From"] = _one_line(sender)
    mail["To"] = [Address(addr_spec=address) for address in recipients]  # strict: rejects CR/LF and odd syntax
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=domain)
    if message.incident_id:
        mail["X-Watchkeeper-Incident"] = _one_line(message.incident_id)
    # Quoted-printable keeps both parts 7-bit: some relays still refuse 8-bit bodies.
    mail.set_content(plain_text(message), cte="quoted-printable")
    snapshot = _snapshot(message.snapshot_path, artefacts)
    cid = make_msgid(domain=domain) if snapshot else None
    mail.add_alternative(html_body(message, cid), subtype="html", cte="quoted-printable")
    if snapshot and cid:
        data, subtype, filename = snapshot
        html_part = mail.get_payload()[1]  # type: ignore[index]  # [text, html] after add_alternative
        html_part.add_related(data, maintype="image", subtype=subtype, cid=cid, disposition="inline",
                              filename=filename)
    return mail


def _one_line(value: str) -> str:
    """Header text on one line: a line break from data would start a header of its own."""
    return " ".join(value.split())


def _snapshot(where: str | None, artefacts: ArtefactStore | None) -> tuple[bytes, str, str] | None:
    """Bytes, image subtype and file name of the snapshot (a file, or an artefact), when it is a readable JPEG or
    PNG small enough to inline."""
    address = referenced_address(where)
    try:
        if address is not None and artefacts is not None:
            with artefacts.open(address).stream as stream:
                data, name = stream.read(SNAPSHOT_MAX_BYTES + 1), f"snapshot{Path(address).suffix}"
        elif where and address is None and Path(where).is_file():
            with open(where, "rb") as file:
                data, name = file.read(SNAPSHOT_MAX_BYTES + 1), Path(where).name
        else:
            return None
    except (OSError, WatchkeeperError):  # gone, or the store unreachable: the alert goes without its picture
        return None
    if len(data) > SNAPSHOT_MAX_BYTES:
        return None
    kind = next((kind for magic, kind in _IMAGE_SIGNATURES.items() if data.startswith(magic)), None)
    return (data, kind, name) if kind else None


def _web_url(url: str) -> str | None:
    """The URL when it is http(s): a ``javascript:`` or ``data:`` link has no place in an alert."""
    return url if urlsplit(url.strip()).scheme.lower() in ("http", "https") else None


def html_body(message: AlertMessage, image_cid: str | None = None) -> str:
    """The alert as an e-mail's HTML (Resend's too); every piece of text from the alert is escaped."""
    esc = html.escape
    background = severity_color(message.severity, message.severity_color)  # a hex colour, safe inside style=""
    ink = text_color_on(background)
    fact_rows = "".join(
        f'<tr><td style="padding:3px 16px 3px 0;color:#6b7280;white-space:nowrap">{esc(name)}</td>'
        f'<td style="padding:3px 0;color:#111827">{esc(value)}</td></tr>'
        for name, value in facts(message) if name != "Severity")  # the banner says it
    blocks = [
        f'<p style="margin:0 0 16px;font-size:20px;font-weight:bold;color:#111827">{esc(message.title)}</p>',
        f'<p style="margin:0 0 16px;font-size:15px;line-height:1.5;color:#1f2937">{esc(message.summary)}</p>',
        f'<table role="presentation" cellpadding="0" cellspacing="0" border="0" '
        f'style="margin:0 0 16px;font-size:14px">{fact_rows}</table>',
    ]
    if image_cid:
        blocks.append(f'<img src="cid:{esc(image_cid[1:-1])}" alt="Snapshot" width="552" '
                      f'style="display:block;width:100%;max-width:552px;height:auto;border:0;margin:0 0 16px">')
    if message.immediate_actions:
        steps = "".join(f'<li style="margin:0 0 6px">{esc(step)}</li>' for step in message.immediate_actions)
        blocks.append('<p style="margin:0 0 8px;font-size:15px;font-weight:bold;color:#111827">Immediate actions</p>'
                      f'<ol style="margin:0 0 16px;padding-left:24px;font-size:15px;color:#1f2937">{steps}</ol>')
    buttons = "".join(
        f'<td style="padding:0 8px 8px 0"><a href="{esc(url)}" style="display:inline-block;padding:10px 16px;'
        f'background:#1f2937;color:#ffffff;text-decoration:none;border-radius:4px;font-size:14px;{_FONT}">'
        f'{esc(_LINK_LABELS.get(name, name.replace("_", " ").capitalize()))}</a></td>'
        for name, url in ((name, _web_url(url)) for name, url in message.links.items()) if url)
    if buttons:
        blocks.append(f'<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>{buttons}</tr>'
                      '</table>')
    body = "".join(blocks)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(message.title)}</title></head>'
        f'<body style="margin:0;padding:0;background:#f3f4f6;{_FONT}">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'style="background:#f3f4f6"><tr><td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        'style="width:100%;max-width:600px;background:#ffffff;border-radius:6px">'
        f'<tr><td bgcolor="{background}" style="background:{background};color:{ink};padding:12px 24px;'
        f'font-size:14px;font-weight:bold;letter-spacing:1px;text-transform:uppercase;border-radius:6px 6px 0 0">'
        f'{esc(message.severity_label)} &middot; severity {message.severity}</td></tr>'
        f'<tr><td style="padding:24px">{body}</td></tr>'
        '<tr><td style="padding:12px 24px;font-size:12px;color:#9ca3af;border-top:1px solid #e5e7eb">'
        'Sent by Watchkeeper</td></tr>'
        '</table></td></tr></table></body></html>'
    )


# --------------------------------------------------------------------------------------------- sending


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send ``message`` to its To/Cc/Bcc addresses; smtplib, ssl and OS errors propagate.

    ``auto`` takes STARTTLS when offered but will not log in without it: a
    server that stops offering STARTTLS may be someone in the middle asking for
    the password. ``none`` is the explicit choice of a plain connection.
    """
    if not settings.host:
        raise ValueError("smtp.host is not set")
    context = ssl.create_default_context()
    implicit_tls = settings.security == "ssl" or (settings.security == "auto" and settings.port == 465)
    client = (smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout_s, context=context)
              if implicit_tls else smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s))
    with client:
        encrypted = implicit_tls
        if not implicit_tls and settings.security != "none":
            client.ehlo()
            if settings.security == "starttls" or client.has_extn("starttls"):
                client.starttls(context=context)  # SMTPNotSupportedError when required but not offered
                encrypted = True
        if settings.username and settings.password:
            if not encrypted and settings.security == "auto":
                raise smtplib.SMTPNotSupportedError(
                    "the server offers no STARTTLS, so the password is not sent (security 'none' allows it)")
            client.login(settings.username, settings.password)
        refused = client.send_message(message)
    if refused:  # sent to the others; trying again would send them a second copy
        log.warning("some recipients refused the alert e-mail: %s", _refusals(refused))


def email_sender(settings: SmtpSettings, artefacts: ArtefactStore | None = None) -> Sender:
    """The dispatcher's ``email`` channel: target a comma-separated list of addresses, payload an AlertMessage
    (its snapshot read from ``artefacts`` when it is one)."""
    if not settings.host:
        raise ValueError("the email channel needs smtp.host")
    sender = settings.sender or settings.username or f"watchkeeper@{settings.host}"

    def send_delivery(delivery: Delivery) -> SendOutcome:
        recipients = [address.strip() for address in delivery.target.split(",") if address.strip()]
        try:
            if not recipients:
                raise ValueError("no recipients")
            mail = compose(AlertMessage.model_validate(delivery.payload), sender, recipients, artefacts)
        except ValidationError as exc:  # counted, not quoted: the payload's values (its links) stay out of logs
            return SendOutcome(ok=False, error=f"not an alert message ({exc.error_count()} errors)", retry=False)
        except ValueError as exc:  # a malformed delivery fails every time
            return SendOutcome(ok=False, error=f"cannot compose the e-mail: {exc}", retry=False)
        try:
            send(settings, mail)
        except (smtplib.SMTPException, OSError) as exc:
            return _failure(exc, settings.password)
        return SendOutcome(ok=True, status_code=250)

    return send_delivery


def _failure(exc: smtplib.SMTPException | OSError, password: str | None) -> SendOutcome:
    """What a failed send means for the next try: a 5xx reply will come again; 4xx, network and TLS may pass."""
    code: int | None = None
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code = min(reply_code for reply_code, _ in exc.recipients.values())  # any 4xx: worth another try
        detail = f"all recipients refused: {_refusals(exc.recipients)}"
    elif isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        detail = f"{code} {_text(exc.smtp_error)}"
    else:
        detail = str(exc)
    error = f"{type(exc).__name__}: {detail}"
    if password:  # a server may echo what it was sent
        error = error.replace(password, "[password]")
    # No STARTTLS (or SMTPUTF8) where it is needed will not change on the next try either.
    final = isinstance(exc, smtplib.SMTPNotSupportedError) or (code is not None and 500 <= code < 600)
    return SendOutcome(ok=False, status_code=code, error=error, retry=not final)


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address} ({code} {_text(reply)})" for address, (code, reply) in refused.items())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
