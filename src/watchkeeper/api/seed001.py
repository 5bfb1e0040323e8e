"""Seed 001's live paths, as that README names them, on top of the cameras.

- ``GET /video_stream[?camera=NAME]``: the MJPEG view (the first running camera by default);
- ``WS /stream_video[?camera=NAME]``: once a second, the newest picture (base64 JPEG) with the tier-1
  message of the latest analysis (``status``, ``details``, ``frame_count``, ``timestamp``,
  ``tier1_components``);
- ``GET /anomaly_events``: the latest live incidents, newest first;
- ``GET /anomaly_frames/incident-ID.jpg`` and ``GET /recorded_videos/incident-ID.mp4``: an incident's
  snapshot and clip.
"""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ..errors import NotFoundError, WatchkeeperError
from ..live.monitor import Monitor
from ..live.reports import tier1_json
from ..live.service import LiveService
from ..store.models import IncidentRecord
from ..store.references import evidence_artefacts
from .deps import ServicesDep, Viewer, websocket_principal
from .live import mjpeg_response, refuse
from .v1.cameras import EvidenceKind, evidence_file, get_live

router = APIRouter(tags=["seed 001"])

STREAM_INTERVAL_S = 1.0
_EVIDENCE_NAME = re.compile(r"^incident-(\d{1,10})\.(jpg|mp4)$")


def _camera(live: LiveService, name: str | None) -> Monitor:
    if name is not None:
        live.camera(name)
        monitor = live.monitors.get(name)
    else:
        monitor = next((m for _, m in sorted(live.monitors.items()) if m.running), None)
    if monitor is None:
        raise NotFoundError(f"camera '{name}' is not running" if name else "no camera is running")
    return monitor


@router.get("/video_stream", summary="Seed 001: a camera's live view (MJPEG)", response_class=StreamingResponse)
async def video_stream(request: Request, _: Viewer,
                       camera: Annotated[str | None, Query(description="Default: the first running.")] = None,
                       ) -> StreamingResponse:
    monitor = _camera(get_live(request), camera)
    return mjpeg_response(request, get_live(request), monitor.name)


@router.websocket("/stream_video")
async def stream_video(websocket: WebSocket) -> None:
    services, live = websocket.app.state.services, websocket.app.state.live
    try:
        await run_in_threadpool(websocket_principal, websocket, services)
        monitor = _camera(live, websocket.query_params.get("camera"))
    except WatchkeeperError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()
    gone = asyncio.ensure_future(websocket.receive())
    try:
        while not gone.done():
            message = await run_in_threadpool(_frame_message, monitor)
            if message is not None:
                await websocket.send_json(message)
            await asyncio.wait({gone}, timeout=STREAM_INTERVAL_S)
    except WebSocketDisconnect:
        pass
    finally:
        gone.cancel()


def _frame_message(monitor: Monitor) -> dict[str, Any] | None:
    jpeg, result = monitor.overlay.jpeg(), monitor.last_result
    if jpeg is None:
        return None
    tier1 = tier1_json(result, monitor.health.frames, monitor.capture.ring.pictures_end_t) if result else {}
    return {"camera": monitor.name, "frame": base64.b64encode(jpeg).decode(), **tier1}


@router.get("/anomaly_events", summary="Seed 001: the latest live incidents, newest first")
def anomaly_events(services: ServicesDep, _: Viewer,
                   limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[dict[str, Any]]:
    query = (select(IncidentRecord).where(IncidentRecord.camera.is_not(None))
             .order_by(IncidentRecord.created_at.desc(), IncidentRecord.id.desc()).limit(limit))
    with services.db.session(write=False) as session:
        return [_event(row) for row in session.scalars(query)]


def _event(row: IncidentRecord) -> dict[str, Any]:
    evidence = evidence_artefacts(row.data)
    return {
        "id": row.id, "camera": row.camera, "category": row.category, "category_name": row.category_name,
        "severity": row.severity, "confidence": row.confidence, "status": row.status, "summary": row.summary,
        "timestamp": row.created_at.isoformat(), "t_start_s": row.t_start_s, "t_end_s": row.t_end_s,
        "frame": f"/anomaly_frames/incident-{row.id}.jpg" if evidence.get("snapshot") else None,
        "video": f"/recorded_videos/incident-{row.id}.mp4" if evidence.get("clip") else None,
    }


def _evidence(request: Request, services: ServicesDep, filename: str, kind: EvidenceKind) -> Response:
    match = _EVIDENCE_NAME.match(filename)
    if match is None or match.group(2) != {"snapshot": "jpg", "clip": "mp4"}[kind]:
        raise NotFoundError(f"no file '{filename}'")
    return evidence_file(request, services, int(match.group(1)), kind)


@router.get("/anomaly_frames/{filename}", summary="Seed 001: an incident's snapshot", response_class=Response)
def anomaly_frame(filename: str, request: Request, services: ServicesDep, _: Viewer) -> Response:
    return _evidence(request, services, filename, "snapshot")


@router.get("/recorded_videos/{filename}", summary="Seed 001: an incident's clip", response_class=Response)
def recorded_video(filename: str, request: Request, services: ServicesDep, _: Viewer) -> Response:
    return _evidence(request, services, filename, "clip")
