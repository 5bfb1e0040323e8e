"""The dashboard's stats pages: incident counts over time and by kind, and the health of the server."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..api.deps import ServicesDep
from .pages import PagePrincipal, render

router = APIRouter(include_in_schema=False)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(request: Request, principal: PagePrincipal, services: ServicesDep) -> Response:
    if principal is None:  # to the sign-in page, before anything is built for a stranger
        return render(request, principal, "stats.html", title="Statistics")
    # /api/v1/stats counts by category id; the page names them, site-defined categories included.
    categories = {cid: category.name for cid, category in services.pipeline().fusion.rules.categories.items()}
    return render(request, principal, "stats.html", title="Statistics", categories=categories)
