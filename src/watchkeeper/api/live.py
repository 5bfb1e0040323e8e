"""The live side of the server outside /api/v1: the event feed (WebSocket) and each camera's MJPEG view."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..errors import NotFoundError, PermissionDeniedError, WatchkeeperError
from ..live.service import LiveService
from .deps import Viewer, websocket_principal
from .v1.cameras import get_live

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

MJPEG_BOUNDARY = "frame"
MJPEG_FPS = 5.0
# WebSocket close codes for a refused connection (4000-4999 are the application's, here HTTP's plus 4000).
CLOSE_UNAUTHORISED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404


@router.websocket("/ws/events")
async def event_feed(websocket: WebSocket) -> None:
    """Every live event as a JSON message: incidents opening, updating and closing, evidence written,
    cameras starting and stopping, on this replica and (``events.backend``) on the others. A client too slow
    to keep up loses its oldest messages, as it does another replica's events sent while the bus was down;
    the next one it gets says how many (``dropped_before``)."""
    services, live = websocket.app.state.services, websocket.app.state.live
    try:
        await run_in_threadpool(websocket_principal, websocket, services)
    except WatchkeeperError as exc:
        await refuse(websocket, exc)
        return
    await websocket.accept()
    subscription = live.hub.subscribe(asyncio.get_running_loop())
    # The client speaks only to leave: its receive ends the feed.
    gone = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            message = asyncio.ensure_future(subscription.next())
            done, _ = await asyncio.wait({message, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                message.cancel()
                break
            await websocket.send_json(message.result())
    except WebSocketDisconnect:
        pass
    finally:
        gone.cancel()
        live.hub.unsubscribe(subscription)


async def refuse(websocket: WebSocket, exc: WatchkeeperError) -> None:
    """Accept, then close with a code and the reason: a refused handshake would tell a browser nothing."""
    await websocket.accept()
    code = CLOSE_FORBIDDEN if isinstance(exc, PermissionDeniedError) else CLOSE_UNAUTHORISED
    if isinstance(exc, NotFoundError):
        code = CLOSE_NOT_FOUND
    await websocket.close(code, str(exc)[:120])


@router.get("/cameras/{name}/stream.mjpeg", summary="A camera's live view with overlays (MJPEG)",
            response_class=StreamingResponse,
            responses={200: {"content": {f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}": {}}}})
async def mjpeg(name: str, request: Request, _: Viewer) -> StreamingResponse:
    live = get_live(request)
    live.camera(name)  # 404 for an unknown camera
    return mjpeg_response(request, live, name)


def mjpeg_response(request: Request, live: LiveService, name: str) -> StreamingResponse:
    """The camera's overlay pictures as they come, until the client goes (a stopped camera shows none)."""

    async def frames() -> AsyncIterator[bytes]:
        while not await request.is_disconnected():
            monitor = live.monitors.get(name)
            jpeg = await run_in_threadpool(monitor.overlay.jpeg) if monitor is not None else None
            if jpeg is not None:
                yield (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                       .encode() + jpeg + b"\r\n")
            await asyncio.sleep(1.0 / MJPEG_FPS)

    return StreamingResponse(frames(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                             headers={"Cache-Control": "no-store"})
