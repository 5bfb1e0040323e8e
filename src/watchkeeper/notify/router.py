"""The alert router: which incidents reach whom, on which channels, once.

Routes match incidents by severity, category, camera, zone and time of day, and name recipient groups;
quiet hours hold back the less severe. Every notification is a delivery in the outbox, written in the
transaction that stores the incident, so an alert exists exactly when its incident does and survives a
crash. Deduplication: one incident gets one notification per route and recipient; an update notifies again
only when its severity rises (MQTT, which mirrors state, hears every change).

Seed 000's ``notification`` block still works on its own: its SMTP server, its ``default_recipients`` as
the group ``default``, and its ``notify_threshold`` as a route for every incident from that severity.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import AlertRoute, AlertSettings, RecipientGroup, Settings, SmtpSettings
from ..delivery import enqueue
from ..store.models import Delivery
from .message import AlertMessage

log = logging.getLogger(__name__)

# Seed 000's notify_threshold words -> the lowest severity they send (TAXONOMY.md: 1-2 low, 3 medium, 4-5 high).
THRESHOLD_SEVERITY = {"low": 1, "medium": 3, "high": 4}
SEED_ROUTE = "notification"


@dataclass(frozen=True)
class Recipient:
    route: str
    group: str
    channel: str
    target: str


def effective_alerts(settings: Settings) -> AlertSettings:
    """The alert settings with seed 000's ``notification`` block folded in where the newer keys are unset."""
    alerts = settings.alerts
    seed = settings.notification
    if seed is None or not seed.smtp_server:
        return alerts
    email = alerts.email or SmtpSettings(host=seed.smtp_server, port=seed.port, username=seed.username,
                                         password=seed.password, sender=seed.sender_email)
    groups, routes = dict(alerts.groups), list(alerts.routes)
    if seed.default_recipients and "default" not in groups:
        groups["default"] = RecipientGroup(emails=seed.default_recipients)
    if "default" in groups and not any(SEED_ROUTE == r.name for r in routes):
        routes.append(AlertRoute(name=SEED_ROUTE, groups=["default"],
                                 min_severity=THRESHOLD_SEVERITY[seed.notify_threshold]))
    return alerts.model_copy(update={"email": email, "groups": groups, "routes": routes})


def in_window(now: time, start: str, end: str) -> bool:
    """Whether ``now`` lies in [start, end), a window that may run past midnight."""
    begin, finish = time.fromisoformat(start), time.fromisoformat(end)
    return begin <= now < finish if begin <= finish else now >= begin or now < finish


