"""MQTT: alerts, camera state and Home Assistant discovery over one broker connection per server process.

Topics (``<prefix>`` is ``mqtt.topic_prefix``; ``<camera>`` a camera's slug, ``analysis`` for alerts without one):

- ``<prefix>/status``: ``online`` / ``offline``, retained; the last will says ``offline`` if the server dies.
- ``<prefix>/events``: every alert, AlertMessage JSON, not retained.
- ``<prefix>/<camera>/<category>``: the camera's alerts of that category, JSON, not retained.
- ``<prefix>/<camera>/<category>/open``: ``ON`` while an incident of that category is open there, retained.
- ``<prefix>/<camera>/last_incident``: the camera's last alert, JSON, retained.
- ``<prefix>/<camera>/severity``: the highest severity open on the camera, ``0`` for none, retained.
- ``<prefix>/<camera>/state``, ``<prefix>/<camera>/health``: capture state and its details (JSON), retained.

Home Assistant discovery configs are retained at ``<discovery_prefix>/<component>/<node>/<camera>__<key>/config``,
``<node>`` being the topic prefix's slug, so two servers with their own prefixes share a broker.
"""

from __future__ import annotations

import json
from collections import OrderedDict
import logging
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from .. import __version__
from ..config import MqttSettings
from ..delivery.dispatcher import Sender, SendOutcome
from ..store.models import Delivery
from ..taxonomy import BUILTIN_CATEGORIES
from .message import AlertMessage, alert_sender

log = logging.getLogger(__name__)

NO_CAMERA = "analysis"  # the camera slug of alerts from uploaded media
# Categories about things rather than people: Home Assistant shows them as problems, the rest as safety.
_PROBLEM_CATEGORIES = frozenset({"equipment"})


CLOSED_REMEMBERED = 10_000


class MqttError(Exception):
    """The broker did not take a message: not connected, or no acknowledgement in time."""


