"""Serving artefacts (uploads, live evidence) from the artefact store, whichever host wrote them."""

from __future__ import annotations

import re

from fastapi import status
from fastapi.responses import FileResponse, Response, StreamingResponse

from ..artefacts import ArtefactStore

_ONE_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


class _Unsatisfiable:
    """A Range header none of whose bytes the object has."""


UNSATISFIABLE = _Unsatisfiable()


def requested_range(header: str | None, size: int) -> tuple[int, int] | _Unsatisfiable | None:
    """The bytes (first, last; both included) a ``Range`` header asks for of an object of ``size`` bytes.

    None where the whole object is to be sent: no header, one the server may ignore (another unit, a malformed
    one, several ranges at once). UNSATISFIABLE where it asks only for bytes past the end.
    """
    match = _ONE_RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        if int(last) == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - int(last)), size - 1
    if last != "" and int(last) < int(first):
        return None
    if int(first) >= size:
        return UNSATISFIABLE
    return int(first), size - 1 if last == "" else min(int(last), size - 1)


def artefact_response(store: ArtefactStore, address: str, media_type: str, *, range_header: str | None = None,
                      filename: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """The object as the response body: its own file when the store keeps one here (sendfile), else streamed
    from the store with its length. Either way one range of it when ``range_header`` asks for one (a browser
    seeking in a clip), 416 when it asks for none of its bytes."""
    path = store.path_on_disk(address)
    if path is not None:
        return FileResponse(path, media_type=media_type, filename=filename, headers=headers)
    extra = {**(headers or {}), "Accept-Ranges": "bytes"}
    if filename is not None:
        extra["Content-Disposition"] = f'attachment; filename="{filename}"'
    wanted = None
    if range_header is not None:
        size = store.size(address)
        asked = requested_range(range_header, size)
        if isinstance(asked, _Unsatisfiable):
            return Response(status_code=status.HTTP_416_RANGE_NOT_SATISFIABLE,
                            headers={**extra, "Content-Range": f"bytes */{size}"})
        wanted = asked
    opened = store.open(address, wanted)
    extra["Content-Length"] = str(opened.size_bytes)
    if wanted is None:
        return StreamingResponse(opened.chunks(), media_type=media_type, headers=extra)
    return StreamingResponse(opened.chunks(), status_code=status.HTTP_206_PARTIAL_CONTENT, media_type=media_type,
                             headers={**extra, "Content-Range": f"bytes {wanted[0]}-{wanted[1]}/{size}"})
