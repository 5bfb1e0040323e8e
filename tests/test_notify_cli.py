"""`watchkeeper notify test CHANNEL`: one test alert through one channel, and a clear word when it fails."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from polling import free_port
from smtp_servers import Inbox, smtp_server

EXE = str(Path(sys.executable).with_name("watchkeeper"))


def notify(tmp_path: Path, settings: dict, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **settings}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    return subprocess.run([EXE, "--config", str(config), "notify", "test", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_test_email_reaches_the_first_address_of_the_groups(tmp_path):
    inbox = Inbox()
    with smtp_server(inbox) as port:
        alerts = {"email": {"host": "127.0.0.1", "port": port, "security": "none", "sender": "a@example.org"},
                  "groups": {"desk": {"emails": ["desk@example.org"]}}}
        done = notify(tmp_path, {"alerts": alerts}, "email")
    assert done.returncode == 0, done.stderr
    assert "sent a test alert through email to desk@example.org" in done.stdout
    [received] = inbox.messages
    assert received.recipients == ["desk@example.org"] and "Test alert" in received.message["Subject"]


def test_a_failing_or_missing_channel_says_why(tmp_path):
    alerts = {"email": {"host": "127.0.0.1", "port": free_port(), "security": "none"},
              "groups": {"desk": {"emails": ["desk@example.org"]}}}
    down = notify(tmp_path, {"alerts": alerts}, "email")
    assert down.returncode == 2 and "email failed (will retry)" in down.stderr
    missing = notify(tmp_path, {}, "sms", "--to", "+15550001111")
    assert missing.returncode == 1 and "the sms channel is not configured" in missing.stderr
    unknown = notify(tmp_path, {}, "pigeon")
    assert unknown.returncode == 1 and "unknown channel 'pigeon'" in unknown.stderr


def test_a_test_alert_reaches_the_broker(tmp_path):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 1883)) != 0:
            pytest.skip("no MQTT broker on 127.0.0.1:1883")
    heard: list[bytes] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_message = lambda client, userdata, message: heard.append(message.payload)
    listener.connect("127.0.0.1", 1883)
    listener.subscribe("wk-cli-test/events", qos=1)
    listener.loop_start()
    try:
        done = notify(tmp_path, {"mqtt": {"host": "127.0.0.1", "topic_prefix": "wk-cli-test", "discovery": False}},
                      "mqtt")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.loop_stop()
        listener.disconnect()
    assert heard and b"Test alert" in heard[0]
