"""API keys: created once, stored only as an HMAC-SHA256 digest, checked by digest lookup.

A key reads `rl_<prefix>_<secret>`; the prefix (shown in listings) tells keys apart, the
digest (HMAC-SHA256 with the server secret) is all the database holds, so a copy of the
database cannot be turned back into working keys. The server secret is
REGIMELAB_SECRET_KEY; on the embedded setup, where nothing is configured, one is generated
once into the state folder (mode 600) so `regimelab up` and the CLI agree without setup.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import psycopg

from engine.errors import ConfigError
from engine.settings import Settings

__all__ = [
    "SCOPES",
    "ApiKey",
    "averify_api_key",
    "create_api_key",
    "digest",
    "list_api_keys",
    "parse_scopes",
    "revoke_api_key",
    "server_secret",
    "verify_api_key",
    "well_formed",
]

Scope = Literal["read", "write", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("read", "write", "admin")
_PREFIX_LENGTH: Final = 8
_SECRET_FILE: Final = "secret_key"  # noqa: S105  # a file name, not a secret


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret part."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: Scope) -> bool:
        """True if the key carries `scope` (admin implies write, write implies read)."""
        rank: dict[str, int] = {name: i for i, name in enumerate(SCOPES)}
        held = max((rank.get(s, -1) for s in self.scopes), default=-1)
        return self.revoked_at is None and held >= rank[scope]


def server_secret(settings: Settings) -> bytes:
    """The HMAC key: REGIMELAB_SECRET_KEY, else one generated once in the state folder.

    A configured (non-embedded) database without REGIMELAB_SECRET_KEY is an error: keys
    digested with a secret that lives on one machine would not verify on another replica.
    """
    if settings.secret_key is not None:
        value = settings.secret_key.reveal()
        if len(value) < 16:
            raise ConfigError("REGIMELAB_SECRET_KEY must be at least 16 characters")
        return value.encode()
    if settings.database_url is not None:
        raise ConfigError(
            "REGIMELAB_SECRET_KEY is not set: API keys need a server secret shared by every "
            "replica (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return _state_secret(settings.state_path / _SECRET_FILE)


def _state_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(descriptor, "wb") as sink:  # first use: create it, owner-only
        value = secrets.token_urlsafe(32).encode()
        sink.write(value)
    return value


def digest(key: str, secret: bytes) -> str:
    """HMAC-SHA256 of `key` under `secret`, hex."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> tuple[Scope, ...]:
    """Scopes from "read,write" or an iterable; ConfigError for unknown or none."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    chosen = [s.strip() for s in items if s.strip()]
    unknown = sorted(set(chosen) - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope(s) {unknown}: choose from {', '.join(SCOPES)}")
    if not chosen:
        raise ConfigError(f"give at least one scope ({', '.join(SCOPES)})")
    return tuple(s for s in SCOPES if s in chosen)


_COLUMNS: Final = "id, name, prefix, scopes, created_at, last_used_at, revoked_at"


def _row(row: tuple[Any, ...]) -> ApiKey:
    id_, name, prefix, scopes, created, used, revoked = row
    return ApiKey(
        id=int(id_),
        name=str(name),
        prefix=str(prefix),
        scopes=tuple(scopes),
        created_at=created,
        last_used_at=used,
        revoked_at=revoked,
    )


def create_api_key(
    conn: psycopg.Connection, name: str, scopes: str | Iterable[str], secret: bytes
) -> tuple[ApiKey, str]:
    """Store a new key; returns it and the full key text (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ConfigError("an API key needs a name of 1 to 100 characters")
    chosen = parse_scopes(scopes)
    prefix = secrets.token_hex(_PREFIX_LENGTH // 2)
    key = f"rl_{prefix}_{secrets.token_urlsafe(32)}"
    try:
        row = conn.execute(
            f"INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES (%s, %s, %s, %s) "
            f"RETURNING {_COLUMNS}",
            (name, prefix, digest(key, secret), list(chosen)),
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ConfigError(f"an API key named {name!r} exists already") from None
    assert row is not None
    return _row(row), key


def list_api_keys(conn: psycopg.Connection) -> list[ApiKey]:
    """All keys, revoked ones included, oldest first."""
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id")]


def revoke_api_key(conn: psycopg.Connection, name: str) -> ApiKey:
    """Revoke the named key (idempotent); ConfigError if there is none."""
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE name = %s "
        f"RETURNING {_COLUMNS}",
        (name,),
    ).fetchone()
    if row is None:
        raise ConfigError(f"no API key named {name!r}")
    return _row(row)


_VERIFY: Final = (
    f"UPDATE api_keys SET last_used_at = now() WHERE key_hash = %s AND revoked_at IS NULL "
    f"RETURNING {_COLUMNS}"
)


def well_formed(key: str) -> bool:
    """True if `key` looks like a RegimeLab key (cheap check before hashing)."""
    return key.startswith("rl_") and len(key) <= 200


def verify_api_key(conn: psycopg.Connection, key: str, secret: bytes) -> ApiKey | None:
    """The live key `key` is, or None (unknown, malformed or revoked). Records its use."""
    if not well_formed(key):
        return None
    row = conn.execute(_VERIFY, (digest(key, secret),)).fetchone()
    return None if row is None else _row(row)


async def averify_api_key(conn: psycopg.AsyncConnection, key: str, secret: bytes) -> ApiKey | None:
    """:func:`verify_api_key` on an async connection (the API's request path)."""
    if not well_formed(key):
        return None
    cur = await conn.execute(_VERIFY, (digest(key, secret),))
    row = await cur.fetchone()
    return None if row is None else _row(row)
