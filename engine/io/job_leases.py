"""Job-run leases: a replica holds a Postgres advisory lock per job it runs.

`job_runs` says what should be running; the lease says who is alive to run it. A replica
inserts each run and takes its lock (session level, on the replica's lease connection) in
one transaction, so no other session ever sees a queued or running row without its lock.
When the replica dies, Postgres ends its session and frees the locks; `reap_orphans`
then finds runs still marked queued or running whose lock anybody can take, and marks
them failed. Nothing is guessed from timestamps, so a long job is never reaped while its
replica lives, and a dead one's runs are failed as soon as any replica looks.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["LEASE_SPACE", "ORPHAN_ERROR", "acquire", "insert_leased", "reap_orphans", "release"]

LEASE_SPACE: Final = 0x6A6F6273  # "jobs": the first key of the two-key advisory locks
ORPHAN_ERROR: Final = (
    "the process running it stopped (killed or crashed) before it finished; submit it again"
)
_KEY: Final = "mod(%s::bigint, 2147483647)::int"


async def insert_leased(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    slot_key: str | None,
    trigger: str,
    params: Any,
) -> int | None:
    """Insert a queued run holding its lease; its id, or None if `slot_key` already ran.

    `conn` is the replica's lease connection (autocommit); the row and the lock appear
    together, in one transaction.
    """
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO job_runs (job_name, slot_key, trigger, status, params) "
            "VALUES (%s, %s, %s, 'queued', %s) ON CONFLICT (slot_key) DO NOTHING RETURNING id",
            (name, slot_key, trigger, Jsonb(params)),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        job_id = int(row[0])
        await acquire(conn, job_id)
    return job_id


async def acquire(conn: psycopg.AsyncConnection[Any], job_id: int) -> None:
    """Hold the lease of `job_id` on `conn` (again, after a reconnect)."""
    await conn.execute(f"SELECT pg_advisory_lock({LEASE_SPACE}, {_KEY})", (job_id,))


async def release(conn: psycopg.AsyncConnection[Any], job_id: int) -> None:
    """Give the lease of a finished run back."""
    await conn.execute(f"SELECT pg_advisory_unlock({LEASE_SPACE}, {_KEY})", (job_id,))


def reap_orphans(conn: psycopg.Connection) -> list[int]:
    """Mark failed every queued or running run whose lease nobody holds; their ids.

    A transaction-level try-lock succeeds only where no session holds the run's lease,
    and is released when this statement's transaction ends.
    """
    with conn.transaction():
        rows = conn.execute(
            "UPDATE job_runs SET status = 'failed', error = %s, finished_at = now() "
            "WHERE status IN ('queued', 'running') "
            f"AND pg_try_advisory_xact_lock({LEASE_SPACE}, mod(id, 2147483647)::int) "
            "RETURNING id",
            (ORPHAN_ERROR,),
        ).fetchall()
    return sorted(int(row[0]) for row in rows)
