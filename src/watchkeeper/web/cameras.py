"""The dashboard's cameras pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .pages import PagePrincipal, render

router = APIRouter(include_in_schema=False)


@router.get("/cameras/{name}", response_class=HTMLResponse)
def camera_page(name: str, request: Request, principal: PagePrincipal) -> Response:
    camera = request.app.state.live.cameras.get(name)
    # Signed out, the sign-in page comes first: whether a camera exists is not told to strangers.
    if principal is not None and camera is None:
        response = render(request, principal, "not_found.html", title="Not found", what=f"The camera '{name}'")
        response.status_code = 404
        return response
    return render(request, principal, "camera.html", title=name, camera=camera)
