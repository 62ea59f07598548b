"""Response types of the analog routes ("periods like today") and their build job."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from api.domain.regimes.schemas import SYMBOL_PATTERN

__all__ = [
    "Analog",
    "AnalogPath",
    "AnalogSearchResult",
    "BuildParams",
    "FanPoint",
    "HorizonOutcome",
    "PathPoint",
    "StateVersion",
    "StatesSummary",
]


class Analog(msgspec.Struct, kw_only=True):
    """One earlier market state like the query's, and what followed it."""

    rank: int
    symbol: str
    ts: datetime
    """the analog's bar: its trailing window ended here"""
    distance: float
    """Euclidean distance between the two states (0: identical)"""
    regime: int | None
    """the regime model's filtered regime on that bar, when a run covers it"""
    forward_returns: dict[str, float | None]
    """simple return over the next h bars, keyed by h; null when not known by the query date"""


class HorizonOutcome(msgspec.Struct, kw_only=True):
    """The distribution of the analogs' forward returns over one horizon."""

    horizon: int
    count: int
    mean: float | None
    median: float | None
    q10: float | None
    q25: float | None
    q75: float | None
    q90: float | None
    share_positive: float | None


class PathPoint(msgspec.Struct, kw_only=True):
    offset: int
    """bars from the state's date (negative: its trailing window)"""
    value: float
    """close there over close on the state's date, minus 1"""


class AnalogPath(msgspec.Struct, kw_only=True):
    """An analog's price path around its date, for drawing over today's."""

    symbol: str
    ts: datetime
    values: list[float | None]
    """one value per entry of the result's `offsets` (null where no bar is known)"""


class FanPoint(msgspec.Struct, kw_only=True):
    """Quantiles of the analogs' paths `offset` bars after their dates."""

    offset: int
    count: int
    q10: float | None
    q25: float | None
    median: float | None
    q75: float | None
    q90: float | None


class AnalogSearchResult(msgspec.Struct, kw_only=True):
    """The nearest earlier market states to a symbol's state on a date, one per episode."""

    symbol: str
    ts: datetime
    """the query bar: the symbol's last bar on or before the requested date"""
    version: str
    """the embedding version searched"""
    window: int
    cutoff: datetime
    """no analog is later than this (the bar before the query's window, or earlier)"""
    method: Literal["hnsw", "exact"]
    ef_search: int | None
    horizons: list[int]
    analogs: list[Analog]
    distribution: list[HorizonOutcome]
    offsets: list[int]
    """the offsets every path's `values` follow: -window .. the longest horizon"""
    query_path: list[PathPoint]
    paths: list[AnalogPath]
    fan: list[FanPoint]


class StateVersion(msgspec.Struct, kw_only=True):
    """What is stored of one embedding version."""

    version: str
    symbols: int
    states: int
    first: datetime
    last: datetime


class StatesSummary(msgspec.Struct, kw_only=True):
    """The stored market states and the version searches use by default."""

    default_version: str
    window: int
    index: bool
    """whether the HNSW index exists (without it searches scan every state)"""
    versions: list[StateVersion]


class BuildParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Parameters of the `analogs.build` job."""

    symbols: (
        Annotated[
            list[Annotated[str, Meta(pattern=SYMBOL_PATTERN)]],
            Meta(min_length=1, max_length=10_000),
        ]
        | None
    ) = None
    """symbols to embed (default: every symbol with daily bars)"""
    full: bool = False
    """recompute every state instead of only the new bars' (after a regime refit)"""
