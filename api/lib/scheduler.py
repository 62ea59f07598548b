"""Scheduled jobs with one leader across replicas (being built: see the scheduler helper)."""

from __future__ import annotations

from typing import Literal

from psycopg_pool import AsyncConnectionPool

from api.lib.jobs import JobRunner
from engine.settings import Settings

__all__ = ["Scheduler"]


class Scheduler:
    """Interface the app relies on: start, stop, and whether this replica leads."""

    def __init__(
        self, settings: Settings, database_url: str, runner: JobRunner, pool: AsyncConnectionPool
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.runner = runner
        self.pool = pool
        self.is_leader = False

    @property
    def state(self) -> Literal["leader", "follower", "disabled"]:
        """This replica's role."""
        if not self.settings.scheduler:
            return "disabled"
        return "leader" if self.is_leader else "follower"

    async def start(self) -> None:
        """Begin competing for leadership (a background task)."""

    async def stop(self) -> None:
        """Stop scheduling and release leadership."""
