"""PostgreSQL access: connections, pools and the one-line errors users see when it fails."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from engine.errors import ConfigError, DatabaseUnavailableError
from engine.settings import redact_url

__all__ = [
    "async_pool",
    "check_database",
    "connect",
    "database_name",
    "ensure_database",
    "fetch_page",
    "sync_pool",
    "validate_database_url",
    "vector_literal",
    "with_database",
]


def validate_database_url(url: str) -> dict[str, Any]:
    """The URL's connection parameters; a ConfigError if it is not a PostgreSQL URL."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"DATABASE_URL must start with postgresql:// (got {redact_url(url)!r})")
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"DATABASE_URL is not a valid PostgreSQL URL: {_first_line(exc)}"
        ) from None
    port = str(params.get("port") or "5432")
    if not all(part.isdigit() for part in port.split(",")):
        raise ConfigError(f"DATABASE_URL is not a valid PostgreSQL URL: bad port {port!r}")
    return params


def database_name(url: str) -> str:
    """The database a URL points at (libpq's default: the user name)."""
    params = validate_database_url(url)
    return str(params.get("dbname") or params.get("user") or "postgres")


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    validate_database_url(url)
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(dbname)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailableError:
    return DatabaseUnavailableError(
        f"cannot connect to PostgreSQL at {redact_url(url)}: {_first_line(exc)}"
    )


def connect(url: str, *, timeout: float = 5.0, autocommit: bool = False) -> psycopg.Connection:
    """A new connection, or a DatabaseUnavailableError saying why not."""
    validate_database_url(url)
    try:
        return psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise _unavailable(url, exc) from None


def check_database(url: str, *, timeout: float = 5.0) -> float:
    """Round-trip latency of `SELECT 1` in milliseconds; raises if the server can't be used."""
    with connect(url, timeout=timeout, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("SELECT 1")
        return (time.perf_counter() - started) * 1000


def ensure_database(url: str, *, timeout: float = 5.0) -> bool:
    """Create the URL's database if missing (connecting to `postgres`); True if created."""
    name = database_name(url)
    with connect(with_database(url, "postgres"), timeout=timeout, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # lost a race: fine
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return True


def sync_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0, wait: bool = True
) -> ConnectionPool:
    """An opened connection pool for engine calls; fails fast with a clear error.

    With `wait=False` it connects in the background (see :func:`async_pool`).
    """
    validate_database_url(url)
    pool: ConnectionPool = ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"connect_timeout": max(1, round(timeout))},
        check=ConnectionPool.check_connection,
        timeout=timeout,  # how long a caller waits for a connection before an error
        name="regimelab",
    )
    try:
        pool.open(wait=wait, timeout=timeout)
    except Exception as exc:
        pool.close()
        raise _unavailable(url, exc) from None
    return pool


async def async_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 5.0, wait: bool = True
) -> AsyncConnectionPool:
    """An opened async pool for the API; reconnects on its own after a server restart.

    With `wait=False` it opens in the background, so a service can start while its
    database is still coming up and report it as unavailable meanwhile.
    """
    validate_database_url(url)
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"connect_timeout": max(1, round(timeout))},
        check=AsyncConnectionPool.check_connection,
        timeout=timeout,  # how long a caller waits for a connection before an error
        name="regimelab-api",
    )
    try:
        await pool.open(wait=wait, timeout=timeout)
    except Exception as exc:
        await pool.close()
        raise _unavailable(url, exc) from None
    return pool


_MAX_OFFSET: Final = 2**62  # Postgres OFFSET is a bigint; anything past this is an empty page


def fetch_page(
    conn: psycopg.Connection,
    table: str,
    columns: str,
    where: sql.Composable,
    args: Sequence[object],
    *,
    order_by: str,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of `table` rows matching `where` (as dicts), and how many match in all."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
                sql.SQL(columns), sql.Identifier(table), where, sql.SQL(order_by)
            ),
            [*args, limit, min(offset, _MAX_OFFSET)],
        )
        rows = cur.fetchall()
    total = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(sql.Identifier(table), where), args
    ).fetchone()
    return rows, int(total[0]) if total else 0


def vector_literal(values: Iterable[float]) -> str:
    """A pgvector literal, '[0.5,-1.25,...]' (cast it with ::vector in the query)."""
    return "[" + ",".join(repr(float(x)) for x in values) + "]"
