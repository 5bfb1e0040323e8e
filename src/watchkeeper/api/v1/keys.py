"""API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select

from ...auth import Principal, check_may_grant, lower_role
from ...auth.audit import record
from ...auth.keys import create_key, get_key, revoke_key
from ...auth.users import get_user
from ...errors import NotFoundError, PermissionDeniedError
from ...store.models import ApiKey
from .. import schemas
from ..deps import IdPath, Operator, PageDep, ServicesDep, Viewer, client_ip
from .common import page_of

router = APIRouter(prefix="/keys", tags=["keys"])


def _visible(principal: Principal, key: ApiKey) -> bool:
    return principal.role == "admin" or key.user_id == principal.user_id


@router.get("", response_model=schemas.Page[schemas.KeyOut],
            summary="API keys: your own; admins see everyone's (or one user's with user_id)")
def list_keys(services: ServicesDep, principal: Viewer, pagination: PageDep,
              user_id: Annotated[int | None, Query(ge=1, le=schemas.MAX_ROW_ID)] = None,
              include_revoked: bool = False) -> schemas.Page[schemas.KeyOut]:
    if principal.role != "admin":
        user_id = principal.user_id
    query = select(ApiKey)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    with services.db.session(write=False) as session:
        return page_of(session, query, (ApiKey.created_at.desc(), ApiKey.id.desc()), schemas.KeyOut, pagination)


@router.post("", response_model=schemas.KeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Create an API key; the response is the only time the key is shown")
def add_key(request: Request, services: ServicesDep, principal: Operator, body: schemas.KeyCreate) -> schemas.KeyCreated:
    owner_id = body.user_id if body.user_id is not None else principal.user_id
    if owner_id != principal.user_id and principal.role != "admin":
        raise PermissionDeniedError("only admins create keys for other users")
    if owner_id is None:
        raise PermissionDeniedError("this principal has no user to own a key; give user_id")
    with services.db.session() as session:
        owner = get_user(session, owner_id)
        # Capped by the requester too: a scoped key must not mint a key stronger than itself.
        role = body.role or lower_role(owner.role, principal.role)
        check_may_grant(principal, role)
        key, secret = create_key(session, owner, body.name, role)
        record(session, principal, "key.create", target_type="api_key", target_id=key.id,
               details={"name": key.name, "role": key.role, "user_id": key.user_id}, ip=client_ip(request))
        return schemas.KeyCreated(**schemas.KeyOut.model_validate(key).model_dump(), key=secret)


@router.get("/{key_id}", response_model=schemas.KeyOut, summary="One API key (never the key itself)")
def one_key(key_id: IdPath, services: ServicesDep, principal: Viewer) -> schemas.KeyOut:
    with services.db.session(write=False) as session:
        key = get_key(session, key_id)
        if not _visible(principal, key):
            raise NotFoundError(f"no API key with id {key_id}")
        return schemas.KeyOut.model_validate(key)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API key")
def delete_key(key_id: IdPath, request: Request, services: ServicesDep, principal: Operator) -> Response:
    with services.db.session() as session:
        key = get_key(session, key_id)
        if not _visible(principal, key):
            raise NotFoundError(f"no API key with id {key_id}")
        if revoke_key(key):
            record(session, principal, "key.revoke", target_type="api_key", target_id=key.id,
                   details={"name": key.name, "user_id": key.user_id}, ip=client_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
