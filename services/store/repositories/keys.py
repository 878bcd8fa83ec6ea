"""API keys: stored as SHA-256 digests, looked up by digest, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mslesion.services.errors import ConflictError
from mslesion.services.store.enums import Role
from mslesion.services.store.tables import ApiKey, utcnow

KEY_PREFIX = "msl_"


def hash_key(plaintext: str) -> str:
    """Hex SHA-256 of a key (keys carry 256 random bits, so a fast hash is enough)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_key(session: Session, name: str, role: Role, plaintext: str | None = None) -> str:
    """Store a key for ``name`` and return its plaintext (shown once, never stored).

    Raises :class:`ConflictError` when a key of that name exists (revoked keys included).
    """
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ConflictError(f"a key named {name!r} exists already; choose another name")
    key = plaintext or new_key()
    session.add(ApiKey(name=name, role=role, key_hash=hash_key(key)))
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently, or a reused plaintext
        raise ConflictError(f"a key named {name!r} or with the same value exists already") from exc
    return key


def ensure_key(session: Session, name: str, role: Role, plaintext: str) -> None:
    """Make sure ``plaintext`` is a valid key of ``role`` (used for a deployment's bootstrap)."""
    digest = hash_key(plaintext)
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        session.add(ApiKey(name=name, role=role, key_hash=digest))
    else:
        row.key_hash, row.role, row.revoked_at = digest, role, None


def authenticate(session: Session, plaintext: str) -> ApiKey | None:
    """The live key matching ``plaintext``, or None."""
    digest = hash_key(plaintext)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    # The lookup is by digest; compare again in constant time so no timing depends on content.
    return row if hmac.compare_digest(row.key_hash, digest) else None


def revoke(session: Session, name: str) -> bool:
    """Revoke the key called ``name``; False if there is none."""
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def list_keys(session: Session) -> list[ApiKey]:
    """All keys (digests only)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def count_keys(session: Session) -> int:
    """How many keys exist (live or revoked)."""
    return len(list_keys(session))
