"""The alert router on a real database (SQLite and PostgreSQL): routes, quiet hours, deduplication,
seed 000's notification block, escalation, and hooks."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from watchkeeper.config import Settings
from watchkeeper.domain import AnalysisResult, Detection, Evidence, Incident, MediaInfo
from watchkeeper.notify.compose import AlertLinks, incident_message
from watchkeeper.notify.hooks import hook_sender, register_alert_hook
from watchkeeper.notify.message import AlertMessage
from watchkeeper.notify.router import AlertRouter, effective_alerts
from watchkeeper.notify.service import AlertService
from watchkeeper.store.analyses import save_analysis, set_incident_status
from watchkeeper.store.db import Database
from watchkeeper.store.models import Delivery, IncidentRecord, utcnow

LINKS = AlertLinks("https://watch.example.org", b"k" * 32, 3600)
ALERTS = {
    "groups": {"guards": {"emails": "guards@example.org, lead@example.org", "phones": ["+15550001111"]},
               "night": {"apprise": ["ntfy://ntfy.example.org/night"], "webhooks": ["https://hooks.example.org/a"]},
               "managers": {"emails": ["manager@example.org"]}},
    "routes": [{"name": "violence", "groups": ["guards"], "categories": ["assault", "weapon", "shooting"]},
               {"name": "gate-nights", "groups": ["night"], "cameras": ["gate"], "between": ["22:00", "06:00"]},
               {"name": "severe", "groups": ["managers"], "min_severity": 4}],
    "quiet_hours": {"start": "01:00", "end": "05:00", "min_severity": 4},
    "escalation": {"after_minutes": 10, "min_severity": 4, "groups": ["managers"]},
}


def incident(category: str = "assault", severity: int = 4, camera: str | None = "gate") -> Incident:
    detection = Detection(analyzer="motion", modality="visual", label="pose:fast_limbs", score=0.9)
    return Incident(category=category, category_name=category.title(), severity=severity, severity_label="X",
                    confidence=0.9, threshold=0.5, t_start_s=0, t_end_s=2, modalities=["visual"], modality_agreement=1,
                    evidence=[Evidence(detection=detection, weight=1, contribution=0.9)], summary="Two people fight.",
                    requires_immediate_action=severity >= 4, threat_severity_index=0.7, camera=camera)


def message(found: Incident, event: str = "opened", incident_id: int = 7) -> AlertMessage:
    return incident_message(found, incident_id=incident_id, event=event, occurred_at=utcnow(), links_for=LINKS,
                            location="North gate")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, 4, hour, minute).astimezone()


def targets(deliveries: list[Delivery]) -> set[tuple[str, str]]:
    return {(d.channel, d.target) for d in deliveries}


def test_routes_pick_groups_by_category_camera_severity_and_time():
    router = AlertRouter(Settings(alerts=ALERTS), mqtt_enabled=False)
    day = {(r.channel, r.target) for r in router.recipients(message(incident()), at(14).time())}
    assert day == {("email", "guards@example.org"), ("email", "lead@example.org"), ("sms", "+15550001111"),
                   ("email", "manager@example.org")}
    night = {(r.route, r.channel) for r in router.recipients(message(incident("fire", 3)), at(23).time())}
    assert night == {("gate-nights", "apprise"), ("gate-nights", "webhook")}
    elsewhere = router.recipients(message(incident("fire", 3, camera="lobby")), at(23).time())
    assert elsewhere == []
    # Quiet hours (01:00-05:00) hold back what is under severity 4, not the rest.
    assert router.recipients(message(incident("fire", 3)), at(2).time()) == []
    assert {r.route for r in router.recipients(message(incident("assault", 4)), at(2).time())} == {
        "violence", "gate-nights", "severe"}


def test_one_incident_is_one_notification_per_recipient_until_its_severity_rises(db: Database):
    router = AlertRouter(Settings(alerts=ALERTS), mqtt_enabled=True)
    with db.session() as session:
        opened = router.enqueue(session, message(incident(severity=3)), when=at(14))
        assert targets(opened) == {("email", "guards@example.org"), ("email", "lead@example.org"),
                                   ("sms", "+15550001111"), ("mqtt", "events")}
        assert router.enqueue(session, message(incident(severity=3)), when=at(14)) == []  # the same event again
        same = router.enqueue(session, message(incident(severity=3), "updated"), when=at(14))
        assert targets(same) == {("mqtt", "events")}  # grown, not worse: only the broker's state hears it, once
        assert router.enqueue(session, message(incident(severity=3), "updated"), when=at(14)) == []
        worse = router.enqueue(session, message(incident(severity=4), "updated"), when=at(14))
        assert targets(worse) == {("email", "guards@example.org"), ("email", "lead@example.org"),
                                  ("sms", "+15550001111"), ("email", "manager@example.org"), ("mqtt", "events")}
        assert "(now" in worse[0].payload["title"]
        closed = router.enqueue(session, message(incident(severity=4), "closed"), when=at(14))
        assert targets(closed) == {("mqtt", "events")}  # people are not told it ended; the broker's state is
        payload = opened[0].payload
    assert payload["route"] == "violence" and payload["group"] == "guards"
    assert payload["links"]["acknowledge"].startswith("https://watch.example.org/ack/7?expires=")
    assert payload["links"]["report"] == "https://watch.example.org/api/v1/incidents/7/report?format=pdf"
    assert payload["immediate_actions"] and payload["severity_word"] == "medium"


def test_seed_000s_notification_block_is_a_group_and_a_route():
    settings = Settings(notification={"smtp_server": "smtp.example.org", "port": 587, "sender_email": "a@example.org",
                                      "default_recipients": ["sec@example.org"], "notify_threshold": "high"})
    alerts = effective_alerts(settings)
    assert alerts.email.host == "smtp.example.org" and alerts.email.port == 587
    assert alerts.groups["default"].emails == ["sec@example.org"]
    router = AlertRouter(settings, mqtt_enabled=False)
    assert router.recipients(message(incident(severity=3)), at(12).time()) == []  # "high" is severity 4 and up
    assert [r.target for r in router.recipients(message(incident(severity=4)), at(12).time())] == ["sec@example.org"]


def _stored_incident(db: Database, found: Incident, created_minutes_ago: float) -> int:
    result = AnalysisResult(
        media=MediaInfo(media_type="video", source="gate", format="live", sha256="", size_bytes=0),
        scores={found.category: 0.9}, incidents=[found], detections=[], crime_detected=True,
        crime_type=found.category_name, confidence="high", evidence_description=found.summary)
    with db.session() as session:
        [row] = save_analysis(session, result, source="gate", camera="gate").incidents
        row.created_at = utcnow() - timedelta(minutes=created_minutes_ago)
        session.flush()
        return row.id


def test_unacknowledged_emergencies_are_escalated_once(db: Database, tmp_path):
    service = AlertService(Settings(data_dir=tmp_path, alerts=ALERTS), db, b"k" * 32)
    overdue = _stored_incident(db, incident(severity=5), created_minutes_ago=12)
    recent = _stored_incident(db, incident(severity=5), created_minutes_ago=2)
    handled = _stored_incident(db, incident(severity=5), created_minutes_ago=30)
    never_alerted = _stored_incident(db, incident(severity=5), created_minutes_ago=30)
    with db.session() as session:
        for incident_id in (overdue, recent, handled):
            service.router.enqueue(session, message(incident(severity=5), incident_id=incident_id), when=at(12))
        set_incident_status(session, session.get(IncidentRecord, handled), "acknowledged")
    assert service.escalate() == 1 and service.escalate() == 0
    with db.session(write=False) as session:
        escalations = session.scalars(select(Delivery).where(Delivery.event == "alert.escalation")).all()
        assert [(d.channel, d.target) for d in escalations] == [("email", "manager@example.org")]
        assert escalations[0].payload["incident_id"] == str(overdue)
        assert "unacknowledged for 12 min" in escalations[0].payload["title"]
    assert never_alerted  # stored but never alerted (no route matched): nothing to escalate


def test_hooks_are_called_with_the_alert_and_their_failures_are_retried():
    heard: list[AlertMessage] = []
    register_alert_hook("site.dispatch", heard.append)
    register_alert_hook("site.broken", lambda alert: 1 / 0)
    send = hook_sender()
    payload = message(incident()).model_dump(mode="json")
    assert send(Delivery(id=1, channel="hook", target="site.dispatch", event="alert.incident", payload=payload)).ok
    assert heard[0].title == message(incident()).title
    broken = send(Delivery(id=2, channel="hook", target="site.broken", event="alert.incident", payload=payload))
    assert not broken.ok and broken.retry and "ZeroDivisionError" in broken.error
    imported = send(Delivery(id=3, channel="hook", target="json:dumps", event="alert.incident", payload=payload))
    assert not imported.ok and imported.retry  # json.dumps(AlertMessage) raises: a failing hook, retried
    missing = send(Delivery(id=4, channel="hook", target="nowhere", event="alert.incident", payload=payload))
    assert not missing.ok and not missing.retry
