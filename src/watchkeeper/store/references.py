"""Which rows refer to which artefacts, and deleting the artefacts that no row refers to any more.

Content addressing shares objects: two uploads of the same file, or a
snapshot uploaded again, are one object. So an object goes only when neither
an upload nor a live incident's evidence names it; analyses do not hold on
to theirs (a report then shows no pictures, as when an upload was deleted).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..artefacts import ArtefactStore, referenced_address
from .models import EvidenceReference, IncidentRecord, Upload

EVIDENCE_KINDS = ("snapshot", "weapon", "clip", "audio")
_BATCH = 500  # addresses per IN (...): well under every database's limit on bound parameters
# First key of pg_advisory_xact_lock(int, int) for artefact addresses: apart from the one-key locks (migrations).
_ADDRESS_LOCKS = 0x5741  # "WA"


def evidence_artefacts(data: dict[str, Any] | None) -> dict[str, str]:
    """The artefacts an incident row's evidence refers to: kind (snapshot, weapon, clip, audio) -> address."""
    evidence = ((data or {}).get("live") or {}).get("evidence") or {}
    return {kind: address for kind, value in evidence.items() if (address := referenced_address(value))}


def name_evidence(session: Session, record: IncidentRecord) -> None:
    """Bring the incident's rows of ``evidence_references`` in step with what its evidence names now; call it
    wherever a live incident's evidence is written."""
    session.flush()  # a new incident gets its id
    named = evidence_artefacts(record.data)
    kept: dict[str, str] = dict(session.execute(select(EvidenceReference.kind, EvidenceReference.address)
                                                .where(EvidenceReference.incident_id == record.id)).all())
    stale = [kind for kind, address in kept.items() if named.get(kind) != address]
    if stale:
        session.execute(delete(EvidenceReference).where(EvidenceReference.incident_id == record.id,
                                                        EvidenceReference.kind.in_(stale)))
    session.add_all(EvidenceReference(incident_id=record.id, kind=kind, address=address)
                    for kind, address in named.items() if kept.get(kind) != address)
    session.flush()


def referenced(session: Session, addresses: Collection[str]) -> set[str]:
    """Those of ``addresses`` that an upload or a live incident's evidence refers to (this session's changes
    included)."""
    found: set[str] = set()
    ordered = sorted(addresses)
    for start in range(0, len(ordered), _BATCH):
        batch = ordered[start:start + _BATCH]
        found.update(session.scalars(select(Upload.artefact).where(Upload.artefact.in_(batch))))
        found.update(session.scalars(select(EvidenceReference.address).where(EvidenceReference.address.in_(batch))))
    return found


def lock_addresses(session: Session, addresses: Iterable[str]) -> None:
    """Hold ``addresses`` until the transaction ends, so that ``release`` and a transaction writing a row that
    names one of them take turns: otherwise a check that cannot see an uncommitted row deletes the object that
    row is about to name. SQLite needs nothing: its write transactions take turns already (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for address in sorted(set(addresses)):  # one order everywhere: two transactions cannot deadlock
        session.execute(select(func.pg_advisory_xact_lock(_ADDRESS_LOCKS, func.hashtext(address))))


def release(session: Session, artefacts: ArtefactStore, addresses: Iterable[str]) -> int:
    """Delete the objects of ``addresses`` that no row refers to any more; returns how many went.

    Call it after the rows that referred to them are gone for good, in a write session: the check and the
    deletes hold the addresses' locks until it ends.
    """
    candidates = set(addresses)
    lock_addresses(session, candidates)
    unreferenced = candidates - referenced(session, candidates)
    for address in sorted(unreferenced):
        artefacts.delete(address)
    return len(unreferenced)
