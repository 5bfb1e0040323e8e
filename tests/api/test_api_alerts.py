"""Alerts from a live camera on a real server: the e-mail (a real SMTP server), the signed webhook, the
acknowledge link, and /health naming a channel that keeps failing."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import numpy as np
import pytest
import yaml
from apiserver import WEBHOOK_SECRET, ApiServer, base_settings
from loopback_http import LoopbackServer, Reply
from mediagen import noise, still_room, write_video
from polling import free_port, wait_until
from smtp_servers import Inbox, smtp_server

from watchkeeper.delivery import verify
from watchkeeper.samples import siren

FPS = 15


@pytest.fixture(scope="module")
def alerting(media_root: Path, tmp_path_factory):
    """A server watching a room where a siren sounds, routing every incident to e-mail, a webhook and a dead
    chat service."""
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    hall = write_video(tmp_path_factory.mktemp("cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS, audio=audio)
    inbox = Inbox()
    with smtp_server(inbox) as smtp_port, LoopbackServer() as receiver:
        receiver.replies["/alerts"] = Reply(204)
        settings = base_settings(media_root, allowed_private_networks=["127.0.0.1/32"])
        settings["live"] = {"cameras": [{"name": "hall", "source": str(hall), "location": "Main hall", "loop": True}],
                            "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}, "gate": {"cooldown_s": 3.0}}
        settings["alerts"] = {
            "email": {"host": "127.0.0.1", "port": smtp_port, "sender": "alerts@example.org", "security": "none"},
            "groups": {"desk": {"emails": ["desk@example.org"], "webhooks": [f"{receiver.url}/alerts"],
                                "apprise": [f"json://127.0.0.1:{free_port()}/nobody-listens"]}},
            "routes": [{"name": "all", "groups": ["desk"]}],
        }
        prefix = f"wk-test-{uuid.uuid4().hex[:8]}"
        settings["mqtt"] = {"host": "127.0.0.1", "topic_prefix": prefix, "discovery_prefix": f"{prefix}-ha"}
        server = ApiServer(tmp_path_factory.mktemp("alerts"), settings)
        settings["public_url"] = server.url  # links in alerts are absolute: this server as people reach it
        server.config.write_text(yaml.safe_dump(settings))
        server.bootstrap_admin()
        server.start()
        try:
            yield server, inbox, receiver
        finally:
            server.stop()


def test_a_live_incident_is_emailed_with_its_snapshot_and_acknowledged_through_the_link(alerting):
    server, inbox, _ = alerting
    received = wait_until(lambda: inbox.messages and inbox.messages[0], "the alert e-mail", 90)
    message = received.message
    assert received.recipients == ["desk@example.org"] and "Alarm or siren at Main hall" in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert any(part.get_content_type() == "image/jpeg" for part in message.walk())  # the snapshot, inline
    ack = re.search(r'href="(http://127\.0\.0\.1:\d+/ack/(\d+)\?[^"]+)"', html)
    link, incident_id = ack.group(1).replace("&amp;", "&"), ack.group(2)
    page = httpx.get(link)
    assert page.status_code == 200 and "Acknowledge this incident?" in page.text  # a mail scanner changes nothing
    with server.client(server.admin_key) as admin:
        assert admin.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "open"
        done = httpx.post(link)
        assert done.status_code == 200 and "Acknowledged" in done.text
        assert admin.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "acknowledged"
        audit = admin.get("/api/v1/audit", params={"action": "incident.status", "target_id": incident_id}).json()
        assert audit["items"][0]["via"] == "link" and audit["items"][0]["actor_name"] == "acknowledge link"
    forged = link.replace("signature=", "signature=0.x")
    assert httpx.post(forged).status_code == 401
    # One incident, one e-mail: the siren's updates did not mail again.
    assert sum(1 for r in inbox.messages if f"/ack/{incident_id}?" in r.message.get_body(("html",)).get_content()) == 1


def test_the_webhook_gets_the_alert_signed(alerting):
    _, _, receiver = alerting
    [first, *_] = receiver.wait_for(1, 90)
    body = json.loads(first.body)
    assert verify(WEBHOOK_SECRET, first.body, first.headers["x-watchkeeper-signature"])
    assert body["kind"] == "incident" and body["category"] == "alarm" and body["camera"] == "hall"
    assert first.headers["x-watchkeeper-event"] == "alert.incident"


def test_the_broker_hears_the_alerts_and_home_assistant_finds_the_camera(alerting):
    server, _, _ = alerting
    settings = yaml.safe_load(server.config.read_text())["mqtt"]
    prefix, discovery = settings["topic_prefix"], settings["discovery_prefix"]
    heard: dict[str, list[bytes]] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, message: heard.setdefault(message.topic, []).append(message.payload)
    client.connect("127.0.0.1", 1883)
    client.subscribe([(f"{prefix}/#", 1), (f"{discovery}/#", 1)])
    client.loop_start()
    try:
        wait_until(lambda: f"{prefix}/events" in heard, "an alert on the events topic", 60)
        seen = {topic: list(payloads) for topic, payloads in heard.items()}  # before the clean-up below is heard
    finally:
        for topic in list(heard):  # leave no retained messages behind on the shared broker
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
    alert = json.loads(seen[f"{prefix}/events"][0])
    assert alert["camera"] == "hall" and alert["category"] == "alarm" and "snapshot_path" not in alert
    assert seen[f"{prefix}/status"][-1] == b"online"
    configs = {topic: json.loads(payloads[-1]) for topic, payloads in seen.items()
               if topic.startswith(discovery) and payloads[-1]}
    alarm = next(c for t, c in configs.items() if t.startswith(f"{discovery}/binary_sensor/") and "__alarm/" in t)
    assert alarm["availability_topic"] == f"{prefix}/status" and alarm["device"]["name"] == "hall"


def test_health_names_the_channel_that_keeps_failing(alerting):
    server, _, _ = alerting
    with server.client(server.admin_key) as admin:
        channels = wait_until(lambda: (c := admin.get("/health").json()["alert_channels"])["apprise"]["failing"] and c,
                              "three failed chat attempts", 60)
    assert channels["email"]["failing"] is False and channels["email"]["last_delivered_at"]
    assert "nobody-listens" not in json.dumps(channels)  # the chat URL (a secret) is not shown
    assert httpx.get(f"{server.url}/health").json().get("alert_channels") is None  # strangers see none of it


def test_alerts_queued_when_the_server_dies_are_sent_once_after_the_restart(media_root, tmp_path):
    smtp_port = free_port()  # nothing listens there yet: the first attempts fail and are retried
    settings = base_settings(media_root)
    settings["alerts"] = {"email": {"host": "127.0.0.1", "port": smtp_port, "sender": "alerts@example.org",
                                    "security": "none"},
                          "groups": {"default": {"emails": ["desk@example.org"]}}}
    server = ApiServer(tmp_path, settings)
    server.bootstrap_admin()
    server.start()
    try:
        with server.client(server.admin_key) as admin:
            answer = admin.post("/notify", json={"detection_result": {"crime_type": "Theft", "confidence": "high",
                                                                      "potential_severity": "high"}})
            assert answer.status_code == 200 and answer.json()["status"] == "queued"
        server.kill()  # with the alert still in the outbox
        inbox = Inbox()
        with smtp_server(inbox, port=smtp_port):
            server.start()
            wait_until(lambda: inbox.messages, "the queued alert after the restart", 60)
            with server.client(server.admin_key) as admin:
                wait_until(lambda: admin.get("/health").json()["alert_channels"]["email"]["last_delivered_at"],
                           "the delivery recorded")
    finally:
        server.stop()
    assert len(inbox.messages) == 1 and "Theft" in inbox.messages[0].message["Subject"]
