"""Uploaded media (what POST /upload stored)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from sqlalchemy import select

from ...auth import links
from ...errors import NotFoundError, PermissionDeniedError
from ...store.models import Upload
from .. import schemas
from ..deps import IdPath, PageDep, ServicesDep, Viewer
from ..services import Services
from .common import page_of, within

router = APIRouter(prefix="/media", tags=["media"])


@router.get("", response_model=schemas.Page[schemas.MediaOut], summary="Uploaded media, newest first")
def list_media(services: ServicesDep, _: Viewer, pagination: PageDep,
               media_type: Annotated[schemas.MediaTypeName | None, Query()] = None,
               since: datetime | None = None, until: datetime | None = None) -> schemas.Page[schemas.MediaOut]:
    query = within(select(Upload), Upload.created_at, since, until)
    if media_type is not None:
        query = query.where(Upload.media_type == media_type)
    with services.db.session(write=False) as session:
        return page_of(session, query, (Upload.created_at.desc(), Upload.id.desc()), schemas.MediaOut, pagination)


def _get(services: Services, media_id: int) -> schemas.MediaOut:
    with services.db.session(write=False) as session:
        row = session.get(Upload, media_id)
        if row is None:
            raise NotFoundError(f"no upload with id {media_id}")
        return schemas.MediaOut.model_validate(row)


@router.get("/{media_id}", response_model=schemas.MediaOut, summary="One upload")
def one_media(media_id: IdPath, services: ServicesDep, _: Viewer) -> schemas.MediaOut:
    return _get(services, media_id)


@router.get("/{media_id}/link", response_model=schemas.SignedLink,
            summary="A link to the file that works without signing in until it expires")
def signed_link(media_id: IdPath, services: ServicesDep, principal: Viewer,
                ttl_s: Annotated[int, Query(ge=60, le=7 * 86400, description="Lifetime in seconds.")] = 86400,
                ) -> schemas.SignedLink:
    if principal.user_id is None:
        raise PermissionDeniedError("this principal has no user to issue a link")
    path = f"/{_get(services, media_id).file_path}"
    # Signed with the issuer's id: the link dies with their account.
    expires, signature = links.sign(services.link_secret, path, ttl_s, principal.user_id)
    return schemas.SignedLink(url=f"{path}?{urlencode({'expires': expires, 'signature': signature})}",
                              expires_at=datetime.fromtimestamp(expires, timezone.utc))
