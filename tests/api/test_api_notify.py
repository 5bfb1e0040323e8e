"""E-mail through seed 000's notification settings, received by a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import pytest
from apiserver import assert_problem, base_settings, finished_job
from polling import wait_until
from smtp_servers import Inbox, smtp_server


# A recipient the test SMTP server refuses, with words about its internals that must not reach API clients.
REFUSED = "refused@example.com"
REFUSAL = "550 5.7.1 relay-7.mail.internal refuses this recipient"


@pytest.fixture(scope="module")
def inbox():
    handler = Inbox(refuse={REFUSED: REFUSAL})
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture(scope="module")
def mail_server(start_server, media_root, inbox):
    _, port = inbox
    settings = base_settings(media_root)
    settings["notification"] = {"smtp_server": "127.0.0.1", "port": port, "sender_email": "alerts@example.com",
                                "default_recipients": ["security@example.com"], "notify_threshold": "low"}
    server = start_server("mail", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


def test_notify_sends_the_seed_000_email(mail_server, inbox, media_root):
    handler, _ = inbox
    with mail_server.client(mail_server.admin_key) as client:
        assert client.get("/health").json()["notification_enabled"] is True
        response = client.post("/notify", json={
            "detection_result": {"crime_detected": True, "crime_type": "Vandalism/Property Damage",
                                 "confidence": "high", "potential_severity": "medium",
                                 "evidence_description": "Graffiti being sprayed on a wall.",
                                 "recommendations": "Dispatch security to investigate."},
            "media_path": str(media_root / "room.jpg"),
        })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "sent" and body["recipients"] == ["security@example.com"]
    assert body["crime_type"] == "Vandalism/Property Damage" and body["severity"] == "medium" and body["timestamp"]
    recipients, message = handler.messages[-1].recipients, handler.messages[-1].message
    assert recipients == ["security@example.com"] and "Vandalism" in message["Subject"]
    assert message["From"] == "alerts@example.com"
    parts = [part.get_filename() for part in message.walk()]
    assert "room.jpg" in parts


def test_a_job_with_notify_emails_when_it_finds_a_crime(mail_server, inbox, media_root):
    handler, _ = inbox
    before = len(handler.messages)
    with mail_server.client(mail_server.admin_key) as client:
        queued = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "async": True,
                                                     "notify": True}).json()
        assert finished_job(client, queued["job_id"])["crime_detected"] is True
    wait_until(lambda: len(handler.messages) > before, "the alert e-mail")
    message = handler.messages[-1].message
    assert "Alarm or siren" in message["Subject"] and message.is_multipart()


DETECTION = {"crime_detected": True, "crime_type": "Vandalism", "potential_severity": "medium"}


def test_only_admins_choose_recipients_beyond_the_configured_ones(mail_server, inbox):
    handler, _ = inbox
    with (mail_server.client(mail_server.new_user_key("nora", "operator")) as operator,
          mail_server.client(mail_server.admin_key) as admin):
        # Seed 000's usage: no recipients, the configured ones get it.
        assert operator.post("/notify", json={"detection_result": DETECTION}).json()["recipients"] == \
            ["security@example.com"]
        assert operator.post("/notify", json={"detection_result": DETECTION,
                                              "recipients": ["Security@example.com"]}).status_code == 200
        before = len(handler.messages)
        refused = operator.post("/notify", json={"detection_result": DETECTION,
                                                 "recipients": ["security@example.com", "anyone@elsewhere.example"]})
        assert_problem(refused, 403, "forbidden")
        assert len(handler.messages) == before
        sent = admin.post("/notify", json={"detection_result": DETECTION, "recipients": ["anyone@elsewhere.example"]})
        assert sent.status_code == 200, sent.text
    assert handler.messages[-1].recipients == ["anyone@elsewhere.example"]


def test_a_refused_message_is_a_502_without_the_mail_servers_words(mail_server):
    with mail_server.client(mail_server.admin_key) as admin:
        response = admin.post("/notify", json={"detection_result": DETECTION, "recipients": [REFUSED]})
    detail = assert_problem(response, 502, "delivery_failed")["detail"]
    assert "relay-7" not in detail and "550" not in detail
    assert "relay-7.mail.internal" in mail_server.log.read_text()  # for the server's operator
