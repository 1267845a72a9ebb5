"""The event store's accounts: users and their roles, argon2 password hashes, API tokens, login sessions.

Tokens and session ids are shown to their owner once; only their SHA-256 is stored. Passwords follow
:mod:`cosmic_ray.serve.passwords` (12 characters or more, not a common one). API tokens expire
(``DEFAULT_TOKEN_TTL`` unless a lifetime is given) and a password change revokes them and ends the
user's sessions.

Example:
    >>> from cosmic_ray.serve.db import open_engine
    >>> accounts = Accounts(open_engine("sqlite:///:memory:"))
    >>> accounts.add_user("vera", "a long passphrase", role="astronomer").role
    'astronomer'
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from cosmic_ray.serve.db import ApiToken, ConflictError, NotFoundError, Session, StoreError, User, utcnow
from cosmic_ray.serve.passwords import check_password

log = logging.getLogger(__name__)

ROLES = ("viewer", "astronomer", "admin")
WRITER_ROLES = ("astronomer", "admin")
DEFAULT_TOKEN_TTL = timedelta(days=30)  # ASVS V3.3.2 (level 1): re-authenticate at least every 30 days
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def hash_secret(secret: str) -> str:
    """SHA-256 of a token or session id (256-bit random values: a fast hash is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user and how they proved it (``password``, ``token``, ``session``, ``lookup``)."""

    username: str
    role: str
    via: str

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES


@dataclass(frozen=True)
class TokenInfo:
    """A new API token."""

    id: int
    username: str
    name: str
    token: str  # the plain token: shown once, never stored
    expires_at: datetime | None = None


class Accounts:
    """Users, API tokens and sessions over one engine. Safe to share across threads.

    Args:
        engine: the store's engine (:func:`cosmic_ray.serve.db.open_engine`: tables created).
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.hasher = PasswordHasher()
        self._dummy: str | None = None

    # --------------------------------------------------------------- users
    @staticmethod
    def _check_password(password: str) -> None:
        check_password(password)

    def add_user(self, username: str, password: str, role: str = "viewer") -> Principal:
        """Add a user.

        Raises:
            ConflictError: the user exists.
            StoreError: a bad name, an unknown role or a weak password.
        """
        if not _USERNAME.match(username):
            raise StoreError(f"bad username {username!r}: 1-64 letters, digits and _.@-")
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        self._check_password(password)
        now = utcnow()
        digest = self.hasher.hash(password)
        with self.engine.begin() as conn:
            if conn.execute(select(User.username).where(User.username == username)).first() is not None:
                raise ConflictError(f"user {username!r} already exists")
            conn.execute(
                insert(User).values(username=username, role=role, password_hash=digest, created_at=now, updated_at=now)
            )
        log.info("user %s added with role %s", username, role)
        return Principal(username, role, "password")

    def set_password(self, username: str, password: str) -> None:
        """Change a password; ends the user's sessions and revokes their API tokens.

        Raises:
            NotFoundError: no such user.
            StoreError: a weak password.
        """
        self._check_password(password)
        digest = self.hasher.hash(password)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(User).where(User.username == username).values(password_hash=digest, updated_at=utcnow())
            ).rowcount
            if changed == 0:
                raise NotFoundError(f"no user {username!r}")
            conn.execute(delete(Session).where(Session.username == username))
            conn.execute(
                update(ApiToken)
                .where(ApiToken.username == username, ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        log.info("password of %s changed: sessions ended, tokens revoked", username)

    def set_role(self, username: str, role: str) -> None:
        """Change a role.

        Raises:
            NotFoundError: no such user.
            StoreError: an unknown role.
        """
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(User).where(User.username == username).values(role=role, updated_at=utcnow())
            ).rowcount
            if changed == 0:
                raise NotFoundError(f"no user {username!r}")

    def remove_user(self, username: str) -> None:
        """Remove a user with their tokens and sessions.

        Raises:
            NotFoundError: no such user.
        """
        with self.engine.begin() as conn:
            conn.execute(delete(ApiToken).where(ApiToken.username == username))
            conn.execute(delete(Session).where(Session.username == username))
            if conn.execute(delete(User).where(User.username == username)).rowcount == 0:
                raise NotFoundError(f"no user {username!r}")
        log.info("user %s removed", username)

    def get_user(self, username: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(User.username, User.role).where(User.username == username)).first()
        return Principal(row.username, row.role, "lookup") if row else None

    def list_users(self) -> list[Principal]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(User.username, User.role).order_by(User.username)).all()
        return [Principal(r.username, r.role, "lookup") for r in rows]

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user if the password matches, else None (same work whether or not the user exists)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role, User.password_hash).where(User.username == username)
            ).first()
        digest = row.password_hash if row else self._dummy_hash()
        try:
            self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(digest):
            with self.engine.begin() as conn:
                conn.execute(
                    update(User).where(User.username == username).values(password_hash=self.hasher.hash(password))
                )
        return Principal(row.username, row.role, "password")

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    # --------------------------------------------------------------- API tokens
    def create_token(self, username: str, name: str = "", ttl: timedelta | None = None) -> TokenInfo:
        """A new API token for ``username``; the plain token is in the result only.

        Args:
            username: its owner.
            name: a label (e.g. the script that uses it).
            ttl: its lifetime (``DEFAULT_TOKEN_TTL`` when None).

        Raises:
            NotFoundError: no such user.
            StoreError: a lifetime that is not positive.
        """
        ttl = DEFAULT_TOKEN_TTL if ttl is None else ttl
        if ttl <= timedelta(0):
            raise StoreError(f"a token lifetime must be positive, not {ttl}")
        token = "crt_" + secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + ttl
        with self.engine.begin() as conn:
            if conn.execute(select(User.username).where(User.username == username)).first() is None:
                raise NotFoundError(f"no user {username!r}")
            result = conn.execute(
                insert(ApiToken).values(
                    token_hash=hash_secret(token), username=username, name=name, created_at=now, expires_at=expires
                )
            )
            assert result.inserted_primary_key is not None  # an INSERT has one
            token_id = int(result.inserted_primary_key[0])
        log.info("token %d created for %s", token_id, username)
        return TokenInfo(token_id, username, name, token, expires)

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token.

        Raises:
            NotFoundError: no live token with that id.
        """
        with self.engine.begin() as conn:
            done = conn.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            ).rowcount
        if not done:
            raise NotFoundError(f"no live token with id {token_id}")
        log.info("token %d revoked", token_id)

    def list_tokens(self, username: str | None = None) -> list[dict[str, Any]]:
        stmt = select(
            ApiToken.id, ApiToken.username, ApiToken.name, ApiToken.created_at, ApiToken.expires_at, ApiToken.revoked_at
        ).order_by(ApiToken.id)
        if username:
            stmt = stmt.where(ApiToken.username == username)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def principal_for_token(self, token: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role)
                .join(ApiToken, ApiToken.username == User.username)
                .where(
                    ApiToken.token_hash == hash_secret(token),
                    ApiToken.revoked_at.is_(None),
                    ApiToken.expires_at > utcnow(),  # NULL (a token without a lifetime): refused
                )
            ).first()
        return Principal(row.username, row.role, "token") if row else None

    # --------------------------------------------------------------- sessions
    def create_session(self, username: str, ttl: timedelta) -> tuple[str, datetime]:
        """A new session id (plain, for the cookie) and its expiry; only its hash is stored."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + ttl
        with self.engine.begin() as conn:
            conn.execute(delete(Session).where(Session.expires_at < now))
            conn.execute(
                insert(Session).values(
                    id_hash=hash_secret(session_id), username=username, created_at=now, expires_at=expires
                )
            )
        return session_id, expires

    def principal_for_session(self, session_id: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(User.username, User.role)
                .join(Session, Session.username == User.username)
                .where(Session.id_hash == hash_secret(session_id), Session.expires_at > utcnow())
            ).first()
        return Principal(row.username, row.role, "session") if row else None

    def delete_session(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(Session).where(Session.id_hash == hash_secret(session_id)))