class AlertRouter:
    def __init__(self, settings: Settings, *, mqtt_enabled: bool) -> None:
        self.alerts = effective_alerts(settings)
        self.mqtt_enabled = mqtt_enabled

    @property
    def active(self) -> bool:
        return bool(self.alerts.routes or self.alerts.hooks or self.mqtt_enabled)

    def recipients(self, message: AlertMessage, local_time: time) -> list[Recipient]:
        """Everyone the message goes to, once per channel and target, first route first."""
        found: dict[tuple[str, str], Recipient] = {}
        quiet = self.alerts.quiet_hours
        held = quiet is not None and message.severity < quiet.min_severity and in_window(local_time, quiet.start,
                                                                                          quiet.end)
        if not held:
            for route in self.alerts.routes:
                if self._matches(route, message, local_time):
                    for name in route.groups:
                        for channel, target in channel_targets(self.alerts.groups[name]):
                            found.setdefault((channel, target), Recipient(route.name, name, channel, target))
        for hook in self.alerts.hooks:  # site hooks hear every alert, quiet hours or not
            found.setdefault(("hook", hook), Recipient("hooks", "hooks", "hook", hook))
        if self.mqtt_enabled:  # the broker mirrors state: every alert, whatever the routes
            found.setdefault(("mqtt", "events"), Recipient("mqtt", "mqtt", "mqtt", "events"))
        return list(found.values())

    @staticmethod
    def _matches(route: AlertRoute, message: AlertMessage, local_time: time) -> bool:
        zones = {z.strip() for z in (message.zone or "").split(",") if z.strip()}
        return (message.severity >= route.min_severity
                and (not route.categories or message.category in route.categories)
                and (not route.cameras or message.camera in route.cameras)
                and (not route.zones or bool(zones & set(route.zones)))
                and (route.between is None or in_window(local_time, *route.between)))

    def enqueue(self, session: Session, message: AlertMessage, *, when: datetime | None = None,
                groups: list[str] | None = None) -> list[Delivery]:
        """Put the message in the outbox for each recipient that has not had it (or had it less severe);
        ``groups`` sends to those groups instead of the routes' (escalation)."""
        local_time = (when or datetime.now()).astimezone().time().replace(tzinfo=None)
        recipients = (self.recipients(message, local_time) if groups is None else
                      [Recipient(message.kind, name, channel, target) for name in groups
                       for channel, target in channel_targets(self.alerts.groups[name])])
        queued = []
        for recipient in recipients:
            if recipient.channel != "mqtt" and message.event in ("updated", "closed") and message.kind == "incident":
                if message.event == "closed" or self._told_at_least(session, message, recipient):
                    continue
            delivery = enqueue(session, channel=recipient.channel, target=recipient.target,
                               event=f"alert.{message.kind}", payload=payload_for(message, recipient),
                               dedupe_key=dedupe_key(message, recipient))
            if delivery is not None:
                queued.append(delivery)
        return queued

    @staticmethod
    def _told_at_least(session: Session, message: AlertMessage, recipient: Recipient) -> bool:
        """Whether this recipient already had this incident at this severity or higher (exact keys: the
        unique index answers, where a prefix LIKE would scan the outbox)."""
        prefix = _key_prefix(message, recipient)
        keys = [f"{prefix}s{severity}" for severity in range(message.severity, 6)]
        return session.scalar(select(Delivery.id).where(Delivery.dedupe_key.in_(keys)).limit(1)) is not None

    def already_sent(self, session: Session, message: AlertMessage, groups: list[str]) -> bool:
        """Whether ``message`` went to any recipient of ``groups`` already (an escalation, say)."""
        keys = [dedupe_key(message, Recipient(message.kind, name, channel, target))
                for name in groups for channel, target in channel_targets(self.alerts.groups[name])]
        return session.scalar(select(Delivery.id).where(Delivery.dedupe_key.in_(keys)).limit(1)) is not None


def payload_for(message: AlertMessage, recipient: Recipient) -> dict[str, object]:
    """The message as this recipient gets it: a path on this server only for e-mail (its inline picture), and
    no acknowledge link for the broker, whose every reader would otherwise be able to acknowledge."""
    routed = message.model_copy(update={"route": recipient.route, "group": recipient.group})
    if recipient.channel != "email":
        routed.snapshot_path = None
    if recipient.channel == "mqtt":
        routed.links = {k: v for k, v in routed.links.items() if k != "acknowledge"}
    return routed.model_dump(mode="json")


def channel_targets(group: RecipientGroup) -> list[tuple[str, str]]:
    targets = [("email", address) for address in group.emails]
    targets += [("sms", number) for number in group.phones]
    targets += [("resend", address) for address in group.resend]
    targets += [("apprise", url) for url in group.apprise]
    targets += [("webhook", url) for url in group.webhooks]
    targets += [("hook", name) for name in group.hooks]
    if group.mqtt:
        targets.append(("mqtt", "events"))
    return targets


def _key_prefix(message: AlertMessage, recipient: Recipient) -> str:
    target = hashlib.sha256(recipient.target.encode()).hexdigest()[:16]  # keys stay short; URLs hold secrets
    return f"{message.kind}:{message.incident_id}:{recipient.route}:{recipient.channel}:{target}:"


def dedupe_key(message: AlertMessage, recipient: Recipient) -> str | None:
    """One delivery per incident, recipient and severity (per event too for MQTT); none for manual sends."""
    if message.incident_id is None:
        return None
    event = f"{message.event}:" if recipient.channel == "mqtt" else ""
    return f"{_key_prefix(message, recipient)}{event}s{message.severity}"
