"""Backups of RegimeLab's data: one COPY file per table plus a manifest, restored in one
transaction into a database migrated to the same schema version.

A backup is a folder:

    manifest.json            format, time, server version, the applied migrations, and per
                             table its columns, row count and the SHA-256 of its file;
                             the value of every sequence
    tables/<table>.csv.gz    the table's rows in PostgreSQL's own CSV (COPY ... CSV HEADER)

Every table is read in one REPEATABLE READ READ ONLY transaction, so the backup is one
consistent snapshot while the API keeps writing. COPY's CSV is lossless for every column
type the schema uses (pgvector's vectors, jsonb, arrays, enums, timestamptz, floats in
their shortest exact form) and does not depend on the version of a pg_dump binary, so a
backup of the embedded PostgreSQL 18 restores into the PostgreSQL 17 of Docker Compose.
The schema itself is not in the backup: it is the migrations', and a restore refuses a
database whose applied migrations differ from the backup's.

A restore checks every file against the manifest, locks the tables, refuses a target that
holds rows (unless `replace`, which empties it first), loads the tables parents first,
sets the sequences, compares the row counts and commits; any failure rolls everything back.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

from engine.errors import RegimeLabError
from engine.io.db import connect

__all__ = [
    "BACKUP_FORMAT",
    "BackupError",
    "Manifest",
    "SequenceValue",
    "TableBackup",
    "backup_database",
    "read_manifest",
    "restore_database",
    "stored_symbols",
]

BACKUP_FORMAT: Final = "regimelab-backup/1"
MANIFEST: Final = "manifest.json"
TABLES_DIR: Final = "tables"
MIGRATIONS_TABLE: Final = "_prisma_migrations"
_CHUNK: Final = 1 << 20

Progress = Callable[[int, int, str], None]
"""(tables done, tables in all, what is being done) callbacks."""

# Output that reads back exactly, whatever the server's or the user's defaults.
_SESSION: Final = (
    "SET TIME ZONE 'UTC'",
    "SET datestyle = 'ISO, YMD'",
    "SET intervalstyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)


class BackupError(RegimeLabError):
    """A backup or restore that cannot proceed: bad path, wrong schema, non-empty target."""


@dataclass(frozen=True, slots=True)
class TableBackup:
    """One table of a backup: its file, columns (in file order), rows and file digest."""

    name: str
    file: str
    columns: list[str]
    rows: int
    sha256: str


@dataclass(frozen=True, slots=True)
class SequenceValue:
    """A sequence's state, so ids continue where the backup left them."""

    name: str
    last_value: int
    is_called: bool


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a backup holds and which schema it belongs to."""

    format: str
    created_at: str
    server_version: str
    migrations: list[str]
    tables: list[TableBackup]
    sequences: list[SequenceValue] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows over every table."""
        return sum(t.rows for t in self.tables)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            format=data["format"],
            created_at=data["created_at"],
            server_version=data["server_version"],
            migrations=list(data["migrations"]),
            tables=[TableBackup(**t) for t in data["tables"]],
            sequences=[SequenceValue(**s) for s in data.get("sequences", [])],
        )


# ---------------------------------------------------------------- the schema's tables


def _tables(conn: psycopg.Connection) -> list[str]:
    """The schema's tables (partition roots, not partitions), migrations bookkeeping aside."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
        "AND NOT c.relispartition AND c.relname <> %s ORDER BY c.relname",
        (MIGRATIONS_TABLE,),
    ).fetchall()
    return [r[0] for r in rows]


def _parents_first(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """`tables` ordered so every foreign key's target loads before the rows that use it."""
    edges = conn.execute(
        "SELECT child.relname, parent.relname FROM pg_constraint c "
        "JOIN pg_class child ON child.oid = c.conrelid "
        "JOIN pg_class parent ON parent.oid = c.confrelid "
        "WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace"
    ).fetchall()
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child in parents and parent in parents and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p)
        if not ready:
            raise BackupError(f"foreign keys form a cycle among {', '.join(sorted(parents))}")
        for table in ready:
            ordered.append(table)
            del parents[table]
        for pending in parents.values():
            pending.difference_update(ready)
    return ordered


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The table's stored columns in order (generated columns are computed, not copied)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attgenerated = '' ORDER BY a.attnum",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def _sequences(conn: psycopg.Connection) -> list[SequenceValue]:
    names = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' "
        "AND c.relnamespace = current_schema()::regnamespace ORDER BY c.relname"
    ).fetchall()
    values = []
    for (name,) in names:
        row = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(name))
        ).fetchone()
        assert row is not None
        values.append(SequenceValue(name, int(row[0]), bool(row[1])))
    return values


