"""Accounts, API keys, login sessions, rate limits and the audit log.

A request acts as a ``Principal``: the user behind an API key or a login
session, with the role it acts in (a key's role never exceeds its user's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import PermissionDeniedError
from ..store.models import ROLES

# Higher rank can do everything a lower one can.
ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}
assert set(ROLE_RANK) == set(ROLES)

Via = Literal["api_key", "session", "cli", "system", "link"]


def role_allows(role: str, needed: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[needed]


def lower_role(a: str, b: str) -> str:
    return a if ROLE_RANK[a] <= ROLE_RANK[b] else b


@dataclass(frozen=True)
class Principal:
    user_id: int | None
    name: str
    role: str
    via: Via
    key_id: int | None = None
    session_id: int | None = None

    @property
    def rate_key(self) -> str:
        """What the request rate limit counts against: the key, or the login session."""
        return f"key:{self.key_id}" if self.key_id is not None else f"session:{self.session_id}"


def check_may_grant(principal: Principal, role: str) -> None:
    """Refuse to grant a role above the one the principal acts as (an admin's operator key is no admin)."""
    if not role_allows(principal.role, role):
        raise PermissionDeniedError(f"'{principal.name}' acts as {principal.role} and cannot grant the {role} role")