def slugify(name: str) -> str:
    """A name as one MQTT topic level and Home Assistant id part: ``[a-z0-9_]``, no ``__`` (the id separator)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unnamed"


class MqttPublisher:
    """The server's broker connection: reconnects by itself, says online/offline, and publishes thread-safely.

    Retained messages are the state this process wants on the broker: each is remembered, even when its
    publish fails, and published again on every (re)connect, so a broker restarted without persistence or
    down at startup catches up.
    """

    def __init__(self, settings: MqttSettings) -> None:
        if not settings.host:
            raise ValueError("mqtt.host is not set")
        self.settings = settings
        self.prefix = settings.topic_prefix.rstrip("/")
        self.status_topic = f"{self.prefix}/status"
        self._node = slugify(self.prefix)
        self._lock = threading.Lock()  # guards the two dicts below
        self._retained: dict[str, str] = {}
        self._announced: dict[str, dict[str, str]] = {}  # camera slug -> categories in its discovery configs
        self._open: dict[str, dict[str, tuple[str | None, int]]] = {}  # camera -> incident -> (category, severity)
        self._closed: OrderedDict[str, None] = OrderedDict()  # incidents closed lately, oldest first
        self._alerts_lock = threading.Lock()  # one alert's retained states at a time, so they stay consistent
        self._started = False
        self._warned = False

        client_id = settings.client_id or f"watchkeeper-{uuid.uuid4().hex[:12]}"
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if settings.username:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            self._client.tls_set_context(ssl.create_default_context())
        self._client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect

    # -- connection ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._client.is_connected()

    def start(self) -> None:
        """Connect in paho's network thread: never blocks, and keeps trying while the broker is away."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        self._client.loop_start()

    def stop(self, timeout_s: float = 5) -> None:
        """Say ``offline`` and disconnect cleanly, so the broker does not also send the last will."""
        if not self._started:
            return
        self._started = False
        if self.connected:
            info = self._client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not say offline on MQTT: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self._where, reason)
            return
        self._warned = False
        log.info("connected to MQTT broker %s", self._where)
        # Not waited for: this runs in the network thread, which receives the acknowledgements.
        client.publish(self.status_topic, "online", qos=1, retain=True)
        with self._lock:
            retained = list(self._retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=1, retain=True)

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        if not self._warned:  # once per outage; paho retries with backoff
            self._warned = True
            log.warning("cannot reach MQTT broker %s; retrying in the background", self._where)

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._started:
            log.warning("lost the MQTT broker %s (%s); reconnecting", self._where, reason)

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- publishing ------------------------------------------------------------------------------
    def publish(self, topic: str, payload: str, *, retain: bool = False, qos: int = 1, timeout_s: float = 10) -> None:
        """Publish and wait for the broker's acknowledgement (QoS 1); raises MqttError if it does not come."""
        self._publish_many([(topic, payload)], retain=retain, qos=qos, timeout_s=timeout_s)

    def _publish_many(self, messages: Iterable[tuple[str, str]], *, retain: bool, qos: int = 1,
                      timeout_s: float = 10, wait: bool = True) -> None:
        """Send all, then wait for all: one round trip for a batch rather than one per message.

        Retained state (camera state, discovery) is remembered and published again on every connect, so a
        broker that is away is no error for it; ``wait=False`` also spares the caller (a camera's capture
        thread) the round trip."""
        messages = list(messages)
        if retain:
            with self._lock:
                self._retained.update(messages)
        if not self.connected:
            if retain:
                return
            raise MqttError(f"not connected to the MQTT broker {self._where}")
        sent = [(topic, self._client.publish(topic, payload, qos=qos, retain=retain)) for topic, payload in messages]
        if not wait:
            return
        deadline = time.monotonic() + timeout_s
        for topic, info in sent:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                raise MqttError(f"MQTT publish to {topic} failed: {exc}") from exc
            if not info.is_published():
                raise MqttError(f"the MQTT broker {self._where} did not acknowledge {topic} within {timeout_s} s")

    # -- alerts ----------------------------------------------------------------------------------
    def publish_alert(self, message: AlertMessage) -> None:
        """The alert on the events and camera/category topics, then the camera's retained states."""
        camera = slugify(message.camera) if message.camera else NO_CAMERA
        base = f"{self.prefix}/{camera}"
        body = message.model_dump_json(exclude={"snapshot_path"})  # a path on this server means nothing there
        events = [(f"{self.prefix}/events", body)]
        if message.category:
            events.append((f"{base}/{message.category}", body))
        self._publish_many(events, retain=False)
        with self._alerts_lock:
            incidents = self._open.setdefault(camera, {})
            touched = self._track(incidents, message)
            severity = max((severity for _, severity in incidents.values()), default=0)
            open_categories = {category for category, _ in incidents.values()}
            states = [(f"{base}/last_incident", body), (f"{base}/severity", str(severity))]
            states += [(f"{base}/{category}/open", "ON" if category in open_categories else "OFF")
                       for category in touched]
            self._publish_many(states, retain=True)

    def _track(self, incidents: dict[str, tuple[str | None, int]], message: AlertMessage) -> set[str]:
        """Follow a camera's open incidents (several may share a category); returns the categories this changes.

        Only the incident's own events count (an escalation re-sends an old one), and a retried event that
        arrives after the incident closed changes nothing: the sensor must not stay on for good."""
        if message.kind != "incident" or not (message.incident_id and message.event):
            return set()
        if message.incident_id in self._closed:
            return set()
        if message.event == "closed":
            self._closed[message.incident_id] = None
            while len(self._closed) > CLOSED_REMEMBERED:
                self._closed.popitem(last=False)
        previous = incidents.pop(message.incident_id, None)
        if message.event != "closed":
            incidents[message.incident_id] = (message.category, message.severity)
        return {c for c in (message.category, previous and previous[0]) if c}  # an update may change the category

    # -- cameras ---------------------------------------------------------------------------------
    def camera_state(self, name: str, state: str, health: dict[str, Any]) -> None:
        """The capture state (connected, reconnecting...) and its details, retained."""
        base = f"{self.prefix}/{slugify(name)}"
        self._publish_many([(f"{base}/state", state), (f"{base}/health", json.dumps(health, default=str))],
                           retain=True, wait=False)

    def announce_camera(self, name: str, location: str, categories: dict[str, str]) -> None:
        """Home Assistant discovery for one camera device; configs of categories dropped since are removed."""
        if not self.settings.discovery:
            return
        camera = slugify(name)
        with self._lock:
            dropped = set(self._announced.get(camera, {})) - set(categories)
            self._announced[camera] = dict(categories)
        configs = [(topic, json.dumps(config)) for topic, config in self._discovery(name, location, categories)]
        configs += [(self._config_topic("binary_sensor", camera, category), "") for category in dropped]
        self._publish_many(configs, retain=True)

    def forget_camera(self, name: str) -> None:
        """Remove the camera's discovery configs and retained states (empty retained messages).

        The categories are those last announced by this process, else the built-in ones.
        """
        camera = slugify(name)
        with self._lock:
            categories = self._announced.pop(camera, None) or {c.id: c.name for c in BUILTIN_CATEGORIES}
        with self._alerts_lock:
            self._open.pop(camera, None)
        base = f"{self.prefix}/{camera}"
        topics = [topic for topic, _ in self._discovery(name, "", categories)]
        topics += [f"{base}/{key}" for key in ("last_incident", "severity", "state", "health")]
        topics += [f"{base}/{category}/open" for category in categories]
        self._publish_many([(topic, "") for topic in topics], retain=True)

    def _discovery(self, name: str, location: str, categories: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
        """(config topic, config) for the camera's sensors and its per-category binary sensors."""
        camera = slugify(name)
        base = f"{self.prefix}/{camera}"
        device: dict[str, Any] = {"identifiers": [f"{self._node}__{camera}"], "name": name,
                                  "manufacturer": "Watchkeeper", "model": "Camera", "sw_version": __version__}
        if location:
            device["suggested_area"] = location

        def entity(component: str, key: str, title: str, **fields: Any) -> tuple[str, dict[str, Any]]:
            config = {"name": title, "unique_id": f"{self._node}__{camera}__{key}", "has_entity_name": True,
                      "availability_topic": self.status_topic, "device": device,
                      "origin": {"name": "Watchkeeper", "sw_version": __version__}, **fields}
            return self._config_topic(component, camera, key), config

        return [
            entity("sensor", "last_incident", "Last incident", state_topic=f"{base}/last_incident",
                   value_template="{{ value_json.category_name or value_json.category or value_json.kind }}",
                   json_attributes_topic=f"{base}/last_incident", icon="mdi:alert-octagon"),
            entity("sensor", "severity", "Severity", state_topic=f"{base}/severity", state_class="measurement",
                   icon="mdi:alert"),
            entity("sensor", "camera_state", "Camera state", state_topic=f"{base}/state",
                   json_attributes_topic=f"{base}/health", icon="mdi:cctv"),
            *(entity("binary_sensor", category, title, state_topic=f"{base}/{category}/open", payload_on="ON",
                     payload_off="OFF", device_class="problem" if category in _PROBLEM_CATEGORIES else "safety")
              for category, title in categories.items()),
        ]


    def _config_topic(self, component: str, camera: str, key: str) -> str:
        return f"{self.settings.discovery_prefix}/{component}/{self._node}/{camera}__{key}/config"


def mqtt_sender(publisher: MqttPublisher) -> Sender:
    """The dispatcher's ``mqtt`` channel: a broker that is away is retried, a payload that is no alert is not."""

    @alert_sender
    def send(delivery: Delivery, message: AlertMessage) -> SendOutcome:
        try:
            publisher.publish_alert(message)
        except MqttError as exc:
            return SendOutcome(ok=False, error=str(exc), retry=True)
        return SendOutcome(ok=True)

    return send