def _migrations(conn: psycopg.Connection) -> list[str]:
    """Names of the applied migrations, in order; BackupError if the schema is not there."""
    exists = conn.execute("SELECT to_regclass(%s)", (f'"{MIGRATIONS_TABLE}"',)).fetchone()
    if not exists or exists[0] is None:
        raise BackupError(
            "the database has no RegimeLab schema (no _prisma_migrations table); "
            "run `regimelab migrate` first"
        )
    rows = conn.execute(
        f'SELECT migration_name, finished_at IS NOT NULL FROM "{MIGRATIONS_TABLE}" '
        "WHERE rolled_back_at IS NULL ORDER BY migration_name"
    ).fetchall()
    unfinished = [name for name, finished in rows if not finished]
    if unfinished:
        raise BackupError(f"migration {unfinished[0]} is not finished; fix the schema first")
    return [name for name, _ in rows]


def _session(conn: psycopg.Connection) -> None:
    for statement in _SESSION:
        conn.execute(statement)


# ---------------------------------------------------------------- backup


def _primary_key(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    return [r[0] for r in rows]


def _copy_out(conn: psycopg.Connection, table: str, columns: list[str], target: Path) -> int:
    """Write the table as gzipped CSV in primary-key order (the same data makes the same
    file); the number of rows written."""
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
    )
    key = _primary_key(conn, table)
    if key:
        select += sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(map(sql.Identifier, key)))
    query = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER)").format(select)
    newlines = 0
    with (
        target.open("wb") as raw,
        # no name or time in the gzip header: the same rows make the same bytes
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=4, mtime=0) as out,
        conn.cursor() as cursor,
    ):
        with cursor.copy(query) as copy:
            for chunk in copy:
                out.write(chunk)
                newlines += bytes(chunk).count(b"\n")
        rows = cursor.rowcount
    return rows if rows >= 0 else newlines - 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_backup(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _check_destination(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise BackupError(f"{path} is a file; a backup is written to a folder")
    if path.is_dir() and any(path.iterdir()) and not _is_backup(path):
        raise BackupError(
            f"{path} is a folder that is not a RegimeLab backup; choose an empty or new folder"
        )


@contextlib.contextmanager
def _staging(path: Path) -> Iterator[Path]:
    """A fresh folder beside `path` to write into (removed unless it was moved in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_into_place(staging: Path, path: Path) -> None:
    """Move the finished backup to `path`, replacing a previous backup there."""
    previous = None
    if path.exists():
        previous = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(previous)
    staging.rename(path)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def backup_database(
    database_url: str,
    path: Path,
    *,
    timeout: float = 5.0,
    progress: Progress | None = None,
) -> Manifest:
    """Write every table of the database to the backup folder `path`; its manifest.

    The folder is written beside `path` and moved in place when complete, so `path` holds
    either the previous backup or the new one, never half of one. Files are private to
    the user (a backup holds webhook secrets and API-key digests).
    """
    path = path.expanduser().absolute()
    try:
        _check_destination(path)
        with _staging(path) as staging:
            staging.chmod(0o700)
            (staging / TABLES_DIR).mkdir(mode=0o700)
            manifest = _write_tables(database_url, staging, timeout=timeout, progress=progress)
            (staging / MANIFEST).write_text(manifest.to_json())
            (staging / MANIFEST).chmod(0o600)
            _swap_into_place(staging, path)
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {path}: {exc.strerror or exc}") from None
    return manifest


def _write_tables(
    database_url: str, folder: Path, *, timeout: float, progress: Progress | None
) -> Manifest:
    with connect(database_url, timeout=timeout) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
        conn.read_only = True
        _session(conn)
        migrations = _migrations(conn)
        tables = _parents_first(conn, _tables(conn))
        saved = []
        for done, table in enumerate(tables):
            if progress is not None:
                progress(done, len(tables), table)
            columns = _columns(conn, table)
            file = f"{TABLES_DIR}/{table}.csv.gz"
            target = folder / file
            rows = _copy_out(conn, table, columns, target)
            target.chmod(0o600)
            saved.append(TableBackup(table, file, columns, rows, _sha256(target)))
        sequences = _sequences(conn)
        server_version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        conn.rollback()
    if progress is not None:
        progress(len(tables), len(tables), "done")
    return Manifest(
        format=BACKUP_FORMAT,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        server_version=server_version,
        migrations=migrations,
        tables=saved,
        sequences=sequences,
    )


# ---------------------------------------------------------------- restore


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup folder `path`; BackupError if it is not a backup."""
    path = path.expanduser()
    if not path.exists():
        raise BackupError(f"no backup at {path}")
    if not path.is_dir():
        raise BackupError(f"{path} is not a backup folder")
    try:
        manifest = Manifest.from_json((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} is not a RegimeLab backup (no {MANIFEST})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path / MANIFEST} is unreadable: {exc}") from None
    if manifest.format != BACKUP_FORMAT:
        raise BackupError(
            f"{path} is a {manifest.format!r} backup; this RegimeLab reads {BACKUP_FORMAT!r}"
        )
    return manifest


def _verify_files(path: Path, manifest: Manifest) -> None:
    for table in manifest.tables:
        file = path / table.file
        if not file.resolve().is_relative_to(path.resolve()):
            raise BackupError(f"the manifest names a file outside the backup: {table.file}")
        if not file.is_file():
            raise BackupError(f"the backup is incomplete: {table.file} is missing")
        if _sha256(file) != table.sha256:
            raise BackupError(f"the backup is damaged: {table.file} does not match its checksum")


def _check_schema(conn: psycopg.Connection, manifest: Manifest, tables: list[str]) -> None:
    applied = _migrations(conn)
    if applied != manifest.migrations:
        newest = manifest.migrations[-1] if manifest.migrations else "none"
        here = applied[-1] if applied else "none"
        raise BackupError(
            f"the backup's schema version ({newest}, {len(manifest.migrations)} migrations) "
            f"differs from the database's ({here}, {len(applied)}); restore into a database "
            "migrated with the RegimeLab version that took the backup"
        )
    missing = sorted({t.name for t in manifest.tables} - set(tables))
    if missing:
        raise BackupError(f"the database has no table {missing[0]}")
    for table in manifest.tables:
        if _columns(conn, table.name) != table.columns:
            raise BackupError(f"table {table.name} has other columns than in the backup")


def _lock_and_check_empty(conn: psycopg.Connection, tables: list[str], replace: bool) -> None:
    conn.execute(
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(map(sql.Identifier, tables))
        )
    )
    if replace:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )
        return
    holding = [
        table
        for table in tables
        if conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone()[0]  # type: ignore[index]
    ]
    if holding:
        raise BackupError(
            f"the database already holds data (in {', '.join(holding[:5])}"
            f"{', ...' if len(holding) > 5 else ''}); restore into an empty database, "
            "or pass --replace to delete its data first"
        )


