"""Live incidents in the database: one analysis row (the window that opened it) and one incident row, kept
up to date as the incident grows and ends, with the paths of its evidence."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..domain import AnalysisResult, Incident
from .analyses import save_analysis
from .models import IncidentRecord, utcnow


def open_live_incident(session: Session, window: AnalysisResult, incident: Incident, *, camera: str, source: str,
                       live: dict[str, Any]) -> int:
    """Store the incident with the window's analysis; returns the incident row's id.

    ``live`` (the monitor's incident id, its state, its evidence) goes into the row's data under "live".
    """
    result = window.model_copy(update={"incidents": [incident], "crime_detected": True,
                                       "crime_type": incident.category_name})
    analysis = save_analysis(session, result, source=source, camera=camera)
    [record] = analysis.incidents
    record.data = {**record.data, "live": live}
    session.flush()
    return record.id


def update_live_incident(session: Session, row_id: int, incident: Incident | None = None, **live: Any) -> bool:
    """Refresh the row from the grown incident and merge ``live`` into its "live" data; False if it is gone
    (deleted or purged meanwhile)."""
    record = session.get(IncidentRecord, row_id, with_for_update=True)
    if record is None:
        return False
    data = dict(record.data)
    if incident is not None:
        record.severity, record.confidence = incident.severity, incident.confidence
        record.t_start_s, record.t_end_s = incident.t_start_s, incident.t_end_s
        record.summary = incident.summary
        # The people's verdict (status) stays theirs; the rest follows the incident.
        data = {**incident.model_dump(mode="json"), "status": record.status, "live": data.get("live", {})}
    data["live"] = {**data.get("live", {}), **live}
    record.data = data
    record.updated_at = utcnow()
    return True
