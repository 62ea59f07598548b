"""Request, response and job-parameter types of the ingest and provider routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from api.domain.market.schemas import SYMBOL_PATTERN, TIME_PATTERN
from engine.providers.standard.bars import Interval

__all__ = [
    "MAX_SYMBOLS",
    "IngestCreate",
    "IngestParams",
    "IngestRun",
    "ProviderCredential",
    "ProviderDataset",
    "ProviderInfo",
    "ProviderTtl",
    "ProviderTtlUpdate",
    "RunStatus",
    "TtlSource",
    "WatchlistParams",
]

MAX_SYMBOLS: Final = 10_000  # per API request; larger loads belong to the CLI

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TtlSource = Literal["table", "settings", "default"]

Symbol = Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
TimeText = Annotated[
    str,
    msgspec.Meta(
        pattern=TIME_PATTERN,
        description="YYYY-MM-DD or an ISO 8601 datetime (UTC if no offset)",
        examples=["2020-01-01"],
    ),
]


class IngestCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to load: a provider, its symbols, a range and provider options."""

    provider: Annotated[str, msgspec.Meta(max_length=64, examples=["sample"])]
    symbols: (
        Annotated[str, msgspec.Meta(max_length=200_000, examples=["SPX,IXIC"])]
        | Annotated[list[Symbol], msgspec.Meta(max_length=MAX_SYMBOLS)]
        | None
    ) = None
    """Comma-separated or a list (synthetic: a count, e.g. "50"; files: all if omitted)."""
    start: TimeText | None = None
    end: TimeText | None = None
    interval: Interval = "1d"
    full: bool = False
    """Refetch everything, not only what is missing since each symbol's last bar."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Provider parameters (e.g. synthetic: seed, n_states, n_days; files: path, mapping)."""


class IngestParams(msgspec.Struct, kw_only=True):
    """Parameters of the `ingest` job: a checked request with its symbols resolved."""

    provider: str
    symbols: list[str]
    start: datetime | None = None
    end: datetime | None = None
    interval: str = "1d"
    full: bool = False
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class WatchlistParams(msgspec.Struct, kw_only=True):
    """Parameters of the `ingest.watchlist` job (default: the configured watchlist)."""

    symbols: list[str] | None = None
    interval: str = "1d"


class IngestRun(msgspec.Struct, kw_only=True):
    """One ingest run: what was asked, what was loaded and rejected, and how it ended."""

    id: int
    provider: str
    dataset: str
    interval: str
    symbols: list[str]
    start_date: datetime | None
    end_date: datetime | None
    full_refresh: bool
    status: RunStatus
    rows_fetched: int
    rows_upserted: int
    rows_rejected: int
    quality: dict[str, Any]
    """Counts per data-quality issue, calendar gaps and provider cache outcomes."""
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class ProviderCredential(msgspec.Struct, kw_only=True):
    """A setting a provider needs, and whether it is set (its value is never shown)."""

    name: str
    configured: bool


class ProviderDataset(msgspec.Struct, kw_only=True):
    """One dataset of a provider."""

    dataset: str
    intervals: list[str]
    default_ttl_seconds: int
    max_symbols: int | None
    """Symbols per provider call (null: a whole request in one call)."""


class ProviderInfo(msgspec.Struct, kw_only=True):
    """A market-data provider: its datasets and whether its credentials are configured."""

    name: str
    description: str
    network: bool
    """Whether it calls the internet."""
    calendar: str | None
    credentials: list[ProviderCredential]
    credentials_configured: bool
    datasets: list[ProviderDataset]


class ProviderTtl(msgspec.Struct, kw_only=True):
    """The cache TTL ingest uses for one provider dataset, and where it comes from."""

    provider: str
    dataset: str
    ttl_seconds: int
    source: TtlSource
    """table (set through the API), settings (REGIMELAB_PROVIDER_TTLS) or default."""
    default_ttl_seconds: int
    updated_at: datetime | None = None


class ProviderTtlUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new TTL (0 = always call the provider, then store)."""

    ttl_seconds: Annotated[int, msgspec.Meta(ge=0, le=2_147_483_647)]
