"""Where Postgres and Redis are: the configured URLs, or embedded servers started on demand."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from engine.io.cache import check_cache
from engine.io.db import check_database
from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey, state_lock
from engine.settings import Settings

__all__ = ["Endpoints", "Services"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The URLs every part of RegimeLab connects to, and which of them are embedded."""

    database_url: str
    redis_url: str | None
    embedded_database: bool
    embedded_cache: bool


class Services(contextlib.AbstractContextManager["Services"]):
    """Resolve (and, when needed, start) Postgres and Redis; stop what was started on exit.

    The code path is the same either way: only the URL differs. On entry both servers are
    checked, so a bad `DATABASE_URL` or an unreachable Redis fails here with one line.
    """

    def __init__(
        self, settings: Settings, *, cache: bool = True, durable: bool = True, check: bool = True
    ) -> None:
        """`cache=False` for commands that only need the database (no Redis is touched)."""
        self.settings = settings
        self.check = check
        self.cache = cache
        state = settings.state_path
        self._postgres = (
            None if settings.database_url else EmbeddedPostgres(state / "postgres", durable=durable)
        )
        self._valkey = (
            EmbeddedValkey(state / "valkey") if cache and not settings.redis_url else None
        )
        self.endpoints: Endpoints | None = None

    @property
    def state_dir(self) -> Path:
        """The state folder embedded servers live in."""
        return self.settings.state_path

    def __enter__(self) -> Services:
        try:
            self.endpoints = self._resolve()
            if self.check:
                timeout = self.settings.connect_timeout
                check_database(self.endpoints.database_url, timeout=timeout)
                if self.endpoints.redis_url is not None:
                    check_cache(self.endpoints.redis_url, timeout=timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _resolve(self) -> Endpoints:
        database_url = self.settings.database_url
        redis_url = self.settings.redis_url if self.cache else None
        if self._postgres is not None or self._valkey is not None:
            with state_lock(self.state_dir):
                if self._postgres is not None:
                    database_url = self._postgres.start_or_attach()
                if self._valkey is not None:
                    redis_url = self._valkey.start_or_attach()
        assert database_url is not None
        return Endpoints(
            database_url=database_url,
            redis_url=redis_url,
            embedded_database=self._postgres is not None,
            embedded_cache=self._valkey is not None,
        )

    def close(self) -> None:
        """Stop the embedded servers this process started (or adopted)."""
        if self._postgres is None and self._valkey is None:
            return
        with state_lock(self.state_dir):
            for server in (self._valkey, self._postgres):
                if server is None:
                    continue
                try:
                    server.stop()
                except Exception:
                    log.exception("could not stop %s", type(server).__name__)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
