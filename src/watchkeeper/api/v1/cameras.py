"""Cameras: list, add, start, stop, remove and inspect them; the evidence of their incidents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from sqlalchemy.orm import Session

from ...auth import Principal
from ...auth.audit import record
from ...config import CameraSettings
from ...errors import NotFoundError
from ...live.capture import is_file_source
from ...live.service import CameraStatus, LiveService, redact_url
from ...store.live import drop_evidence
from ...store.models import IncidentRecord
from ...store.references import evidence_artefacts
from ..artefact_files import artefact_response
from ..deps import Admin, IdPath, Operator, ServicesDep, Viewer, client_ip
from ..services import Services

router = APIRouter(tags=["cameras"])

EVIDENCE_MEDIA = {"snapshot": "image/jpeg", "weapon": "image/jpeg", "clip": "video/mp4", "audio": "audio/wav"}
EvidenceKind = Literal["snapshot", "weapon", "clip", "audio"]


def get_live(request: Request) -> LiveService:
    return request.app.state.live


@router.get("/cameras", response_model=list[CameraStatus], summary="Every camera with its health")
def list_cameras(request: Request, _: Viewer) -> list[CameraStatus]:
    live = get_live(request)
    return [live.status(name) for name in sorted(live.cameras)]


@router.get("/cameras/{name}", response_model=CameraStatus, summary="One camera: health and session statistics")
def one_camera(name: str, request: Request, _: Viewer) -> CameraStatus:
    return get_live(request).status(name)


@router.post("/cameras", response_model=CameraStatus, status_code=status.HTTP_201_CREATED,
             summary="Add a camera, kept across restarts (started at once when enabled)")
def add_camera(camera: CameraSettings, request: Request, services: ServicesDep, principal: Admin) -> CameraStatus:
    live = get_live(request)
    if is_file_source(camera.source):
        # A file camera plays media from the media roots, like an analysis; never any file of the server.
        camera = camera.model_copy(update={"source": str(services.media_roots.resolve(camera.source))})
    live.add_camera(camera, created_by=principal.user_id,
                    on_commit=_audit(principal, request, "camera.create", camera.name,
                                     {"source": redact_url(camera.source)}))
    return live.status(camera.name)


@router.post("/cameras/{name}/start", response_model=CameraStatus, summary="Start monitoring a camera")
def start_camera(name: str, request: Request, principal: Operator) -> CameraStatus:
    get_live(request).set_running(name, True, on_commit=_audit(principal, request, "camera.start", name))
    return get_live(request).status(name)


@router.post("/cameras/{name}/stop", response_model=CameraStatus, summary="Stop monitoring a camera")
def stop_camera(name: str, request: Request, principal: Operator) -> CameraStatus:
    get_live(request).set_running(name, False, on_commit=_audit(principal, request, "camera.stop", name))
    return get_live(request).status(name)


@router.delete("/cameras/{name}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Stop and remove a camera added through the API")
def remove_camera(name: str, request: Request, principal: Admin) -> None:
    get_live(request).remove_camera(name, on_commit=_audit(principal, request, "camera.delete", name))


@router.get("/incidents/{incident_id}/evidence/{kind}", response_class=Response,
            responses={200: {"content": {m: {} for m in EVIDENCE_MEDIA.values()}}},
            summary="A live incident's snapshot, weapon close-up, clip or sound")
def evidence(incident_id: IdPath, kind: EvidenceKind, request: Request, services: ServicesDep,
             _: Viewer) -> Response:
    return evidence_file(request, services, incident_id, kind)


@router.delete("/incidents/{incident_id}/evidence/snapshot", status_code=status.HTTP_204_NO_CONTENT,
               summary="Delete a live incident's snapshot and its weapon close-up (its clip and sound stay)")
def delete_snapshot(incident_id: IdPath, request: Request, services: ServicesDep, principal: Operator) -> None:
    with services.db.session() as session:
        row = session.get(IncidentRecord, incident_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no incident with id {incident_id}")
        snapshot = evidence_artefacts(row.data).get("snapshot")
        if snapshot is None:
            raise NotFoundError(f"incident {incident_id} has no snapshot")
        record(session, principal, "incident.evidence.delete", target_type="incident", target_id=incident_id,
               details={"kind": "snapshot", "file": snapshot}, ip=client_ip(request))
        # The weapon close-up is cut from the snapshot: it goes with it.
        drop_evidence(session, get_live(request).artefacts, row, ("snapshot", "weapon"))


def evidence_file(request: Request, services: Services, incident_id: int, kind: EvidenceKind) -> Response:
    """A live incident's piece of evidence, or the range of it the request asks for."""
    with services.db.session(write=False) as session:
        row = session.get(IncidentRecord, incident_id)
        if row is None:
            raise NotFoundError(f"no incident with id {incident_id}")
        address = evidence_artefacts(row.data).get(kind)
    if address is None:
        raise NotFoundError(f"incident {incident_id} has no {kind}")
    return artefact_response(get_live(request).artefacts, address, EVIDENCE_MEDIA[kind],
                             range_header=request.headers.get("range"),
                             filename=f"incident-{incident_id}-{kind}{Path(address).suffix}")


def _audit(principal: Principal, request: Request, action: str, name: str,
           details: dict[str, Any] | None = None) -> Callable[[Session], None]:
    """The audit entry of a camera change, written in the change's own transaction."""
    return lambda session: record(session, principal, action, target_type="camera", target_id=name,
                                  details=details or {}, ip=client_ip(request))
