"""Alert e-mail: composed for mail clients, sent to real SMTP servers (aiosmtpd) on loopback, through the outbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from polling import free_port, wait_until
from certificates import self_signed
from smtp_servers import Inbox, server_context, smtp_server

from watchkeeper.artefacts import LocalArtefactStore, address_of, as_reference
from watchkeeper.config import SmtpSettings
from watchkeeper.delivery import Dispatcher, enqueue
from watchkeeper.notify.email import compose, email_sender, send
from watchkeeper.notify.message import AlertMessage
from watchkeeper.store.db import Database
from watchkeeper.store.models import Delivery

SENDER = "Watchkeeper <alerts@example.org>"
PASSWORD = "s3cret-Pa55word"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"  # the bytes matter, not a real picture
LINKS = {"incident": "https://wk.example/incidents/inc-7", "acknowledge": "https://wk.example/ack?token=a&b=1",
         "report": "https://wk.example/incidents/inc-7/report", "clip": "https://wk.example/clips/inc-7.mp4"}


def alert(**changes: Any) -> AlertMessage:
    fields: dict[str, Any] = {
        "kind": "incident", "event": "opened", "incident_id": "inc-7", "title": "Fire in the loading bay",
        "severity": 4, "severity_label": "High", "severity_color": "#dc2626", "severity_word": "high",
        "confidence": 0.91, "camera": "Dock camera 2", "location": "Warehouse B", "zone": "Loading bay",
        "summary": "Smoke and flames near the pallets.", "occurred_at": datetime(2024, 5, 1, 14, 3, 22, tzinfo=UTC),
        "immediate_actions": ["Call the fire brigade", "Evacuate the loading bay"], "links": LINKS,
    }
    return AlertMessage(**(fields | changes))


def settings(port: int, **changes: Any) -> SmtpSettings:
    return SmtpSettings(**({"host": "127.0.0.1", "port": port, "security": "none", "timeout_s": 5,
                            "sender": SENDER} | changes))


def delivery(message: AlertMessage, target: str = "ops@example.org, lead@example.org") -> Any:
    """Enough of a Delivery for a sender, which reads only target and payload."""
    return SimpleNamespace(id=1, channel="email", target=target, event="incident.opened",
                           payload=message.model_dump(mode="json"))


def parts(message: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_content_type(): part for part in message.walk()}  # type: ignore[misc]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The client trusts the test certificate (and nothing else)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return certificate


# ---------------------------------------------------------------- the message


def test_an_alert_arrives_with_text_html_inline_snapshot_and_links(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.jpg"
    snapshot.write_bytes(JPEG)
    message = alert(summary="Smoke <script>alert('x')</script> & flames", snapshot_path=str(snapshot))
    inbox = Inbox()
    with smtp_server(inbox) as port:
        outcome = email_sender(settings(port))(delivery(message))
    assert outcome.ok and outcome.status_code == 250 and outcome.error is None
    [received] = inbox.messages
    mail = received.message
    assert received.recipients == ["ops@example.org", "lead@example.org"] and not received.tls
    assert mail["Subject"] == "Fire in the loading bay" and mail["From"] == SENDER
    assert mail["To"] == "ops@example.org, lead@example.org"
    assert mail["X-Watchkeeper-Incident"] == "inc-7" and mail["Message-ID"].endswith("@example.org>")
    assert mail["Date"].datetime is not None
    assert mail.get_content_type() == "multipart/alternative"

    found = parts(mail)
    text, page, image = found["text/plain"].get_content(), found["text/html"].get_content(), found["image/jpeg"]
    assert "Smoke <script>alert('x')</script> & flames" in text and "Dock camera 2" in text
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; flames" in page
    for value in ("Fire in the loading bay", "Dock camera 2", "Warehouse B", "Loading bay", "91%",
                  "2024-05-01T14:03:22+00:00", "#dc2626", "High"):
        assert value in page
    assert page.index("Call the fire brigade") < page.index("Evacuate the loading bay") and "<ol" in page
    for label in ("Open incident", "Acknowledge", "Report", "Clip"):
        assert f">{label}</a>" in page
    assert 'href="https://wk.example/ack?token=a&amp;b=1"' in page and ">Snapshot</a>" not in page
    assert "http" not in page.replace('href="https://wk.example/', "")  # nothing else remote: no images, no fonts

    # The snapshot travels inside the message, next to the HTML that shows it by Content-ID.
    assert found["multipart/related"].get_payload()[0] is found["text/html"]  # type: ignore[index]
    assert image.get_content() == JPEG and image.get_content_disposition() == "inline"
    assert image.get_filename() == "snapshot.jpg"
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in page


def test_a_snapshot_that_is_not_a_small_jpeg_or_png_stays_out(tmp_path: Path) -> None:
    for name, content in (("notes.jpg", b"just text"), ("huge.jpg", JPEG + b"\x00" * 5 * 1024**2)):
        (tmp_path / name).write_bytes(content)
        mail = compose(alert(snapshot_path=str(tmp_path / name)), SENDER, ["ops@example.org"])
        assert "multipart/related" not in parts(mail) and "cid:" not in parts(mail)["text/html"].get_content()
    png = tmp_path / "snapshot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    assert "image/png" in parts(compose(alert(snapshot_path=str(png)), SENDER, ["ops@example.org"]))
    assert "multipart/related" not in parts(compose(alert(snapshot_path=str(tmp_path / "gone.jpg")), SENDER,
                                                    ["ops@example.org"]))


def test_a_snapshot_in_the_artefact_store_is_inlined_from_there(tmp_path: Path) -> None:
    store = LocalArtefactStore(tmp_path / "artefacts")
    reference = as_reference(store.put_bytes(JPEG, "jpg"))
    image = parts(compose(alert(snapshot_path=reference), SENDER, ["ops@example.org"], store))["image/jpeg"]
    assert image.get_content() == JPEG and image.get_filename() == "snapshot.jpg"
    gone = as_reference(address_of("0" * 64, "jpg"))
    for snapshot, artefacts in ((reference, None), (gone, store)):  # no store to read, or nothing there
        assert "multipart/related" not in parts(compose(alert(snapshot_path=snapshot), SENDER, ["ops@example.org"],
                                                        artefacts))


def test_a_title_with_line_breaks_cannot_add_headers() -> None:
    message = alert(title="Fire\r\nBcc: thief@evil.example\nX-Injected: yes", incident_id="inc-7\r\nX-Also: 1",
                    links={"incident": "javascript:alert(1)"})
    inbox = Inbox()
    with smtp_server(inbox) as port:
        assert email_sender(settings(port))(delivery(message, "ops@example.org")).ok
    [received] = inbox.messages
    assert received.recipients == ["ops@example.org"]
    assert received.message["Subject"] == "Fire Bcc: thief@evil.example X-Injected: yes"
    assert received.message["X-Watchkeeper-Incident"] == "inc-7 X-Also: 1"
    assert "X-Injected" not in received.message and "X-Also" not in received.message
    assert "javascript:" not in parts(received.message)["text/html"].get_content()


def test_a_malformed_delivery_fails_for_good() -> None:
    sender = email_sender(settings(free_port()))  # nothing is contacted
    for target in ("", "ops@example.org\r\nBcc: thief@evil.example", "not an address"):
        outcome = sender(delivery(alert(), target))
        assert not outcome.ok and not outcome.retry and "cannot compose" in (outcome.error or "")
    broken = SimpleNamespace(target="ops@example.org", payload={"kind": "incident"})
    assert not sender(broken).retry  # type: ignore[arg-type]


# ---------------------------------------------------------------- connection security


def test_starttls_when_required_and_when_offered(trusted: tuple[Path, Path]) -> None:
    inbox = Inbox(logins={"watch": PASSWORD})
    with smtp_server(inbox, tls_context=server_context(*trusted), require_starttls=True) as port:
        for security in ("starttls", "auto"):
            outcome = email_sender(settings(port, security=security, username="watch", password=PASSWORD))(
                delivery(alert()))
            assert outcome.ok, outcome.error
    assert [(m.tls, m.login) for m in inbox.messages] == [(True, "watch"), (True, "watch")]


def test_tls_from_the_first_byte(trusted: tuple[Path, Path]) -> None:
    inbox = Inbox()
    with smtp_server(inbox, ssl_context=server_context(*trusted)) as port:
        send(settings(port, security="ssl"), compose(alert(), SENDER, ["ops@example.org"]))
    assert [m.tls for m in inbox.messages] == [True]


def test_an_untrusted_certificate_is_a_retryable_failure(certificate: tuple[Path, Path]) -> None:
    inbox = Inbox()
    with smtp_server(inbox, tls_context=server_context(*certificate)) as port:
        outcome = email_sender(settings(port, security="starttls"))(delivery(alert()))
    assert not outcome.ok and outcome.retry and "certificate" in (outcome.error or "").lower()
    assert inbox.messages == []


def test_required_starttls_not_offered_is_a_final_failure() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        outcome = email_sender(settings(port, security="starttls"))(delivery(alert()))
    # The server's set-up, not a passing hiccup: said at once (in /health) rather than retried for hours.
    assert not outcome.ok and not outcome.retry and "STARTTLS" in (outcome.error or "")
    assert inbox.messages == []


def test_auto_does_not_send_the_password_over_a_plain_connection() -> None:
    inbox = Inbox(logins={"watch": PASSWORD})
    with smtp_server(inbox, auth_require_tls=False) as port:
        outcome = email_sender(settings(port, security="auto", username="watch", password=PASSWORD))(
            delivery(alert()))
        assert not outcome.ok and "STARTTLS" in (outcome.error or "")
        assert inbox.login_attempts == [] and inbox.messages == []
        assert email_sender(settings(port, security="auto"))(delivery(alert())).ok  # no password: plain is fine
        # Chosen explicitly, a plain connection may carry it.
        assert email_sender(settings(port, security="none", username="watch", password=PASSWORD))(
            delivery(alert())).ok
    assert [(m.tls, m.login) for m in inbox.messages] == [(False, None), (False, "watch")]


def test_a_wrong_password_fails_for_good_without_showing_it(trusted: tuple[Path, Path]) -> None:
    inbox = Inbox(logins={"watch": PASSWORD})
    with smtp_server(inbox, tls_context=server_context(*trusted)) as port:
        outcome = email_sender(settings(port, security="starttls", username="watch", password="wrong-" + PASSWORD))(
            delivery(alert()))
    assert not outcome.ok and not outcome.retry and outcome.status_code == 535
    assert PASSWORD not in (outcome.error or "") and inbox.messages == []


# ---------------------------------------------------------------- what a failure means for the next try


@pytest.mark.parametrize(("reply", "retry"), [("550 5.1.1 no such mailbox", False),
                                               ("451 4.3.0 try again later", True)])
def test_refused_recipients(reply: str, retry: bool) -> None:
    with smtp_server(Inbox(rcpt_reply=reply)) as port:
        outcome = email_sender(settings(port))(delivery(alert()))
    assert not outcome.ok and outcome.retry is retry and outcome.status_code == int(reply[:3])
    assert "ops@example.org" in (outcome.error or "") and reply[4:] in (outcome.error or "")


def test_nothing_listening_is_a_retryable_failure() -> None:
    outcome = email_sender(settings(free_port(), password=PASSWORD, username="watch"))(delivery(alert()))
    assert not outcome.ok and outcome.retry and outcome.status_code is None
    assert "ConnectionRefusedError" in (outcome.error or "")


# ---------------------------------------------------------------- through the outbox


def test_the_outbox_delivers_once_the_server_comes_up(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'watchkeeper.db'}")
    db.upgrade()
    port = free_port()  # nothing listens here yet
    with db.session() as session:
        queued = enqueue(session, channel="email", target="ops@example.org", event="incident.opened",
                         payload=alert().model_dump(mode="json"))
        assert queued is not None
        delivery_id = queued.id
    dispatcher = Dispatcher(db, {"email": email_sender(settings(port))}, max_attempts=50, backoff_s=0.05,
                            backoff_max_s=0.1, poll_s=0.02)

    def load() -> Delivery:
        with db.session(write=False) as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            _ = row.log  # loaded while the session is open
            return row

    inbox = Inbox()
    dispatcher.start()
    try:
        wait_until(lambda: len(load().log) >= 3, "three failed attempts", timeout_s=15)
        with smtp_server(inbox, port=port):
            wait_until(lambda: load().state != "pending", "the delivery to settle", timeout_s=15)
            time.sleep(0.2)  # more passes: nothing is sent twice
        row = load()
    finally:
        dispatcher.stop()
        db.close()

    assert len(inbox.messages) == 1 and inbox.messages[0].recipients == ["ops@example.org"]
    assert inbox.messages[0].message["Subject"] == "Fire in the loading bay"
    assert row.state == "delivered" and row.last_error is None and row.attempts == len(row.log) >= 4
    *failures, success = row.log
    assert all(not a.ok and a.status_code is None and "ConnectionRefusedError" in (a.error or "") for a in failures)
    assert success.ok and success.status_code == 250
