"""`watchkeeper notify test CHANNEL`: one test alert through one channel, and a clear word when it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