def _copy_in(conn: psycopg.Connection, table: TableBackup, file: Path) -> int:
    query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER MATCH)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns))
    )
    with gzip.open(file, "rb") as source, conn.cursor() as cursor:
        with cursor.copy(query) as copy:
            while chunk := source.read(_CHUNK):
                copy.write(chunk)
        return cursor.rowcount


def restore_database(
    database_url: str,
    path: Path,
    *,
    replace: bool = False,
    timeout: float = 5.0,
    progress: Progress | None = None,
) -> Manifest:
    """Load the backup folder `path` into the database in one transaction; its manifest.

    The database must be migrated to the backup's schema version and hold no rows, unless
    `replace` (its rows are deleted first, in the same transaction).
    """
    path = path.expanduser()
    manifest = read_manifest(path)
    _verify_files(path, manifest)
    with connect(database_url, timeout=timeout) as conn:
        _session(conn)
        tables = _tables(conn)
        _check_schema(conn, manifest, tables)
        _lock_and_check_empty(conn, tables, replace)
        by_name = {t.name: t for t in manifest.tables}
        ordered = [t for t in _parents_first(conn, tables) if t in by_name]
        for done, name in enumerate(ordered):
            table = by_name[name]
            if progress is not None:
                progress(done, len(ordered), f"{name} ({table.rows} rows)")
            try:
                rows = _copy_in(conn, table, path / table.file)
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()
                raise BackupError(
                    f"restoring {name} failed, nothing was restored: "
                    f"{first[0] if first else type(exc).__name__}"
                ) from None
            except (OSError, EOFError) as exc:
                raise BackupError(f"cannot read {table.file}: {exc}") from None
            if rows != table.rows:
                raise BackupError(
                    f"{table.file} holds {rows} rows, the manifest says {table.rows}; "
                    "nothing was restored"
                )
        for sequence in manifest.sequences:
            conn.execute(
                "SELECT setval(%s::regclass, %s, %s)",
                (
                    sql.Identifier(sequence.name).as_string(conn),
                    sequence.last_value,
                    sequence.is_called,
                ),
            )
        conn.commit()
    if progress is not None:
        progress(len(ordered), len(ordered), "done")
    return manifest


def stored_symbols(database_url: str, *, timeout: float = 5.0) -> set[str]:
    """The symbols of the stored instruments (whose cached reads a restore invalidates)."""
    with connect(database_url, timeout=timeout) as conn:
        return {r[0] for r in conn.execute("SELECT symbol FROM instruments").fetchall()}
