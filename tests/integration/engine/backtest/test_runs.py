"""Backtests against real Postgres: stored runs and results, sweeps, regimes, signals."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import msgspec
import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from engine.backtest.engine import run_backtest
from engine.backtest.runs import (
    compute_signals,
    load_inputs,
    run_stored_backtest,
    save_strategy,
)
from engine.backtest.spec import BacktestSpec
from engine.backtest.sweep import run_sweep
from engine.io.backtests import latest_signals, load_backtest_results, load_backtest_run
from engine.regimes.fitting import WalkForward
from engine.regimes.runs import run_regime_fit
from engine.regimes.service import RegimeSpec
from engine.settings import Settings
from engine.strategies.base import SpecError

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest


def _url(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url


@pytest.mark.slow
def test_regime_filtered_strategy_on_sample_spx_with_causal_hmm(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("sample", "SPX")
    # causal regimes: expanding-window refits, each label filtered with parameters fitted
    # on data before it
    schedule = WalkForward(mode="expanding", min_train=504, refit_every=252)
    run_regime_fit(
        _url(settings), RegimeSpec(model="hmm", walk_forward=schedule), ["SPX"], workers=1
    )
    spec = BacktestSpec.parse(
        {
            "strategy": "regime_filter",
            "symbols": ["SPX"],
            "params": {"base": "buy_and_hold", "regimes": [0]},
            "regimes": {"model": "hmm"},
            "execution": {"fees_bps": 5},
        }
    )

    run_id, result = run_stored_backtest(_url(settings), spec)

    assert result.regime_metrics is not None
    by_regime = result.regime_metrics.filter(pl.col("regime").is_not_null())
    assert sorted(by_regime["regime"].to_list()) == [0, 1]
    shares = result.regime_metrics["share_of_time"].sum()
    assert shares == pytest.approx(1.0)
    # the filter only holds the market in the calm regime: no exposure in regime 1
    calm, stressed = (by_regime.filter(pl.col("regime") == r).row(0, named=True) for r in (0, 1))
    assert calm["exposure"] > 0.5
    assert stressed["exposure"] < 0.1  # entered/left one bar late at most
    # regimes ascend by volatility: buy and hold is calmer in regime 0 than in regime 1
    hold = msgspec.structs.replace(spec, strategy="buy_and_hold", params={})
    bars, labels = load_inputs(db, hold)
    held = run_backtest(bars, hold, labels).regime_metrics
    assert held is not None
    vol = dict(
        held.filter(pl.col("regime").is_not_null())
        .select("regime", "annual_volatility")
        .iter_rows()
    )
    assert vol[0] < vol[1]

    run = load_backtest_run(db, run_id)
    assert run is not None and run["status"] == "succeeded" and run["progress"] == 1.0
    assert BacktestSpec.parse(run["spec"]) == spec  # the stored spec reproduces the run
    stored = load_backtest_results(db, run_id)
    assert stored.height == 1
    regimes = json.loads(stored["regime_metrics"][0])
    assert {"0", "1"} <= set(regimes)
    metrics = json.loads(stored["metrics"][0])
    assert metrics["total_return"] == pytest.approx(result.metrics["total_return"][0])


def test_stored_run_without_bars_is_marked_failed(
    settings: Settings, db: psycopg.Connection
) -> None:
    spec = BacktestSpec.parse({"strategy": "buy_and_hold", "symbols": ["NOPE"]})
    with pytest.raises(SpecError, match=r"run \d+: no bars in range for: NOPE"):
        run_stored_backtest(_url(settings), spec)
    row = db.execute("SELECT status, error FROM backtest_runs").fetchone()
    assert row is not None and row[0] == "failed" and "NOPE" in row[1]


def test_regime_strategy_without_labels_is_a_clear_error(
    settings: Settings, ingest: Ingest
) -> None:
    ingest("synthetic", "1", n_days=300)
    spec = BacktestSpec.parse(
        {
            "strategy": "regime_filter",
            "symbols": ["SYN0000"],
            "regimes": {"model": "hmm"},
        }
    )
    with pytest.raises(SpecError, match="no regime labels for model 'hmm'"):
        run_stored_backtest(_url(settings), spec)


def test_sweep_in_a_process_pool_equals_one_pass_and_is_stored(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("synthetic", "12", n_days=800)
    symbols = tuple(f"SYN{i:04d}" for i in range(12))
    spec = BacktestSpec.parse(
        {
            "strategy": "sma_crossover",
            "symbols": symbols,
            "grid": {"fast": [5, 10], "slow": [30, 60]},
            "execution": {"fees_bps": 10},
        }
    )
    bars, _ = load_inputs(db, spec)
    one_pass = run_backtest(bars, spec, keep_equity=False).metrics

    swept = run_sweep(bars, spec, executor="pool", workers=2, chunk_size=5)

    assert swept.executor == "pool" and swept.chunks == 3
    key = ["key", "symbol"]
    assert_frame_equal(swept.metrics.sort(key), one_pass.sort(key), rel_tol=1e-12, abs_tol=1e-12)

    run_id, result = run_stored_backtest(_url(settings), spec, executor="local")
    stored = load_backtest_results(db, run_id)
    assert stored.height == 4 * 12 == result.metrics.height
    params = {json.dumps(json.loads(p), sort_keys=True) for p in stored["params"]}
    assert len(params) == 4


@pytest.mark.slow
def test_sweep_on_a_local_ray_instance_equals_the_pool(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ray = pytest.importorskip("ray")
    ingest("synthetic", "6", n_days=600)
    spec = BacktestSpec.parse(
        {
            "strategy": "sma_crossover",
            "symbols": [f"SYN{i:04d}" for i in range(6)],
            "grid": {"fast": [5, 10], "slow": [40]},
        }
    )
    bars, _ = load_inputs(db, spec)
    try:
        on_ray = run_sweep(bars, spec, executor="ray", ray_address="local", chunk_size=2)
    finally:
        ray.shutdown()
    local = run_sweep(bars, spec, executor="local", chunk_size=2)
    assert on_ray.executor == "ray" and on_ray.chunks == 3
    key = ["key", "symbol"]
    assert_frame_equal(
        on_ray.metrics.sort(key), local.metrics.sort(key), rel_tol=1e-12, abs_tol=1e-12
    )


def test_signals_are_the_backtests_next_targets_and_idempotent(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("synthetic", "3", n_days=400)
    symbols = ["SYN0000", "SYN0001", "SYN0002"]
    spec = BacktestSpec.parse(
        {"strategy": "sma_crossover", "symbols": symbols, "params": {"fast": 5, "slow": 20}}
    )
    save_strategy(_url(settings), "fast-cross", spec)

    first = compute_signals(_url(settings))
    again = compute_signals(_url(settings), ["fast-cross"])

    assert first.height == 3 and first.drop("context").equals(again.drop("context"))
    count = db.execute("SELECT count(*) FROM signals").fetchone()
    assert count is not None and count[0] == 3  # re-running the same bar adds nothing
    stored = latest_signals(db, "fast-cross").sort("symbol")
    bars, _ = load_inputs(db, spec)
    result = run_backtest(bars, spec)
    assert result.equity is not None
    # the target of the last bar is what the backtest would trade at the next bar
    from engine.backtest.engine import prepare, target_frame

    lf, (key,) = target_frame(prepare(bars, spec), spec, spec.param_sets())
    last = lf.group_by("symbol").agg(pl.col(f"target:{key}").last()).collect().sort("symbol")
    assert stored["target"].to_list() == last[f"target:{key}"].fill_null(0.0).to_list()
    assert json.loads(stored["context"][0])["strategy"] == "sma_crossover"


def test_unknown_stored_strategy_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(SpecError, match="no stored strategy named 'nope'"):
        compute_signals(_url(settings), ["nope"])
