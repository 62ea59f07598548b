"""Response types of the system routes (health)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["ComponentHealth", "Health", "Readiness"]


class ComponentHealth(msgspec.Struct, kw_only=True):
    """Reachability of one backing service."""

    status: Literal["ok", "error"]
    detail: str | None = None
    latency_ms: float | None = None


class Health(msgspec.Struct, kw_only=True):
    """Liveness of the API with the state of its database and cache."""

    status: Literal["ok", "degraded"]
    version: str
    database: ComponentHealth
    cache: ComponentHealth


class Readiness(msgspec.Struct, kw_only=True):
    """Whether this replica should receive traffic, and its role in scheduling."""

    ready: bool
    database: ComponentHealth
    cache: ComponentHealth
    scheduler: Literal["leader", "follower", "disabled"]
