"""Serving artefacts (uploads, live evidence) from the artefact store, whichever host wrote them."""

from __future__ import annotations

from fastapi.responses import FileResponse, Response, StreamingResponse

from ..artefacts import ArtefactStore


def artefact_response(store: ArtefactStore, address: str, media_type: str, *, filename: str | None = None,
                      headers: dict[str, str] | None = None) -> Response:
    """The object as the response body: its own file when the store keeps one here (ranges, sendfile), else
    streamed from the store with its length."""
    path = store.path_on_disk(address)
    if path is not None:
        return FileResponse(path, media_type=media_type, filename=filename, headers=headers)
    opened = store.open(address)
    extra = {"Content-Length": str(opened.size_bytes)}
    if filename is not None:
        extra["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(opened.chunks(), media_type=media_type, headers={**(headers or {}), **extra})
