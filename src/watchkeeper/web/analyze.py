"""The dashboard's analyze pages: upload a file, follow its job, and see the result drawn."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..api.deps import ServicesDep
from .pages import PagePrincipal, render

router = APIRouter(include_in_schema=False)


@router.get("/analyze", response_class=HTMLResponse)
def analyze_page(request: Request, principal: PagePrincipal, services: ServicesDep) -> Response:
    # Uploading and submitting need the operator role, so viewers get the "not allowed" page instead of a form
    # whose every use fails.
    return render(request, principal, "analyze.html", title="Analyse", least_role="operator",
                  upload_limit=_size(services.settings.server.upload_max_bytes))


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n_bytes < 1024:
            return f"{n_bytes:.4g} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.4g} GB"
