"""User accounts (admins only): list, create, approve, disable, change role; who incidents can be assigned to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from ...auth import check_may_grant
from ...auth.audit import record
from ...auth.users import create_user, get_user, update_user
from ...store.models import User
from .. import schemas
from ..deps import Admin, IdPath, Operator, PageDep, ServicesDep, client_ip
from ..services import Services
from .common import page_of

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=schemas.Page[schemas.UserOut], summary="List users")
def list_users(services: ServicesDep, _: Admin, pagination: PageDep,
               state: Annotated[schemas.UserState | None, Query()] = None,
               role: Annotated[schemas.Role | None, Query()] = None) -> schemas.Page[schemas.UserOut]:
    query = select(User)
    if state is not None:
        query = query.where(User.state == state)
    if role is not None:
        query = query.where(User.role == role)
    with services.db.session(write=False) as session:
        return page_of(session, query, (User.name,), schemas.UserOut, pagination)


@router.get("/assignable", response_model=list[schemas.AssignableUser],
            summary="The active operators and admins, who incidents can be assigned to (for operators)")
def assignable_users(services: ServicesDep, _: Operator) -> list[schemas.AssignableUser]:
    with services.db.session(write=False) as session:
        users = session.scalars(select(User).where(User.state == "active", User.role.in_(("operator", "admin")))
                                .order_by(User.name))
        return [schemas.AssignableUser.model_validate(u) for u in users]


@router.post("", response_model=schemas.UserOut, status_code=status.HTTP_201_CREATED, summary="Create a user")
def add_user(request: Request, services: ServicesDep, principal: Admin, body: schemas.UserCreate) -> schemas.UserOut:
    check_may_grant(principal, body.role)
    with services.db.session() as session:
        user = create_user(session, body.name, body.password, body.role, email=body.email)
        record(session, principal, "user.create", target_type="user", target_id=user.id,
               details={"name": user.name, "role": user.role}, ip=client_ip(request))
        return schemas.UserOut.model_validate(user)


@router.get("/{user_id}", response_model=schemas.UserOut, summary="One user")
def one_user(user_id: IdPath, services: ServicesDep, _: Admin) -> schemas.UserOut:
    with services.db.session(write=False) as session:
        return schemas.UserOut.model_validate(get_user(session, user_id))


def _change(request: Request, services: Services, principal: Admin, user_id: int, action: str, *,
            role: str | None = None, state: str | None = None) -> schemas.UserOut:
    with services.db.session() as session:
        user = get_user(session, user_id)
        changes = update_user(session, user, role=role, state=state)
        if changes:
            record(session, principal, action, target_type="user", target_id=user.id, details=changes,
                   ip=client_ip(request))
        return schemas.UserOut.model_validate(user)


@router.patch("/{user_id}", response_model=schemas.UserOut, summary="Change a user's role")
def change_role(user_id: IdPath, request: Request, services: ServicesDep, principal: Admin,
                body: schemas.UserUpdate) -> schemas.UserOut:
    check_may_grant(principal, body.role)
    return _change(request, services, principal, user_id, "user.role", role=body.role)


@router.post("/{user_id}/approve", response_model=schemas.UserOut,
             summary="Activate a user: approves a registration or re-enables a disabled account")
def approve(user_id: IdPath, request: Request, services: ServicesDep, principal: Admin) -> schemas.UserOut:
    return _change(request, services, principal, user_id, "user.approve", state="active")


@router.post("/{user_id}/disable", response_model=schemas.UserOut,
             summary="Disable a user: ends their sessions, their keys stop working")
def disable(user_id: IdPath, request: Request, services: ServicesDep, principal: Admin) -> schemas.UserOut:
    return _change(request, services, principal, user_id, "user.disable", state="disabled")
