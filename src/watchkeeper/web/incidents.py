"""The dashboard's incidents pages: the history with its filters, and one incident to review and act on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..api.deps import IdPath, ServicesDep
from ..taxonomy import BUILTIN_CATEGORIES, INCIDENT_STATUSES, SEVERITY_LABELS
from .pages import PagePrincipal, render

router = APIRouter(include_in_schema=False)

STATUS_NAMES = {"open": "Open", "acknowledged": "Acknowledged", "confirmed": "Confirmed",
                "false_alarm": "False alarm", "resolved": "Resolved"}


def _vocabulary(services: ServicesDep) -> dict[str, dict[str, str]]:
    """The names the pages show for ids: categories (the settings' own too), severities and statuses."""
    categories = {c.id: c.name for c in BUILTIN_CATEGORIES} | {c.id: c.name for c in services.settings.categories}
    return {"categories": categories, "severities": {str(k): v for k, v in SEVERITY_LABELS.items()},
            "statuses": {s: STATUS_NAMES.get(s, s) for s in INCIDENT_STATUSES}}


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, principal: PagePrincipal, services: ServicesDep) -> Response:
    return render(request, principal, "incidents.html", title="Incidents", vocabulary=_vocabulary(services))


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(incident_id: IdPath, request: Request, principal: PagePrincipal, services: ServicesDep) -> Response:
    return render(request, principal, "incident.html", title=f"Incident {incident_id}", incident_id=incident_id,
                  vocabulary=_vocabulary(services))
