"""Analog search over states stored in real Postgres + pgvector, on planted patterns."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest

from engine.analogs.embedding import EmbeddingSpec, state_vectors
from engine.analogs.service import (
    AnalogError,
    UnknownSymbolError,
    build_states,
    find_analogs,
)
from engine.io import analogs as store
from engine.io.bars import ensure_instruments, upsert_bars
from engine.schema import CLOSE, HIGH, LOW, OPEN, SYMBOL, TS, VOLUME

SPEC = EmbeddingSpec(window=63, regime_model=None)
N_BARS = 1500
# a crash and a partial rebound, 63 bars long: nothing like the 1%-a-day noise around it
PATTERN = np.concatenate([np.full(20, 0.003), np.full(15, -0.03), np.full(28, 0.012)])
# (symbol, bar index where a planted pattern ends)
PLANTED = [("AAA", 500), ("BBB", 700), ("CCC", 900), ("AAA", 1200), ("BBB", 1450)]


def _bars(symbol: str, seed: int, ends: list[int]) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0003, 0.01, N_BARS)
    for end in ends:
        returns[end - len(PATTERN) + 1 : end + 1] = PATTERN
    close = 100 * np.exp(np.cumsum(returns))
    start = datetime(2010, 1, 4, tzinfo=UTC)
    ts = [start + timedelta(days=i) for i in range(N_BARS)]
    return pl.DataFrame(
        {
            SYMBOL: symbol,
            TS: ts,
            OPEN: close,
            HIGH: close * 1.005,
            LOW: close * 0.995,
            CLOSE: close,
            VOLUME: 1_000.0,
        }
    )


def _store(conn: psycopg.Connection, frames: list[pl.DataFrame]) -> None:
    bars = pl.concat(frames)
    symbols = sorted(bars[SYMBOL].unique().to_list())
    with conn.transaction():
        ids = ensure_instruments(conn, [(s, None) for s in symbols], provider="synthetic")
        upsert_bars(conn, bars, ids, provider="synthetic")


@pytest.fixture
def planted(db: psycopg.Connection) -> dict[str, pl.DataFrame]:
    frames = {
        symbol: _bars(symbol, seed, [end for s, end in PLANTED if s == symbol])
        for seed, symbol in enumerate(["AAA", "BBB", "CCC", "DDD"])
    }
    _store(db, list(frames.values()))
    build_states(db, list(frames), SPEC)
    return frames


def _end(frames: dict[str, pl.DataFrame], symbol: str, index: int) -> datetime:
    value = frames[symbol][TS][index]
    assert isinstance(value, datetime)
    return value


@pytest.mark.parametrize("method", ["hnsw", "exact"])
def test_a_planted_pattern_finds_its_other_occurrences_first(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame], method: str
) -> None:
    symbol, index = PLANTED[-1]
    when = _end(planted, symbol, index)
    result = find_analogs(db, symbol, date=when, k=6, spec=SPEC, method=method)  # type: ignore[arg-type]
    assert result.ts == when
    top = result.analogs.head(len(PLANTED) - 1)
    expected = {(s, _end(planted, s, i)) for s, i in PLANTED[:-1]}
    found = set(zip(top[SYMBOL].to_list(), top[TS].to_list(), strict=True))
    assert found == expected
    # then unrelated states, clearly further away
    assert result.analogs["distance"][len(PLANTED) - 1] > 2 * top["distance"].max()


def test_forward_returns_equal_returns_computed_from_the_bars(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    result = find_analogs(db, "CCC", k=20, horizons=(1, 5, 21, 63), spec=SPEC)
    assert result.analogs.height == 20
    for row in result.analogs.iter_rows(named=True):
        closes = planted[row[SYMBOL]][CLOSE].to_list()
        at = planted[row[SYMBOL]][TS].to_list().index(row[TS])
        for h in (1, 5, 21, 63):
            direct = closes[at + h] / closes[at] - 1 if at + h < N_BARS else None
            if direct is None or planted[row[SYMBOL]][TS][at + h] > result.ts:
                assert row[f"ret_{h}"] is None
            else:
                assert row[f"ret_{h}"] == pytest.approx(direct, rel=1e-12)
    shares = result.analogs.select((pl.col("ret_21") > 0).mean()).item()
    assert result.distribution.filter(pl.col("horizon") == 21)["share_positive"].item() == (
        pytest.approx(shares)
    )


@pytest.mark.parametrize("query_index", [400, 800, 1100])
def test_no_analog_lies_after_the_query_date_minus_the_window(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame], query_index: int
) -> None:
    query_date = _end(planted, "DDD", query_index)
    window_start = _end(planted, "DDD", query_index - SPEC.window)
    for method in ("hnsw", "exact"):
        result = find_analogs(
            db,
            "DDD",
            date=query_date,
            k=50,
            horizons=(5, 126),  # longer than the window: the latest analogs' paths stop early
            spec=SPEC,
            method=method,  # type: ignore[arg-type]
            min_gap_days=0,  # every state a candidate: the most room for a late one
        )
        assert result.ts == query_date
        assert result.analogs.height == 50
        assert result.analogs[TS].max() < window_start
        assert result.cutoff < window_start
        # paths never reach past the query date (the synthetic calendar is daily)
        reach = result.paths.group_by(SYMBOL, TS).agg(pl.col("offset").max().alias("last"))
        assert reach.height == 50
        ends = reach.select(pl.col(TS) + pl.duration(days=pl.col("last")))[TS]
        assert ends.max() <= query_date
        late = result.analogs.filter(pl.col(TS) > query_date - timedelta(days=126))
        assert late["ret_126"].null_count() == late.height  # not known on the query date


def test_the_exact_search_agrees_with_hnsw(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    for symbol in ("AAA", "DDD"):
        hnsw = find_analogs(db, symbol, k=10, spec=SPEC, method="hnsw")
        exact = find_analogs(db, symbol, k=10, spec=SPEC, method="exact")
        overlap = set(hnsw.analogs[TS].to_list()) & set(exact.analogs[TS].to_list())
        assert len(overlap) >= 9
        assert exact.analogs["distance"].to_list() == sorted(exact.analogs["distance"].to_list())


def test_analogs_are_distinct_episodes_and_the_universe_limits_them(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    result = find_analogs(db, "AAA", k=30, spec=SPEC, universe=["BBB", "CCC"])
    assert set(result.analogs[SYMBOL].to_list()) <= {"BBB", "CCC"}
    for _, group in result.analogs.group_by(SYMBOL):
        times = sorted(group[TS].to_list())
        assert all(b - a >= timedelta(days=SPEC.window) for a, b in itertools.pairwise(times))


def test_the_query_state_equals_the_stored_state(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    when = _end(planted, "BBB", 1000)
    stored = store.state_at(db, "BBB", SPEC.version, when)
    assert stored is not None
    computed = state_vectors(planted["BBB"].filter(pl.col(TS) <= when), SPEC)
    assert np.allclose(np.asarray(computed[-1, "embedding"]), stored[1], atol=1e-6)


def test_fan_and_paths_describe_the_analogs(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    result = find_analogs(db, "CCC", k=10, horizons=(5, 21), spec=SPEC)
    assert result.query_path["offset"].to_list() == list(range(-SPEC.window, 1))
    assert result.query_path.filter(pl.col("offset") == 0)["value"].item() == 0.0
    assert result.fan["offset"].to_list() == list(range(0, 22))
    at_21 = result.fan.filter(pl.col("offset") == 21)
    assert at_21["median"].item() == pytest.approx(result.analogs["ret_21"].median())


def test_builds_are_incremental_and_idempotent(db: psycopg.Connection) -> None:
    frame = _bars("EEE", 7, [])
    _store(db, [frame.head(1000)])
    first = build_states(db, ["EEE"], SPEC)
    assert first.states == 1000 - SPEC.lookback
    assert build_states(db, ["EEE"], SPEC).states == 0
    _store(db, [frame])
    assert build_states(db, ["EEE"], SPEC).states == N_BARS - 1000
    assert build_states(db, ["EEE"], SPEC, full=True).states == N_BARS - SPEC.lookback
    count = db.execute("SELECT count(*) FROM market_states").fetchone()
    assert count is not None and count[0] == N_BARS - SPEC.lookback
    assert store.has_index(db)
    incremental = store.load_state_matrix(db, SPEC.version)
    order = np.argsort(incremental.ts_us)
    rebuilt = state_vectors(frame, SPEC)
    assert np.allclose(incremental.vectors[order], rebuilt["embedding"].to_numpy(), atol=1e-5)


def test_bad_queries_name_the_parameter(
    db: psycopg.Connection, planted: dict[str, pl.DataFrame]
) -> None:
    with pytest.raises(UnknownSymbolError) as unknown:
        find_analogs(db, "NOPE", spec=SPEC)
    assert unknown.value.field == "symbol"
    too_early = _end(planted, "AAA", 100)
    with pytest.raises(AnalogError, match="needs 253 bars of history") as early:
        find_analogs(db, "AAA", date=too_early, spec=SPEC)
    assert early.value.field == "date"
    with pytest.raises(AnalogError) as before_any:
        find_analogs(db, "AAA", date=datetime(2000, 1, 1, tzinfo=UTC), spec=SPEC)
    assert before_any.value.field == "date"
    for k in (0, -1, 1001):
        with pytest.raises(AnalogError) as bad_k:
            find_analogs(db, "AAA", k=k, spec=SPEC)
        assert bad_k.value.field == "k"
    with pytest.raises(AnalogError) as bad_h:
        find_analogs(db, "AAA", horizons=(0,), spec=SPEC)
    assert bad_h.value.field == "horizons"
    with pytest.raises(AnalogError) as bad_universe:
        find_analogs(db, "AAA", universe=["ZZZ"], spec=SPEC)
    assert bad_universe.value.field == "universe"
