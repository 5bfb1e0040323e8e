"""Alert messages made from incidents, with their links: absolute under ``public_url``, and a signed link
that acknowledges the incident without signing in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..auth import links
from ..domain import AnalysisResult, Incident
from ..reasoning.reports import incident_only_result, template_sections
from ..taxonomy import SEVERITY_COLORS, SEVERITY_LABELS, severity_word
from .message import AlertKind, AlertMessage

MAX_ACTIONS = 4
# Links in alerts are signed by the system, not by a user: no user's account can revoke them.
SYSTEM_ISSUER = 0


@dataclass(frozen=True)
class AlertLinks:
    public_url: str | None
    secret: bytes
    ack_ttl_s: int

    def url(self, path: str) -> str:
        return f"{self.public_url}{path}" if self.public_url else path

    def acknowledge_path(self, incident_id: int) -> str:
        return f"/ack/{incident_id}"

    def for_incident(self, incident_id: int, evidence: dict[str, Any] | None = None) -> dict[str, str]:
        path = self.acknowledge_path(incident_id)
        expires, signature = links.sign(self.secret, path, self.ack_ttl_s, SYSTEM_ISSUER)
        found = {"incident": self.url(f"/api/v1/incidents/{incident_id}"),
                 "report": self.url(f"/api/v1/incidents/{incident_id}/report?format=pdf"),
                 "acknowledge": self.url(f"{path}?expires={expires}&signature={signature}")}
        for kind in ("snapshot", "clip"):
            if (evidence or {}).get(kind):
                found[kind] = self.url(f"/api/v1/incidents/{incident_id}/evidence/{kind}")
        return found


def incident_message(incident: Incident, *, incident_id: int, event: str, occurred_at: datetime,
                     links_for: AlertLinks, location: str | None = None, window: AnalysisResult | None = None,
                     evidence: dict[str, Any] | None = None, kind: AlertKind = "incident",
                     waited_minutes: float | None = None) -> AlertMessage:
    """The alert about one incident (opening, rising in severity, or escalated)."""
    label = SEVERITY_LABELS[incident.severity]
    where = location or incident.camera
    title = f"[Watchkeeper] {label}: {incident.category_name}" + (f" at {where}" if where else "")
    if kind == "escalation":
        title = f"[Watchkeeper] ESCALATION, unacknowledged for {waited_minutes:.0f} min: {incident.category_name}" + (
            f" at {where}" if where else "")
    elif event == "updated":
        title += f" (now {label})"
    result = window if window is not None and incident in window.incidents else incident_only_result(incident)
    actions = template_sections(result, incident).immediate_actions[:MAX_ACTIONS]
    return AlertMessage(
        kind=kind, event=event, incident_id=str(incident_id), title=" ".join(title.split()),
        category=incident.category, category_name=incident.category_name, severity=incident.severity,
        severity_label=label, severity_color=SEVERITY_COLORS[incident.severity],
        severity_word=severity_word(incident.severity), confidence=incident.confidence, camera=incident.camera,
        location=location, zone=incident.zone, summary=incident.summary,
        occurred_at=occurred_at.astimezone(timezone.utc), requires_immediate_action=incident.requires_immediate_action,
        immediate_actions=actions, links=links_for.for_incident(incident_id, evidence),
        snapshot_path=(evidence or {}).get("snapshot"))


# Seed 000's severity words -> the severity they stand for (the middle of TAXONOMY.md's ranges).
WORD_SEVERITY = {"low": 2, "medium": 3, "high": 4}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def manual_message(detection: dict[str, Any], *, media_path: str | None = None) -> AlertMessage:
    """Seed 000's ``POST /notify``: an alert about a detection result that a client sends by hand."""
    word = detection.get("potential_severity") or detection.get("severity")
    severity = word if isinstance(word, int) and 1 <= word <= 5 else WORD_SEVERITY.get(str(word).lower(), 3)
    crime = " ".join(str(detection.get("crime_type") or "Incident").split())
    confidence = detection.get("confidence")
    summary = " ".join(str(detection.get("evidence_description") or "").split()) or f"{crime} reported."
    recommendations = detection.get("recommendations")
    return AlertMessage(
        kind="manual", title=f"[Watchkeeper] {crime} detected (severity {severity_word(severity)})",
        category_name=crime, severity=severity, severity_label=SEVERITY_LABELS[severity],
        severity_color=SEVERITY_COLORS[severity], severity_word=severity_word(severity),
        confidence={"low": 0.4, "medium": 0.65, "high": 0.9}.get(str(confidence), 0.5)
        if not isinstance(confidence, (int, float)) else max(0.0, min(1.0, float(confidence))),
        summary=summary, occurred_at=datetime.now(timezone.utc),
        immediate_actions=[" ".join(str(recommendations).split())] if recommendations else [],
        snapshot_path=media_path if media_path and media_path.lower().endswith(IMAGE_SUFFIXES) else None)
