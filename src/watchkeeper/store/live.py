"""Live incidents in the database: one analysis row (the window that opened it) and one incident row, kept
up to date as the incident grows and ends, with its evidence (``artefact:`` references) and how large it is."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ..artefacts import ArtefactStore, referenced_address
from ..domain import AnalysisResult, Incident
from .analyses import save_analysis
from .models import IncidentRecord, utcnow
from .references import lock_addresses, name_evidence, release

log = logging.getLogger(__name__)


def _still_stored(session: Session, artefacts: ArtefactStore, evidence: dict[str, str | None],
                  errors: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """The evidence a row is about to name, each piece checked under its address's lock until the transaction
    ends (as an upload's row is): a release that saw no row naming the same bytes (another incident's snapshot
    dropped, a purge) may have deleted the object since it was stored. Such a piece is named among the errors
    instead, so that no row names an object that is gone."""
    addresses = {kind: address for kind, value in evidence.items() if (address := referenced_address(value))}
    if not addresses:
        return evidence, errors
    lock_addresses(session, addresses.values())
    gone = [kind for kind, address in addresses.items() if not artefacts.exists(address)]
    if gone:
        log.error("evidence went from the artefact store before its incident named it", extra={"kinds": gone})
    return ({**evidence, **dict.fromkeys(gone)},
            [*errors, *(f"{kind} went from the artefact store before the incident named it" for kind in gone)])


def open_live_incident(session: Session, window: AnalysisResult, incident: Incident, *, camera: str, source: str,
                       live: dict[str, Any], artefacts: ArtefactStore) -> int:
    """Store the incident with the window's analysis; returns the incident row's id.

    ``live`` (the monitor's incident id, its state, its evidence) goes into the row's data under "live"; its
    evidence must still be in ``artefacts`` (``_still_stored``).
    """
    result = window.model_copy(update={"incidents": [incident], "crime_detected": True,
                                       "crime_type": incident.category_name})
    analysis = save_analysis(session, result, source=source, camera=camera)
    [record] = analysis.incidents
    if live.get("evidence"):
        evidence, errors = _still_stored(session, artefacts, live["evidence"], live.get("evidence_errors") or [])
        live = {**live, "evidence": evidence, "evidence_errors": errors}
    record.data = {**record.data, "live": live}
    name_evidence(session, record)
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


def add_live_evidence(session: Session, row_id: int, *, evidence: dict[str, str | None], evidence_bytes: int,
                      evidence_errors: list[str], artefacts: ArtefactStore) -> bool:
    """Add the pieces of evidence written after the incident opened (its clip and sound, ``evidence_bytes`` in
    the artefact store) to the row, with the errors of all its evidence; False if the row is gone.

    The kinds not in ``evidence`` stay as the row has them: a snapshot deleted meanwhile stays deleted. The
    pieces must still be in ``artefacts`` (``_still_stored``).
    """
    record = session.get(IncidentRecord, row_id, with_for_update=True)
    if record is None:
        return False
    evidence, evidence_errors = _still_stored(session, artefacts, evidence, evidence_errors)
    live = dict(record.data.get("live") or {})
    live["evidence"] = {**(live.get("evidence") or {}), **evidence}
    live["evidence_bytes"] = (live.get("evidence_bytes") or 0) + evidence_bytes
    live["evidence_errors"] = evidence_errors
    record.data = {**record.data, "live": live}
    record.updated_at = utcnow()
    name_evidence(session, record)
    return True


def incidents_with_stored_evidence(session: Session) -> list[tuple[int, int, datetime]]:
    """Every live incident that keeps evidence in the artefact store: (row id, its evidence's bytes, created)."""
    size = IncidentRecord.data[("live", "evidence_bytes")].as_integer()
    query = select(IncidentRecord.id, size, IncidentRecord.created_at).where(IncidentRecord.camera.is_not(None),
                                                                            size > 0)
    return [(row_id, bytes_, created) for row_id, bytes_, created in session.execute(query)]


def drop_evidence(session: Session, artefacts: ArtefactStore, row: IncidentRecord,
                  kinds: Collection[str]) -> dict[str, str]:
    """Forget the row's evidence of ``kinds``; returns what went (kind -> what the row said).

    The objects that no other row refers to are deleted once the session's transaction has committed: a
    failure then leaves an object behind (logged), never a row naming one that is gone.
    """
    live = dict(row.data.get("live") or {})
    evidence = dict(live.get("evidence") or {})
    dropped = {kind: evidence[kind] for kind in kinds if evidence.get(kind)}
    evidence.update(dict.fromkeys(dropped))
    live["evidence"] = evidence
    if not any(evidence.values()):
        live["evidence_bytes"] = 0
    row.data = {**row.data, "live": live}
    name_evidence(session, row)
    addresses = [address for value in dropped.values() if (address := referenced_address(value))]
    if addresses:
        event.listen(session, "after_commit", lambda committed: _release_after(committed, artefacts, addresses),
                     once=True)
    return dropped


def _release_after(committed: Session, artefacts: ArtefactStore, addresses: list[str]) -> None:
    # The committed session cannot run statements now: a session of its own, on the same engine.
    try:
        with Session(committed.get_bind()) as session, session.begin():
            release(session, artefacts, addresses)
    except Exception:
        log.exception("evidence objects left in the artefact store", extra={"artefacts": addresses})
