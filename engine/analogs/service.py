"""Build market states from stored bars and find "periods like today" with what followed.

`build_states` embeds every bar of some symbols (only bars newer than the stored ones
unless `full`), `find_analogs` answers one query: the nearest earlier states, distinct
episodes only, with forward returns, paths and their distribution. Both are what the CLI,
the API jobs and the notebooks call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import numpy as np
import polars as pl
import psycopg

from engine.analogs.embedding import EmbeddingSpec, state_vectors
from engine.analogs.outcomes import (
    OFFSET,
    aligned_paths,
    distinct_analogs,
    fan,
    forward_returns,
    outcome_distribution,
    price_paths,
)
from engine.errors import RegimeLabError
from engine.io import analogs as store
from engine.io.bars import instrument_ids, load_bars
from engine.io.regimes import load_labels
from engine.schema import CLOSE, SYMBOL, TS
from engine.settings import Settings

__all__ = [
    "DEFAULT_HORIZONS",
    "MAX_HORIZONS",
    "MAX_K",
    "AnalogError",
    "AnalogSearch",
    "BuildReport",
    "UnknownSymbolError",
    "build_states",
    "default_spec",
    "find_analogs",
    "parse_horizons",
]

DEFAULT_HORIZONS: Final = (5, 21, 63)
MAX_K: Final = 1000
MAX_HORIZON: Final = 252
MAX_HORIZONS: Final = 10
Progress = Callable[[int, int, str], None]
Method = Literal["hnsw", "exact"]
_MAX_POOL: Final = 20_000  # candidates fetched at most, when episodes repeat a lot
_CALENDAR_SLACK: Final = 1.6  # calendar days per trading bar, with room for holidays


class AnalogError(RegimeLabError):
    """A query the analog search cannot answer; `field` names the parameter at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownSymbolError(AnalogError):
    """The symbol has no bars."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What `build_states` wrote."""

    version: str
    symbols: int
    states: int
    seconds: float


def _ids(conn: psycopg.Connection, symbols: Sequence[str], field: str) -> dict[str, int]:
    try:
        return instrument_ids(conn, symbols)
    except ValueError as exc:  # names the unknown symbols
        raise AnalogError(str(exc), field) from None


def _calendar_days(bars: int) -> timedelta:
    return timedelta(days=math.ceil(bars * _CALENDAR_SLACK) + 7)


def default_spec(settings: Settings) -> EmbeddingSpec:
    """The embedding the scheduler builds and searches use: the configured window, with the
    configured regime model's probabilities."""
    return EmbeddingSpec(window=settings.analog_window, regime_model=settings.regime_model)


