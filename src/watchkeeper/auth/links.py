"""Signed links: a URL path that works without signing in until it expires (for e-mails and shared views).

The signature is an HMAC-SHA256 of the path, the expiry time and the issuing
user's id under a secret kept in the database (``shared_secret``), so every
process of a deployment (the API, job workers and camera workers on any
host) signs and checks alike, and no other deployment's links pass. The id
travels in the signature (``ID.MAC``), so a link stops working when its
issuer is disabled or deleted (``check_issuer``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import AuthError
from ..store.db import Database
from ..store.models import SigningSecret, User

SECRET_BYTES = 32
LINKS_SECRET = "links"  # its name in signing_secrets
EARLIER_SECRET_FILE = "link-signing.key"  # where versions before the database kept it, in the data folder


def shared_secret(db: Database, data_dir: Path) -> bytes:
    """The link-signing secret, made on first use. Earlier versions kept it in a file of the data folder: the
    first process to find such a file in its ``data_dir`` puts that secret in the database, so links already sent
    keep working; from then on the database's secret is the one, whatever file a host has."""
    earlier_file = data_dir / EARLIER_SECRET_FILE
    with db.session(write=False) as session:
        kept = session.get(SigningSecret, LINKS_SECRET)
        if kept is not None:
            return kept.secret
    made = earlier_file.read_bytes() if earlier_file.is_file() else secrets.token_bytes(SECRET_BYTES)
    try:
        with db.session() as session:
            if session.get(SigningSecret, LINKS_SECRET) is None:
                session.add(SigningSecret(name=LINKS_SECRET, secret=made))
    except IntegrityError:  # another process made it first: theirs is the one
        pass
    with db.session(write=False) as session:
        kept = session.get(SigningSecret, LINKS_SECRET)
        assert kept is not None
        return kept.secret


def _mac(secret: bytes, path: str, expires: int, issuer: str) -> str:
    digest = hmac.new(secret, f"{path}\n{expires}\n{issuer}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, ttl_s: int, issuer_id: int) -> tuple[int, str]:
    """(expires as Unix seconds, signature) for ``path``, issued by the user ``issuer_id``."""
    expires = int(time.time()) + ttl_s
    return expires, f"{issuer_id}.{_mac(secret, path, expires, str(issuer_id))}"


def check(secret: bytes, path: str, expires: int, signature: str) -> int:
    """The issuer's user id; raises ``AuthError`` unless the signature is ``path``'s and has not expired.

    The caller then checks the issuer with ``check_issuer``.
    """
    issuer, _, mac = signature.partition(".")
    if not hmac.compare_digest(_mac(secret, path, expires, issuer).encode(), mac.encode()):
        raise AuthError("the link's signature does not match")
    if expires < time.time():
        raise AuthError("the link has expired; ask for a new one")
    return int(issuer)  # as sign() wrote it, now that the MAC vouches for it


def check_issuer(session: Session, issuer_id: int) -> None:
    """Raise ``AuthError`` unless the link's issuer is still an active user."""
    issuer = session.get(User, issuer_id)
    if issuer is None or issuer.state != "active":
        raise AuthError("the link's issuer can no longer sign in; ask for a new one")
