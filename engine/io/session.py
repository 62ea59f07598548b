"""A research session: the Postgres and Redis a notebook works against, kept open for it.

The notebooks reach the database the way the command line does: `DATABASE_URL` and
`REDIS_URL` when they are set, else the embedded servers of the state folder (started, or
attached to when `regimelab up` already runs them). An embedded database is migrated on
the spot; a configured one must already be current (`regimelab migrate`), so a notebook
never changes an operator's schema. The session stays open for the life of the process
(a marimo kernel, a script run) and stops the servers it started when the process exits
(a watcher does it when a marimo kernel ends without running its exit handlers).
"""

from __future__ import annotations

import atexit
import os
import threading
from dataclasses import dataclass

import psycopg

from engine.errors import ConfigError
from engine.io.db import connect
from engine.io.migrate import apply_migrations, status
from engine.io.reaper import spawn_reaper
from engine.io.services import Endpoints, Services
from engine.settings import Settings, get_settings, redact_url

__all__ = ["ResearchSession", "close_sessions", "open_session"]


@dataclass(frozen=True, slots=True)
class ResearchSession:
    """Settings and the resolved server URLs of a notebook."""

    settings: Settings
    endpoints: Endpoints

    @property
    def database_url(self) -> str:
        """URL of the database every read and write goes to."""
        return self.endpoints.database_url

    @property
    def redis_url(self) -> str | None:
        """URL of the provider cache (None: no cache, providers are called directly)."""
        return self.endpoints.redis_url

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A new connection to the session's database (use it in a `with` block)."""
        return connect(
            self.database_url, timeout=self.settings.connect_timeout, autocommit=autocommit
        )

    def describe(self) -> str:
        """Where the data lives, in one line with any password masked."""
        database = (
            "embedded PostgreSQL"
            if self.endpoints.embedded_database
            else f"DATABASE_URL {redact_url(self.database_url)}"
        )
        if self.redis_url is None:
            cache = "no Redis cache"
        elif self.endpoints.embedded_cache:
            cache = "embedded Redis (Valkey)"
        else:
            cache = f"REDIS_URL {redact_url(self.redis_url)}"
        return f"{database}, {cache}"


_sessions: dict[tuple[str | None, str | None, str], tuple[ResearchSession, Services]] = {}
_guard = threading.Lock()


def _current_schema(settings: Settings, endpoints: Endpoints) -> None:
    if endpoints.embedded_database:
        apply_migrations(
            endpoints.database_url, settings.migrations_dir, timeout=settings.connect_timeout
        )
        return
    pending = [
        name
        for name, state in status(
            endpoints.database_url, settings.migrations_dir, timeout=settings.connect_timeout
        ).items()
        if state != "applied"
    ]
    if pending:
        raise ConfigError(
            f"the database schema is not up to date ({', '.join(pending)}); "
            "run `regimelab migrate` first"
        )


def open_session(settings: Settings | None = None) -> ResearchSession:
    """The process's session for `settings` (default: the environment's): servers resolved,
    embedded ones started or attached, the schema current. Opened once per process and
    configuration; embedded servers this process started stop when it exits."""
    settings = settings or get_settings()
    key = (settings.database_url, settings.redis_url, str(settings.state_path))
    with _guard:
        opened = _sessions.get(key)
        if opened is not None:
            return opened[0]
        services = Services(settings).__enter__()
        try:
            endpoints = services.endpoints
            assert endpoints is not None
            _current_schema(settings, endpoints)
        except BaseException:
            services.close()
            raise
        atexit.register(services.close)
        if endpoints.embedded_database or endpoints.embedded_cache:
            spawn_reaper(os.getpid(), settings.state_path)  # in case atexit never runs
        session = ResearchSession(settings=settings, endpoints=endpoints)
        _sessions[key] = (session, services)
        return session


def close_sessions() -> None:
    """Forget every session of this process and stop the embedded servers they started
    (what happens at exit anyway; for tests and long-lived hosts)."""
    with _guard:
        opened = list(_sessions.values())
        _sessions.clear()
    for _, services in opened:
        atexit.unregister(services.close)
        services.close()