def build_states(
    conn: psycopg.Connection,
    symbols: Sequence[str] | None,
    spec: EmbeddingSpec,
    *,
    full: bool = False,
    progress: Progress | None = None,
    batch: int = 200,
) -> BuildReport:
    """Embed the stored daily bars of `symbols` (None: every symbol with daily bars) as
    `spec.version` states and upsert them.

    Incremental unless `full`: each symbol's bars are read from a look-back before its
    newest stored state, and only newer states are written. Symbols go in batches of
    `batch`, each batch one transaction. A full build drops the HNSW index first and builds
    it again at the end (much faster than updating it row by row; searches fall back to
    exact scans meanwhile).
    """
    import time

    started = time.perf_counter()
    version = spec.version
    if symbols is None:
        symbols = store.symbols_with_bars(conn)
    ids = _ids(conn, symbols, "symbols") if symbols else {}
    last = {} if full else store.last_state_times(conn, list(ids), version)
    ordered = sorted(ids)
    written = 0
    if full:
        store.drop_index(conn)
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        if progress is not None:
            progress(start, len(ordered), f"embedding {chunk[0]}…")
        newest = [last[s] for s in chunk if s in last]
        since = None
        if len(newest) == len(chunk):  # every symbol has states: read just the tail
            since = min(newest) - _calendar_days(spec.lookback + spec.window)
        bars = load_bars(conn, chunk, start=since)
        regimes = None
        if spec.regime_model is not None and spec.weight("regime") > 0:
            regimes = load_labels(conn, spec.regime_model, chunk).select(SYMBOL, TS, "probs")
        states = state_vectors(bars, spec, regimes)
        if not full and last:
            cut = pl.DataFrame(
                {SYMBOL: list(last), "_last": list(last.values())},
                schema={SYMBOL: pl.String(), "_last": pl.Datetime("us", "UTC")},
            )
            states = (
                states.join(cut, on=SYMBOL, how="left")
                .filter(pl.col("_last").is_null() | (pl.col(TS) > pl.col("_last")))
                .drop("_last")
            )
        written += store.write_states(conn, states, ids, version)
    if progress is not None:
        progress(len(ordered), len(ordered), f"{len(ordered)} symbols")
    if not store.has_index(conn):
        store.create_index(conn)
    return BuildReport(version, len(ordered), written, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class AnalogSearch:
    """The analogs of one market state and what happened after them."""

    symbol: str
    ts: datetime
    """the query bar (the last bar on or before the requested date)"""
    version: str
    window: int
    cutoff: datetime
    """no analog is later than this: the bar before the query's window, or earlier"""
    method: Method
    ef_search: int | None
    horizons: tuple[int, ...]
    analogs: pl.DataFrame
    """rank, symbol, ts, distance, regime, ret_<h> per horizon"""
    distribution: pl.DataFrame
    """horizon, count, mean, median, q10, q25, q75, q90, share_positive"""
    paths: pl.DataFrame
    """symbol, ts (the analog), offset, value: each analog's path from -window to the
    longest horizon, as the return from its own date"""
    query_path: pl.DataFrame
    """offset, value: the query's own path over its window"""
    fan: pl.DataFrame
    """offset, count, q10, q25, median, q75, q90 of the analogs' paths"""

    @property
    def offsets(self) -> list[int]:
        """Bars from each analog's date its path covers: -window .. the longest horizon."""
        return list(range(-self.window, max(self.horizons) + 1))

    def aligned_paths(self) -> pl.DataFrame:
        """symbol, ts, values: each analog's path as one list along `offsets`, ranked."""
        return aligned_paths(self.paths, self.analogs, self.offsets)


def parse_horizons(text: str) -> tuple[int, ...]:
    """Comma-separated forward horizons in bars ("5,21,63"), sorted and de-duplicated; an
    AnalogError naming `horizons` when malformed (ranges are checked by the search)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise AnalogError("horizons must be comma-separated whole numbers of bars", "horizons")
    if len(parts) > MAX_HORIZONS:
        raise AnalogError(f"at most {MAX_HORIZONS} horizons", "horizons")
    return tuple(sorted({int(p) for p in parts}))


def _check(k: int, horizons: Sequence[int], exclude_recent_days: int) -> tuple[int, ...]:
    if not 1 <= k <= MAX_K:
        raise AnalogError(f"k must be between 1 and {MAX_K}", "k")
    if not horizons:
        raise AnalogError("give at least one horizon", "horizons")
    bad = [h for h in horizons if not 1 <= h <= MAX_HORIZON]
    if bad:
        raise AnalogError(f"horizons must be between 1 and {MAX_HORIZON} bars", "horizons")
    if exclude_recent_days < 0:
        raise AnalogError("exclude_recent_days must be >= 0", "exclude_recent_days")
    return tuple(sorted(set(horizons)))


def _query_bars(
    conn: psycopg.Connection, symbol: str, date: datetime | None, spec: EmbeddingSpec
) -> pl.DataFrame:
    """The query symbol's bars up to `date`, enough for its state and window."""
    bars = load_bars(conn, [symbol], end=date)
    if bars.is_empty():
        if load_bars(conn, [symbol]).is_empty():
            raise UnknownSymbolError(f"no bars stored for {symbol!r}", "symbol")
        raise AnalogError(f"{symbol} has no bars on or before {date:%Y-%m-%d}", "date")
    if bars.height <= spec.lookback:
        raise AnalogError(
            f"{symbol} needs {spec.lookback} bars of history before the query date; it has "
            f"{bars.height - 1} before {bars[TS][-1]:%Y-%m-%d}",
            "date",
        )
    return bars


def find_analogs(
    conn: psycopg.Connection,
    symbol: str,
    *,
    date: datetime | None = None,
    k: int = 10,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    universe: Sequence[str] | None = None,
    exclude_recent_days: int = 0,
    spec: EmbeddingSpec | None = None,
    method: Method = "hnsw",
    ef_search: int = 100,
    min_gap_days: int | None = None,
) -> AnalogSearch:
    """The `k` nearest earlier market states to `symbol`'s state on `date` (default: its
    latest bar), one per episode, with what happened next.

    Causal: every analog ends before the first bar of the query's window (and
    `exclude_recent_days` before the query date), so no analog overlaps the query's window
    or lies in its future, and forward returns use bars up to the query date only. The
    query's state is computed from its bars, so it needs no stored state of its own.
    `universe` limits the analogs to some symbols (default: every symbol with states).
    """
    spec = spec or EmbeddingSpec()
    horizon_list = _check(k, horizons, exclude_recent_days)
    bars = _query_bars(conn, symbol, date, spec)
    regimes = None
    if spec.regime_model is not None and spec.weight("regime") > 0:
        regimes = load_labels(conn, spec.regime_model, [symbol]).select(SYMBOL, TS, "probs")
    states = state_vectors(bars.tail(spec.lookback + spec.window + 1), spec, regimes)
    query_ts: datetime = bars[TS][-1]
    if states.is_empty() or states[TS][-1] != query_ts:
        raise AnalogError(f"{symbol} has no finite market state on {query_ts:%Y-%m-%d}", "date")
    query = np.asarray(states[-1, "embedding"], dtype=np.float32)
    cutoff: datetime = bars[TS][-2 - spec.window]  # the last bar before the query's window
    if exclude_recent_days:
        cutoff = min(cutoff, query_ts - timedelta(days=exclude_recent_days))
    ids = None
    if universe is not None:
        ids = list(_ids(conn, universe, "universe").values())
    plan = _Plan(
        symbol=symbol,
        query=query,
        query_ts=query_ts,
        cutoff=cutoff,
        spec=spec,
        instrument_ids=ids,
        method=method,
        ef_search=ef_search,
        gap=timedelta(days=min_gap_days if min_gap_days is not None else spec.window),
        horizons=horizon_list,
    )
    return _with_outcomes(conn, plan, bars, _nearest(conn, plan, k))


@dataclass(frozen=True, slots=True)
class _Plan:
    """One analog query, checked."""

    symbol: str
    query: np.ndarray
    query_ts: datetime
    cutoff: datetime
    spec: EmbeddingSpec
    instrument_ids: list[int] | None
    method: Method
    ef_search: int
    gap: timedelta
    horizons: tuple[int, ...]


def _nearest(conn: psycopg.Connection, plan: _Plan, k: int) -> pl.DataFrame:
    """symbol, ts, distance of the k nearest distinct episodes; asks for more candidates
    until k distinct ones are found or the candidates run out."""
    pool = min(max(20 * k, 200), _MAX_POOL)
    version = plan.spec.version
    matrix = None
    if plan.method == "exact":
        matrix = store.load_state_matrix(conn, version, plan.instrument_ids)
    while True:
        if matrix is not None:
            candidates = _exact(conn, matrix, plan.query, pool, plan.cutoff)
        else:
            candidates = store.hnsw_neighbors(
                conn,
                plan.query,
                version=version,
                cutoff=plan.cutoff,
                k=pool,
                instrument_ids=plan.instrument_ids,
                ef_search=max(plan.ef_search, min(pool, 1000)),
            )
        chosen = distinct_analogs(candidates.select(SYMBOL, TS, "distance"), k, plan.gap)
        if chosen.height >= k or candidates.height < pool or pool >= _MAX_POOL:
            return chosen
        pool = min(pool * 4, _MAX_POOL)


def _exact(
    conn: psycopg.Connection,
    matrix: store.StateMatrix,
    query: np.ndarray,
    pool: int,
    cutoff: datetime,
) -> pl.DataFrame:
    rows = matrix.nearest(query, pool, cutoff)
    symbols = _symbols(conn, np.unique(matrix.instrument_ids[rows]).tolist())
    return pl.DataFrame(
        {
            SYMBOL: [symbols[int(i)] for i in matrix.instrument_ids[rows]],
            TS: pl.Series(matrix.ts_us[rows]).cast(pl.Datetime("us", "UTC")),
            "distance": matrix.distances(query, rows).astype(np.float64),
        },
        schema={SYMBOL: pl.String(), TS: pl.Datetime("us", "UTC"), "distance": pl.Float64()},
    )


def _symbols(conn: psycopg.Connection, ids: list[int]) -> dict[int, str]:
    rows = conn.execute("SELECT id, symbol FROM instruments WHERE id = ANY(%s)", (ids,))
    return {int(i): str(s) for i, s in rows.fetchall()}


def _regimes_then(
    conn: psycopg.Connection, spec: EmbeddingSpec, analogs: pl.DataFrame
) -> pl.DataFrame:
    """`analogs` with `regime`: the spec's regime model's filtered label on each date."""
    if spec.regime_model is None or analogs.is_empty():
        return analogs.with_columns(pl.lit(None, pl.Int32).alias("regime"))
    labels = load_labels(conn, spec.regime_model, analogs[SYMBOL].unique().to_list())
    return analogs.join(
        labels.select(SYMBOL, TS, "regime"), on=[SYMBOL, TS], how="left", maintain_order="left"
    )


def _with_outcomes(
    conn: psycopg.Connection, plan: _Plan, query_bars: pl.DataFrame, analogs: pl.DataFrame
) -> AnalogSearch:
    spec, horizons, query_ts = plan.spec, plan.horizons, plan.query_ts
    anchors = analogs.select(SYMBOL, TS, "distance")
    if analogs.is_empty():
        returns = anchors.with_columns(pl.lit(None, pl.Float64).alias(f"ret_{h}") for h in horizons)
        paths = pl.DataFrame(
            schema={
                SYMBOL: pl.String(),
                TS: pl.Datetime("us", "UTC"),
                OFFSET: pl.Int64(),
                "value": pl.Float64(),
            }
        )
    else:
        start = analogs[TS].min()
        assert isinstance(start, datetime)
        bars = load_bars(
            conn,
            analogs[SYMBOL].unique().to_list(),
            start=start - _calendar_days(spec.window),
            end=query_ts,
        )
        returns = forward_returns(bars, anchors, horizons, known_until=query_ts)
        paths = price_paths(
            bars, anchors, before=spec.window, after=max(horizons), known_until=query_ts
        )
    ranked = (
        _regimes_then(conn, spec, returns)
        .sort("distance", SYMBOL, TS)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"))
    )
    query_anchor = pl.DataFrame({SYMBOL: [plan.symbol], TS: [query_ts]})
    query_path = price_paths(
        query_bars.select(SYMBOL, TS, CLOSE), query_anchor, before=spec.window, after=0
    ).select(OFFSET, "value")
    return AnalogSearch(
        symbol=plan.symbol,
        ts=query_ts,
        version=spec.version,
        window=spec.window,
        cutoff=plan.cutoff,
        method=plan.method,
        ef_search=plan.ef_search if plan.method == "hnsw" else None,
        horizons=horizons,
        analogs=ranked.select(
            "rank", SYMBOL, TS, "distance", "regime", *(f"ret_{h}" for h in horizons)
        ),
        distribution=outcome_distribution(returns, horizons),
        paths=paths,
        query_path=query_path,
        fan=fan(paths.filter(pl.col(OFFSET) >= 0)),
    )
