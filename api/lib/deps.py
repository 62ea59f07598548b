"""What handlers receive by name: the database, the response cache, the job runner, settings.

Reads reuse the engine's synchronous `engine.io` functions; :class:`Database` runs them on
a pooled connection in a worker thread so the event loop never waits on Postgres.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from anyio import to_thread
from litestar.datastructures import State
from litestar.di import Provide
from psycopg_pool import ConnectionPool

from api.lib.cache import ResponseCache
from api.lib.jobs import JobRunner
from api.lib.pagination import pagination
from engine.settings import Settings

__all__ = ["DEPENDENCIES", "Database"]

T = TypeVar("T")


class Database:
    """The engine's synchronous reads and writes, run off the event loop."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    async def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """`work(conn)` on a pooled connection in a thread; commits if it returns."""

        def call() -> T:
            with self.pool.connection() as conn:
                return work(conn)

        return await to_thread.run_sync(call)


def _database(state: State) -> Database:
    db: Database = state.database
    return db


def _cache(state: State) -> ResponseCache:
    cache: ResponseCache = state.response_cache
    return cache


def _jobs(state: State) -> JobRunner:
    runner: JobRunner = state.job_runner
    return runner


def _settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES: dict[str, Any] = {
    "database": Provide(_database, sync_to_thread=False),
    "cache": Provide(_cache, sync_to_thread=False),
    "jobs": Provide(_jobs, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
    "page": Provide(pagination, sync_to_thread=False),
}
