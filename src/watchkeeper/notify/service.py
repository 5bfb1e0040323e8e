"""The server's alerting: routes stored incidents to the outbox, runs escalation and the MQTT connection,
and says which channels keep failing.

Channels are the dispatcher's senders (one per channel name); the outbox and the dispatcher are the
service's own (``delivery``), so alerts get the same at-least-once delivery, retries, backoff and log as
job webhooks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..artefacts import open_artefact_store
from ..config import Settings
from ..delivery.dispatcher import Sender
from ..domain import AnalysisResult, Incident
from ..store.db import Database
from ..taxonomy import BUILTIN_CATEGORIES
from ..store.models import Analysis, Delivery, DeliveryAttempt, IncidentRecord, utcnow
from .compose import AlertLinks, incident_message
from .hooks import hook_sender
from .router import AlertRouter

log = logging.getLogger(__name__)

ESCALATION_CHECK_S = 15.0
ESCALATION_WINDOW = timedelta(hours=1)
FAILING_AFTER = 3  # a channel whose last attempts all failed is reported failing


class AlertService:
    def __init__(self, settings: Settings, db: Database, link_secret: bytes) -> None:
        self.settings = settings
        self.db = db
        self.links = AlertLinks(settings.public_url, link_secret, int(settings.alerts.ack_link_ttl_h * 3600))
        self.mqtt = None
        if settings.mqtt.host:
            from .mqtt import MqttPublisher  # paho only where a broker is configured

            self.mqtt = MqttPublisher(settings.mqtt)
        self.router = AlertRouter(settings, mqtt_enabled=self.mqtt is not None)
        self.categories = {c.id: c.name for c in BUILTIN_CATEGORIES} | {c.id: c.name for c in settings.categories}
        self.wake: Callable[[], None] = lambda: None  # the dispatcher's, once it exists
        self._stop = threading.Event()
        self._escalator: threading.Thread | None = None

    # -- channels --------------------------------------------------------------------------------
    def senders(self) -> dict[str, Sender]:
        """A sender per configured channel (webhooks are the server's own, shared with job callbacks)."""
        alerts = self.router.alerts
        senders: dict[str, Sender] = {"hook": hook_sender()}
        if alerts.email is not None and alerts.email.host:
            from .email import email_sender

            senders["email"] = email_sender(alerts.email, open_artefact_store(self.settings))  # the snapshots
        if alerts.twilio is not None and alerts.twilio.account_sid:
            from .sms import sms_sender

            senders["sms"] = sms_sender(alerts.twilio)
        if alerts.resend is not None and alerts.resend.api_key:
            from .resend import resend_sender

            senders["resend"] = resend_sender(alerts.resend)
        if any(group.apprise for group in alerts.groups.values()):
            from .apprise_channel import apprise_sender

            senders["apprise"] = apprise_sender()
        if self.mqtt is not None:
            from .mqtt import mqtt_sender

            senders["mqtt"] = mqtt_sender(self.mqtt)
        return senders

    # -- running ---------------------------------------------------------------------------------
    def start(self, cameras: dict[str, str] | None = None) -> None:
        """Connect to the broker (announcing ``cameras``, name -> location) and start escalating."""
        if self.mqtt is not None:
            self.mqtt.start()
            for name, location in (cameras or {}).items():
                self.announce_camera(name, location)
        if self.router.alerts.escalation is not None:
            self._stop.clear()
            self._escalator = threading.Thread(target=self._escalate_loop, name="watchkeeper-escalation", daemon=True)
            self._escalator.start()

    def stop(self) -> None:
        self._stop.set()
        if self._escalator is not None:
            self._escalator.join(10)
            self._escalator = None
        if self.mqtt is not None:
            self.mqtt.stop()

    def announce_camera(self, name: str, location: str) -> None:
        """Home Assistant discovery for a camera, with every category (built-in and the site's own)."""
        if self.mqtt is not None:
            self.mqtt.announce_camera(name, location, self.categories)

    def forget_camera(self, name: str) -> None:
        if self.mqtt is not None:
            self.mqtt.forget_camera(name)

    def camera_state(self, name: str, state: str, health: dict[str, Any]) -> None:
        if self.mqtt is not None:
            self.mqtt.camera_state(name, state, health)

    # -- incidents -------------------------------------------------------------------------------
    def incident_stored(self, session: Session, incident: Incident, *, incident_id: int, event: str,
                        location: str | None = None, window: AnalysisResult | None = None,
                        evidence: dict[str, Any] | None = None) -> int:
        """Queue the alerts of an incident in the transaction that stores it; returns how many."""
        if not self.router.active:
            return 0
        message = incident_message(incident, incident_id=incident_id, event=event, occurred_at=utcnow(),
                                   links_for=self.links, location=location, window=window, evidence=evidence)
        return len(self.router.enqueue(session, message))

    def analysis_stored(self, session: Session, analysis: Analysis, result: AnalysisResult) -> int:
        """Queue the alerts of an analysis's incidents (an analysis submitted with ``notify``)."""
        return sum(self.incident_stored(session, incident, incident_id=record.id, event="opened", window=result)
                   for record, incident in zip(analysis.incidents, result.incidents))

    # -- escalation ------------------------------------------------------------------------------
    def _escalate_loop(self) -> None:
        while not self._stop.wait(ESCALATION_CHECK_S):
            try:
                if self.escalate():
                    self.wake()
            except Exception:
                log.exception("escalation pass failed; trying again later")

    def escalate(self, now: datetime | None = None) -> int:
        """Re-notify the escalation groups about incidents that people were alerted to and that are still
        unacknowledged past the delay; returns how many deliveries that queued. Only incidents that crossed
        the delay within the last ``ESCALATION_WINDOW`` are looked at: the pass stays small however many old
        incidents nobody closed."""
        rule = self.router.alerts.escalation
        if rule is None:
            return 0
        now = now or utcnow()
        due = now - timedelta(minutes=rule.after_minutes)
        with self.db.session(write=False) as session:
            overdue = session.scalars(select(IncidentRecord).where(
                IncidentRecord.status == "open", IncidentRecord.severity >= rule.min_severity,
                IncidentRecord.created_at <= due, IncidentRecord.created_at > due - ESCALATION_WINDOW)).all()
            candidates = [record for record in overdue if self._people_were_alerted(session, record.id)]
        queued = 0
        for record in candidates:
            try:
                queued += self._escalate_one(record, now, rule.groups)
            except Exception:  # one odd record must not stop the others' escalation
                log.exception("could not escalate an incident", extra={"incident_id": record.id})
        if queued:
            log.warning("escalated unacknowledged incidents", extra={"deliveries": queued})
        return queued

    @staticmethod
    def _people_were_alerted(session: Session, incident_id: int) -> bool:
        """Whether a person was told (the broker and site hooks hear everything, so they do not count)."""
        keys = session.scalars(select(Delivery.dedupe_key).where(
            Delivery.dedupe_key.startswith(f"incident:{incident_id}:", autoescape=True))).all()
        return any(key.split(":")[3] not in ("mqtt", "hook") for key in keys)

    def _escalate_one(self, record: IncidentRecord, now: datetime, groups: list[str]) -> int:
        data = {k: v for k, v in record.data.items() if k != "live"}
        created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=timezone.utc)
        message = incident_message(
            Incident.model_validate(data), incident_id=record.id, event="opened", occurred_at=created,
            links_for=self.links, evidence=(record.data.get("live") or {}).get("evidence"), kind="escalation",
            waited_minutes=(now - created).total_seconds() / 60)
        with self.db.session() as session:
            if self.router.already_sent(session, message, groups):
                return 0
            return len(self.router.enqueue(session, message, groups=groups))

    # -- health ----------------------------------------------------------------------------------
    def channel_health(self, channels: list[str]) -> dict[str, dict[str, Any]]:
        """Per channel: whether it keeps failing, has deliveries waiting, its last success and last error."""
        report: dict[str, dict[str, Any]] = {}
        with self.db.session(write=False) as session:
            for channel in channels:
                recent = session.execute(
                    select(DeliveryAttempt.ok, DeliveryAttempt.error, DeliveryAttempt.attempted_at)
                    .join(Delivery).where(Delivery.channel == channel)
                    .order_by(DeliveryAttempt.id.desc()).limit(FAILING_AFTER)).all()
                pending = session.scalar(select(Delivery.id).where(Delivery.channel == channel,
                                                                   Delivery.state == "pending").limit(1))
                last_ok = session.scalar(select(Delivery.delivered_at).where(
                    Delivery.channel == channel, Delivery.state == "delivered").order_by(
                    Delivery.delivered_at.desc()).limit(1))
                failing = len(recent) == FAILING_AFTER and not any(ok for ok, _, _ in recent)
                report[channel] = {"failing": failing, "waiting": pending is not None,
                                   "last_delivered_at": last_ok,
                                   "last_error": next((error for ok, error, _ in recent if not ok), None)}
        return report
