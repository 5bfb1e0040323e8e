"""What a monitor tells its listeners: incidents opening, updating and closing on a camera."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain import AnalysisResult, Incident
from .evidence import Evidence
from .gate import GateEventKind


@dataclass(frozen=True)
class IncidentEvent:
    """An incident opening, updating or closing on a camera."""

    kind: GateEventKind
    incident_id: str
    camera: str
    t: float  # camera time, seconds since the monitor started
    at: datetime  # wall clock
    incident: Incident
    evidence: Evidence | None = None  # its clip and sound are written later (``Monitor.on_evidence``)
    window: AnalysisResult | None = None  # the analysis of the window that caused the event (None at a stop)

    def to_json(self) -> dict[str, Any]:
        """The ``--events-jsonl`` line."""
        snapshot = self.evidence.snapshot if self.evidence is not None else None
        return {
            "incident_id": self.incident_id, "event": self.kind, "category": self.incident.category,
            "severity": self.incident.severity, "confidence": round(self.incident.confidence, 4),
            "camera": self.camera, "t": round(self.t, 3), "at": self.at.isoformat(),
            "t_start_s": round(self.incident.t_start_s, 3), "t_end_s": round(self.incident.t_end_s, 3),
            "summary": self.incident.summary, "snapshot": str(snapshot) if snapshot else None,
        }
