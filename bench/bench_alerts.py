"""Alert latency benchmark: prints a table and writes bench/results/alerts.json.

A live camera (a file played in real time on a loop, with a siren at 3 s of
every 20 s pass) on the server's own live service, alert router, outbox and
dispatcher, with a real SMTP server (aiosmtpd) and a real MQTT broker
(Mosquitto on 127.0.0.1:1883) on loopback. For every incident: the time from
the incident event (the monitor's decision, as the WebSocket feed gets it) to
the e-mail's arrival at the SMTP server and to the alert's arrival at an MQTT
subscriber.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller

from watchkeeper.auth.links import load_or_create_secret
from watchkeeper.config import Settings
from watchkeeper.delivery.dispatcher import Dispatcher
from watchkeeper.live.service import LiveService
from watchkeeper.notify.service import AlertService
from watchkeeper.samples import noise, siren, still_room, write_video
from watchkeeper.store.db import open_database

SIREN_AT_S, PASS_S, FPS = 3.0, 20.0, 15


class Arrivals:
    """Wall-clock arrival times, appended from the SMTP and MQTT threads."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.times.append(time.time())

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001 - aiosmtpd's handler protocol
        self.add()
        return "250 OK"


def first_after(moments: list[float], arrivals: list[float]) -> list[float]:
    return [min((a for a in arrivals if a >= t), default=float("nan")) - t for t in moments]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=70.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "alerts.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    audio = np.concatenate([noise(SIREN_AT_S), siren(6.0), noise(PASS_S - SIREN_AT_S - 6.0)])
    camera_file = write_video(scratch / "hall.mp4", (still_room(seed=i % 3) for i in range(int(PASS_S * FPS))),
                              fps=FPS, audio=audio)

    mail, heard_on_mqtt = Arrivals(), Arrivals()
    with socket.socket() as probe:  # a free port: aiosmtpd's start-up check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mail, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    prefix = f"wk-bench-{uuid.uuid4().hex[:8]}"
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda client, userdata, message: heard_on_mqtt.add()
    subscriber.connect("127.0.0.1", 1883)
    subscriber.subscribe(f"{prefix}/events", qos=1)
    subscriber.loop_start()

    settings = Settings(
        data_dir=scratch / "data", mqtt={"host": "127.0.0.1", "topic_prefix": prefix, "discovery": False},
        alerts={"email": {"host": "127.0.0.1", "port": smtp_port,
                          "security": "none", "sender": "alerts@example.org"},
                "groups": {"desk": {"emails": ["desk@example.org"]}}, "routes": [{"name": "all", "groups": ["desk"]}]},
        live={"cameras": [{"name": "hall", "source": str(camera_file), "loop": True, "location": "Hall"}],
              "gate": {"cooldown_s": 4.0}, "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}})
    db = open_database(settings)
    alerts = AlertService(settings, db, load_or_create_secret(scratch / "link.key"))
    dispatcher = Dispatcher(db, alerts.senders(), max_attempts=5, backoff_s=0.5, backoff_max_s=5.0)
    alerts.wake = dispatcher.wake
    live = LiveService(settings, db, alerts=alerts)
    opened: list[float] = []
    dispatcher.start()
    alerts.start()
    live.start()
    live.monitors["hall"].on_incident(
        lambda event: opened.append(event.at.timestamp()) if event.kind == "opened" else None)
    time.sleep(args.seconds)
    live.stop()
    time.sleep(2.0)  # the last alerts leave
    alerts.stop()
    dispatcher.stop()
    subscriber.loop_stop()
    smtp.stop()
    db.close()

    to_mail, to_mqtt = first_after(opened, mail.times), first_after(opened, heard_on_mqtt.times)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seconds": args.seconds, "incidents": len(opened), "emails": len(mail.times),
        "mqtt_messages": len(heard_on_mqtt.times),
        "incident_to_smtp_s": {"median": round(median(to_mail), 3), "max": round(max(to_mail), 3)} if opened else None,
        "incident_to_mqtt_s": {"median": round(median(to_mqtt), 3), "max": round(max(to_mqtt), 3)} if opened else None,
    }
    print(f"{'incidents':>10} {'e-mails':>8} {'mqtt':>5} {'to SMTP median/max s':>22} {'to MQTT median/max s':>22}")
    if opened:
        print(f"{len(opened):>10} {len(mail.times):>8} {len(heard_on_mqtt.times):>5} "
              f"{median(to_mail):>13.3f} / {max(to_mail):<6.3f} {median(to_mqtt):>13.3f} / {max(to_mqtt):<6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
