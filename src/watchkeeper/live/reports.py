"""The seeds' live output shapes: seed 004's alerts and session reports, seed 001's tier-1 messages.

Seed 004 keeps ``anomaly_alerts.json`` (the latest alerts, for a UI to poll)
and writes ``anomaly_reports_YYYYMMDD_HHMMSS.json`` when a monitoring session
stops (with the same report as HTML beside it); seed 001 streams a tier-1
summary of every analysed frame.
"""

from __future__ import annotations

import json
import os
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

from ..domain import AnalysisResult
from ..reasoning.render import render
from ..reasoning.reports import ReportWriter, SessionIncident, incident_only_result, template_sections
from ..taxonomy import SEVERITY_COLORS, SEVERITY_LABELS
from .events import IncidentEvent

LATEST_ALERTS = 50
ALERTS_FILE = "anomaly_alerts.json"


def alert_json(event: IncidentEvent, location: str) -> dict[str, Any]:
    """Seed 004's alert: category name and id, severity level/label/colour, confidence as a percentage, and
    the seven report sections written from the incident's evidence."""
    incident = event.incident
    window = event.window if event.window is not None and incident in event.window.incidents else None
    sections = template_sections(window or incident_only_result(incident), incident)
    return {
        "id": event.incident_id,
        "timestamp": event.at.isoformat(timespec="seconds"),
        "event": event.kind,
        "camera": event.camera,
        "category": incident.category_name,
        "category_id": incident.category,
        "severity": {"level": incident.severity, "label": SEVERITY_LABELS[incident.severity],
                     "color": SEVERITY_COLORS[incident.severity]},
        "confidence": f"{incident.confidence * 100:.1f}%",
        "location": location or event.camera,
        "summary": sections.model_dump(),
        "requires_immediate_action": incident.requires_immediate_action,
    }


def write_json_atomically(path: Path, document: Any) -> None:
    """Readers polling the file never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(partial, path)


class SessionReports:
    """One monitoring session's files in ``folder``: seed 004's latest alerts, and at the end its session
    report as JSON (seed 004's shape) and as an HTML report with the snapshots."""

    def __init__(self, folder: Path, location: str, writer: ReportWriter) -> None:
        self.folder = folder
        self.location = location
        self.writer = writer
        self.latest: deque[dict[str, Any]] = deque(maxlen=LATEST_ALERTS)
        self.incidents: dict[str, dict[str, Any]] = {}  # incident id -> its newest alert
        self.parts: dict[str, SessionIncident] = {}

    def add(self, event: IncidentEvent) -> None:
        alert = alert_json(event, self.location)
        self.incidents[event.incident_id] = alert
        known = self.parts.get(event.incident_id)
        self.parts[event.incident_id] = SessionIncident(
            event.incident_id, event.incident, event.window or (known.window if known else None),
            event.evidence.snapshot if event.evidence is not None else None)
        if event.kind == "opened":
            self.latest.appendleft(alert)
        else:
            for i, shown in enumerate(self.latest):
                if shown["id"] == event.incident_id:
                    self.latest[i] = alert
        write_json_atomically(self.folder / ALERTS_FILE, list(self.latest))

    def finish(self, statistics: dict[str, Any], stopped: datetime) -> Path:
        path = self.folder / f"anomaly_reports_{stopped:%Y%m%d_%H%M%S}.json"
        write_json_atomically(path, {
            "camera": statistics["camera"],
            "location": self.location,
            "statistics": statistics,
            "category_breakdown": statistics["by_category"],
            "incidents": list(self.incidents.values()),
        })
        report = self.writer.for_session(camera=statistics["camera"], location=self.location, statistics=statistics,
                                         incidents=list(self.parts.values()))
        path.with_suffix(".html").write_bytes(render(report, "html"))
        return path


def tier1_json(result: AnalysisResult, frame_count: int, t: float) -> dict[str, Any]:
    """Seed 001's tier-1 message for an analysed window."""
    pose = [d for d in result.detections if d.analyzer == "pose"]
    scene_score = max(result.scores.values(), default=0.0)
    transcripts = [segment.text for segment in result.transcript]
    details = "; ".join(i.summary for i in result.incidents) or result.evidence_description
    return {
        "status": "Suspected Anomaly" if result.incidents else "Normal",
        "details": details,
        "frame_count": frame_count,
        "timestamp": round(t, 3),
        "tier1_components": {
            "pose_analysis": {"anomaly_detected": bool(pose),
                              "summary": ", ".join(sorted({d.label for d in pose})) or "no unusual posture"},
            "audio_analysis": {"transcripts": transcripts, "transcript_text": " | ".join(transcripts),
                               "events": sorted({d.label for d in result.detections if d.modality == "audio"})},
            "scene_analysis": {"anomaly_probability": round(scene_score, 4),
                               "summary": f"Scene anomaly probability: {scene_score:.2f}"},
        },
    }
