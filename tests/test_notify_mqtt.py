"""The MQTT channel against a real Mosquitto on 127.0.0.1:1883: availability, last will, discovery, alerts.

Each test has its own topic and discovery prefixes, so retained messages never cross tests; they are
cleared at the end. Retained state is read by a fresh subscriber that publishes a marker after
subscribing: once the marker is back, the broker has sent every retained message (no sleeping).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from polling import free_port, wait_until

from watchkeeper.config import MqttSettings
from watchkeeper.notify.message import AlertMessage
from watchkeeper.notify.mqtt import MqttPublisher, mqtt_sender, slugify
from watchkeeper.store.models import Delivery

HOST, PORT = "127.0.0.1", 1883
CAMERA = "Front Door.1"  # slug: front_door_1
CATEGORIES = {"fire": "Fire / smoke hazard", "equipment": "Equipment failure"}
WAIT_S = 10


@pytest.fixture(scope="module", autouse=True)
def broker() -> None:
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {HOST}:{PORT} ({exc}); these tests need a local Mosquitto")


class Listener:
    """A subscriber that keeps every message it receives."""

    def __init__(self, topic_filter: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: client.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = lambda _client, _userdata, message: self.messages.append(message)
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        assert subscribed.wait(WAIT_S), f"no SUBACK for {topic_filter}"

    def payloads(self, topic: str) -> list[str]:
        return [m.payload.decode() for m in list(self.messages) if m.topic == topic]

    def wait_for(self, topic: str, payload: str | None = None) -> str:
        """The newest payload on ``topic`` once one (equal to ``payload``, if given) has arrived."""
        def arrived() -> str | None:
            seen = self.payloads(topic)
            return seen[-1] if seen and payload in (None, seen[-1]) else None
        return wait_until(arrived, f"{payload or 'a message'} on {topic}", timeout_s=WAIT_S, every_s=0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(root: str) -> dict[str, str]:
    """The retained messages under ``root`` now, as a subscriber connecting now gets them."""
    listener = Listener(f"{root}/#")
    try:
        marker = f"{root}/sync/{uuid.uuid4().hex}"
        listener.client.publish(marker, "sync", qos=1)
        listener.wait_for(marker)
        return {m.topic: m.payload.decode() for m in listener.messages if m.retain}
    finally:
        listener.close()


class Names:
    def __init__(self) -> None:
        run = uuid.uuid4().hex[:10]
        self.prefix = f"wk-test-{run}"
        self.discovery = f"ha-test-{run}"
        self.camera = f"{self.prefix}/{slugify(CAMERA)}"


@pytest.fixture
def names() -> Iterator[Names]:
    names = Names()
    yield names
    cleaner = paho.Client(CallbackAPIVersion.VERSION2)
    cleaner.connect(HOST, PORT)
    cleaner.loop_start()
    for root in (names.prefix, names.discovery):
        for topic in retained(root):
            cleaner.publish(topic, b"", qos=1, retain=True).wait_for_publish(WAIT_S)
    cleaner.disconnect()
    cleaner.loop_stop()


@pytest.fixture
def listener(names: Names) -> Iterator[Listener]:
    listener = Listener(f"{names.prefix}/#")
    yield listener
    listener.close()


@pytest.fixture
def make_publisher(names: Names) -> Iterator[Callable[..., MqttPublisher]]:
    made: list[MqttPublisher] = []

    def make(*, start: bool = True, **settings: object) -> MqttPublisher:
        publisher = MqttPublisher(MqttSettings(**{"host": HOST, "port": PORT, "topic_prefix": names.prefix,
                                                  "discovery_prefix": names.discovery, **settings}))
        made.append(publisher)
        if start:
            publisher.start()
            wait_until(lambda: publisher.connected, "the publisher to connect", timeout_s=WAIT_S, every_s=0.02)
        return publisher

    yield make
    for publisher in made:
        publisher.stop()


def alert(event: str | None, incident_id: str | None, *, camera: str | None = CAMERA, category: str = "fire",
          severity: int = 4) -> Delivery:
    message = AlertMessage(
        kind="incident", event=event, incident_id=incident_id, title=f"{category} at {camera}", category=category,
        category_name=CATEGORIES[category], severity=severity, severity_label="CRITICAL", severity_color="#dc3545",
        severity_word="high", confidence=0.9, camera=camera, summary="Smoke near the door.",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    return Delivery(channel="mqtt", target="", event="alert", payload=message.model_dump(mode="json"))


# -- availability -------------------------------------------------------------------------------
def test_online_after_start_and_offline_after_stop(names, listener, make_publisher):
    status = f"{names.prefix}/status"
    publisher = make_publisher()
    listener.wait_for(status, "online")
    assert retained(names.prefix)[status] == "online"

    publisher.stop()
    listener.wait_for(status, "offline")
    assert retained(names.prefix)[status] == "offline"
    assert listener.payloads(status) == ["online", "offline"]  # said once: no last will after a clean disconnect


def test_last_will_when_the_connection_drops_then_reconnects(names, listener, make_publisher):
    status = f"{names.prefix}/status"
    publisher = make_publisher()
    listener.wait_for(status, "online")

    publisher._client.socket().shutdown(socket.SHUT_RDWR)  # gone without a DISCONNECT, as in a crash
    listener.wait_for(status, "offline")  # the broker's last will
    listener.wait_for(status, "online")  # paho reconnected by itself
    assert listener.payloads(status) == ["online", "offline", "online"]
    wait_until(lambda: publisher.connected, "the publisher to reconnect", timeout_s=WAIT_S)
    publisher.publish(f"{names.prefix}/probe", "after the reconnect")
    assert listener.wait_for(f"{names.prefix}/probe") == "after the reconnect"


# -- Home Assistant discovery -------------------------------------------------------------------
def test_discovery_configs_are_retained_for_later_subscribers(names, make_publisher):
    publisher = make_publisher()
    publisher.announce_camera(CAMERA, "Lobby", CATEGORIES)

    configs = {topic: json.loads(payload) for topic, payload in retained(names.discovery).items()}
    node = slugify(names.prefix)
    base = f"{names.discovery}/{{}}/{node}/front_door_1__{{}}/config"
    assert set(configs) == {base.format("sensor", "last_incident"), base.format("sensor", "severity"),
                            base.format("sensor", "camera_state"), base.format("binary_sensor", "fire"),
                            base.format("binary_sensor", "equipment")}
    assert len({c["unique_id"] for c in configs.values()}) == 5
    for config in configs.values():
        assert config["availability_topic"] == f"{names.prefix}/status"
        assert config["device"] == {"identifiers": [f"{node}__front_door_1"], "name": CAMERA,
                                    "manufacturer": "Watchkeeper", "model": "Camera", "suggested_area": "Lobby",
                                    "sw_version": config["device"]["sw_version"]}
        assert config["state_topic"].startswith(f"{names.camera}/")

    last = configs[base.format("sensor", "last_incident")]
    assert last["name"] == "Last incident"
    assert last["state_topic"] == last["json_attributes_topic"] == f"{names.camera}/last_incident"
    assert "value_json.category_name" in last["value_template"]
    assert configs[base.format("sensor", "severity")]["state_topic"] == f"{names.camera}/severity"
    assert configs[base.format("sensor", "camera_state")]["state_topic"] == f"{names.camera}/state"
    fire = configs[base.format("binary_sensor", "fire")]
    assert (fire["name"], fire["state_topic"], fire["payload_on"], fire["payload_off"], fire["device_class"]) == (
        "Fire / smoke hazard", f"{names.camera}/fire/open", "ON", "OFF", "safety")
    assert configs[base.format("binary_sensor", "equipment")]["device_class"] == "problem"

    publisher.announce_camera(CAMERA, "Lobby", {"fire": CATEGORIES["fire"]})  # a category dropped since
    assert base.format("binary_sensor", "equipment") not in retained(names.discovery)


def test_forget_camera_removes_its_configs_and_states(names, make_publisher):
    publisher = make_publisher()
    publisher.announce_camera(CAMERA, "Lobby", CATEGORIES)
    publisher.camera_state(CAMERA, "connected", {"fps": 12.5})
    assert retained(names.discovery) and retained(names.prefix).get(f"{names.camera}/state") == "connected"

    publisher.forget_camera(CAMERA)
    assert retained(names.discovery) == {}
    assert set(retained(names.prefix)) == {f"{names.prefix}/status"}


def test_no_discovery_when_it_is_off(names, make_publisher):
    make_publisher(discovery=False).announce_camera(CAMERA, "Lobby", CATEGORIES)
    assert retained(names.discovery) == {}


# -- states and alerts --------------------------------------------------------------------------
def test_camera_state_and_health_are_retained(names, make_publisher):
    make_publisher().camera_state(CAMERA, "reconnecting", {"reconnects": 2, "last_error": "timeout"})
    # Sent without waiting (a capture thread calls it): read once the broker has it.
    deadline = time.monotonic() + 5
    while f"{names.camera}/health" not in (states := retained(names.prefix)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert states[f"{names.camera}/state"] == "reconnecting"
    assert json.loads(states[f"{names.camera}/health"]) == {"reconnects": 2, "last_error": "timeout"}


def test_alerts_reach_the_topics_and_drive_the_binary_sensor(names, listener, make_publisher):
    send = mqtt_sender(make_publisher())

    assert send(alert("opened", "inc-1")).ok
    for topic in (f"{names.prefix}/events", f"{names.camera}/fire"):
        sent = json.loads(listener.wait_for(topic))
        assert (sent["incident_id"], sent["event"], sent["category"]) == ("inc-1", "opened", "fire")
        assert not [m for m in listener.messages if m.topic == topic and m.retain]
    states = retained(names.prefix)
    assert states[f"{names.camera}/fire/open"] == "ON"
    assert states[f"{names.camera}/severity"] == "4"
    last = json.loads(states[f"{names.camera}/last_incident"])
    assert (last["category_name"], last["incident_id"]) == ("Fire / smoke hazard", "inc-1")
    assert f"{names.prefix}/events" not in states and f"{names.camera}/fire" not in states

    assert send(alert("opened", "inc-2", severity=2)).ok  # a second fire on the same camera
    assert send(alert("closed", "inc-1")).ok
    states = retained(names.prefix)
    assert (states[f"{names.camera}/fire/open"], states[f"{names.camera}/severity"]) == ("ON", "2")
    assert json.loads(states[f"{names.camera}/last_incident"])["event"] == "closed"

    assert send(alert("closed", "inc-2", severity=2)).ok
    states = retained(names.prefix)
    assert (states[f"{names.camera}/fire/open"], states[f"{names.camera}/severity"]) == ("OFF", "0")


def test_an_alert_without_camera_goes_under_analysis(names, listener, make_publisher):
    assert mqtt_sender(make_publisher())(alert("opened", "inc-9", camera=None)).ok
    assert json.loads(listener.wait_for(f"{names.prefix}/analysis/fire"))["incident_id"] == "inc-9"
    assert retained(names.prefix)[f"{names.prefix}/analysis/fire/open"] == "ON"


def test_a_broker_that_is_down_means_retry(make_publisher):
    publisher = make_publisher(start=False, port=free_port())  # nothing listens there
    started = time.monotonic()
    publisher.start()
    outcome = mqtt_sender(publisher)(alert("opened", "inc-1"))
    assert time.monotonic() - started < 2
    assert (outcome.ok, outcome.retry) == (False, True)
    assert "not connected" in outcome.error
    assert not publisher.connected

    bad = Delivery(channel="mqtt", target="", event="alert", payload={"kind": "incident"})
    assert mqtt_sender(publisher)(bad).retry is False  # no broker makes a malformed alert valid
