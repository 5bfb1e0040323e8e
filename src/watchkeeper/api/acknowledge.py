"""The acknowledge link in an alert: a signed URL that works without signing in.

``GET /ack/{id}`` shows the incident and a button; the button POSTs the same signed query, which
acknowledges it (audited as done through the link). Mail scanners that open every link in a message
therefore see the page without acknowledging anything.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ..auth import Principal, links
from ..auth.audit import record
from ..notify.compose import SYSTEM_ISSUER
from ..store.analyses import set_incident_status
from ..store.models import IncidentRecord, utcnow
from .deps import ServicesDep, client_ip
from .v1.incidents import _get

router = APIRouter(tags=["alerts"])

LINK_ACTOR = Principal(user_id=None, name="acknowledge link", role="operator", via="link")


def _check(request: Request, services: ServicesDep, incident_id: int, expires: int, signature: str) -> None:
    issuer = links.check(services.link_secret, f"/ack/{incident_id}", expires, signature)
    if issuer != SYSTEM_ISSUER:
        with services.db.session(write=False) as session:
            links.check_issuer(session, issuer)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        '<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}'
        'button{font-size:1.1rem;padding:.6rem 1.4rem}</style></head>'
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/ack/{incident_id}", response_class=HTMLResponse, summary="The acknowledge link's page")
def acknowledge_page(incident_id: int, request: Request, services: ServicesDep, expires: Annotated[int, Query()],
                     signature: Annotated[str, Query(max_length=200)]) -> HTMLResponse:
    _check(request, services, incident_id, expires, signature)
    with services.db.session(write=False) as session:
        row = _get(session, incident_id)
        what = f"{row.category_name}, severity {row.severity}" + (f", camera {row.camera}" if row.camera else "")
        status = row.status
    if status != "open":
        return _page("Already handled", f"<p>{html.escape(what)}: {html.escape(status)}.</p>")
    query = html.escape(f"expires={expires}&signature={signature}", quote=True)
    return _page("Acknowledge this incident?", f"<p>{html.escape(what)}.</p>"
                 f'<form method="post" action="?{query}"><button>Acknowledge</button></form>')  # behind any prefix


@router.post("/ack/{incident_id}", response_class=HTMLResponse, summary="Acknowledge through the alert's link")
def acknowledge(incident_id: int, request: Request, services: ServicesDep, expires: Annotated[int, Query()],
                signature: Annotated[str, Query(max_length=200)]) -> HTMLResponse:
    _check(request, services, incident_id, expires, signature)
    with services.db.session() as session:
        row: IncidentRecord = _get(session, incident_id, for_update=True)
        if row.status == "open":
            set_incident_status(session, row, "acknowledged")
            row.status_note, row.updated_at = "acknowledged through the alert's link", utcnow()
            record(session, LINK_ACTOR, "incident.status", target_type="incident", target_id=incident_id,
                   details={"from": "open", "to": "acknowledged", "note": row.status_note}, ip=client_ip(request))
        status = row.status
    return _page("Acknowledged" if status == "acknowledged" else "Already handled",
                 f"<p>Incident {incident_id} is {html.escape(status)}.</p>")
