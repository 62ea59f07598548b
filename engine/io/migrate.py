"""Apply Prisma migration folders from Python, compatible with Prisma's `_prisma_migrations`.

`prisma migrate deploy` and `regimelab migrate` are interchangeable: both apply
`prisma/migrations/<timestamp>_<name>/migration.sql` in name order, record each in
`_prisma_migrations` with the SHA-256 of the file, and hold the same advisory lock.
Each migration runs in its own transaction, so a failure leaves nothing half-applied.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg

from engine.errors import MigrationError
from engine.io.db import connect

__all__ = ["Migration", "MigrationReport", "apply_migrations", "discover_migrations", "status"]

log = logging.getLogger(__name__)

# Prisma's migrate lock id, so the two tools never migrate the same database at once.
PRISMA_ADVISORY_LOCK: Final = 72707369

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration folder: its name, SQL bytes and the checksums Prisma accepts for it."""

    name: str
    path: Path
    script: bytes

    @property
    def checksum(self) -> str:
        """Lowercase hex SHA-256 of the raw file, as Prisma records it."""
        return hashlib.sha256(self.script).hexdigest()

    @property
    def accepted_checksums(self) -> frozenset[str]:
        """Checksums of the file as is, with CRLF as LF, and with LF as CRLF (Prisma's rule)."""
        lf = self.script.replace(b"\r\n", b"\n")
        crlf = lf.replace(b"\n", b"\r\n")
        return frozenset(hashlib.sha256(v).hexdigest() for v in (self.script, lf, crlf))


@dataclass(slots=True)
class MigrationReport:
    """What a migrate call did: names applied now, names already applied, warnings."""

    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover_migrations(migrations_dir: Path) -> list[Migration]:
    """Migration folders under `migrations_dir`, in the order Prisma applies them."""
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations folder not found: {migrations_dir}")
    found = []
    for folder in sorted(p for p in migrations_dir.iterdir() if p.is_dir()):
        script = folder / "migration.sql"
        if not script.is_file():
            raise MigrationError(f"migration folder {folder.name} has no migration.sql")
        found.append(Migration(name=folder.name, path=script, script=script.read_bytes()))
    if not found:
        raise MigrationError(f"no migrations found in {migrations_dir}")
    return found


def _applied_rows(conn: psycopg.Connection) -> dict[str, tuple[str, object]]:
    rows = conn.execute(
        'SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" '
        "WHERE rolled_back_at IS NULL ORDER BY started_at"
    ).fetchall()
    return {name: (checksum, finished_at) for name, checksum, finished_at in rows}


def _check_applied(migration: Migration, checksum: str, finished_at: object) -> None:
    if finished_at is None:
        raise MigrationError(
            f"migration {migration.name} is recorded as started but not finished; "
            "inspect the database, then mark it rolled back or applied "
            "(prisma migrate resolve) before migrating again"
        )
    if checksum not in migration.accepted_checksums:
        raise MigrationError(
            f"migration {migration.name} was modified after it was applied "
            f"(recorded checksum {checksum[:12]}…, file {migration.checksum[:12]}…); "
            "never edit an applied migration: add a new one instead"
        )


def _apply_one(conn: psycopg.Connection, migration: Migration) -> None:
    sql = migration.script.decode("utf-8")
    try:
        with conn.transaction():
            conn.execute(
                'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) '
                "VALUES (%s, %s, %s, clock_timestamp())",
                (str(uuid.uuid4()), migration.checksum, migration.name),
            )
            # Sent as one script with no parameters (simple query protocol), like Prisma does.
            conn.execute(sql.encode("utf-8"), prepare=False)
            conn.execute(
                'UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), '
                "applied_steps_count = 1 WHERE migration_name = %s AND finished_at IS NULL",
                (migration.name,),
            )
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationError(
            f"migration {migration.name} failed and was rolled back: {detail}"
        ) from exc


def apply_migrations(
    database_url: str,
    migrations_dir: Path,
    *,
    timeout: float = 5.0,
    on_apply: Callable[[Migration], None] | None = None,
) -> MigrationReport:
    """Apply every migration not yet recorded; verify the checksums of those that are."""
    migrations = discover_migrations(migrations_dir)
    report = MigrationReport()
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PRISMA_ADVISORY_LOCK,))
        try:
            conn.execute(_CREATE_TABLE)
            applied = _applied_rows(conn)
            local = {m.name for m in migrations}
            report.warnings.extend(
                f"migration {name} is applied in the database but missing locally"
                for name in applied
                if name not in local
            )
            for migration in migrations:
                if migration.name in applied:
                    _check_applied(migration, *applied[migration.name])
                    report.already_applied.append(migration.name)
                    continue
                if on_apply is not None:
                    on_apply(migration)
                _apply_one(conn, migration)
                log.info("applied migration %s", migration.name)
                report.applied.append(migration.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (PRISMA_ADVISORY_LOCK,))
    return report


def status(database_url: str, migrations_dir: Path, *, timeout: float = 5.0) -> dict[str, str]:
    """Each local migration's state: `applied`, `pending`, `failed` or `modified`."""
    migrations = discover_migrations(migrations_dir)
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('\"_prisma_migrations\"')").fetchone()
        applied = _applied_rows(conn) if exists and exists[0] else {}
    states = {}
    for migration in migrations:
        if migration.name not in applied:
            states[migration.name] = "pending"
            continue
        checksum, finished_at = applied[migration.name]
        if finished_at is None:
            states[migration.name] = "failed"
        elif checksum not in migration.accepted_checksums:
            states[migration.name] = "modified"
        else:
            states[migration.name] = "applied"
    return states
