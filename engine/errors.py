"""Errors RegimeLab raises on purpose: each carries a one-line message fit for a user."""

from __future__ import annotations

__all__ = [
    "CacheUnavailableError",
    "ConfigError",
    "DatabaseUnavailableError",
    "EmbeddedServiceError",
    "MigrationError",
    "RegimeLabError",
]


class RegimeLabError(Exception):
    """Base class: `str(error)` is a complete, user-facing sentence."""


class ConfigError(RegimeLabError):
    """A setting is missing or malformed."""


class DatabaseUnavailableError(RegimeLabError):
    """PostgreSQL cannot be reached or refused the connection."""


class CacheUnavailableError(RegimeLabError):
    """Redis cannot be reached."""


class EmbeddedServiceError(RegimeLabError):
    """An embedded server (PostgreSQL or Valkey) failed to start or stop."""


class MigrationError(RegimeLabError):
    """A migration failed, or an applied migration no longer matches its file."""
