"""Regime runs against real Postgres: fit, store, read back, stable identity, real data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import psycopg
import pytest

from engine.io.bars import load_bars
from engine.io.regimes import (
    label_page,
    latest_regimes,
    latest_run_ids,
    list_runs,
    load_labels,
    load_run,
    regime_snapshot,
    symbol_run_stats,
)
from engine.regimes.fitting import WalkForward
from engine.regimes.runs import RegimeRunError, run_regime_fit
from engine.regimes.service import RegimeSpec
from engine.settings import Settings

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest


def _balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    classes = np.unique(truth)
    return float(np.mean([(predicted[truth == c] == c).mean() for c in classes]))


def test_hmm_run_is_stored_read_back_and_recovers_the_true_regimes(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("synthetic", "3", n_days=1500)
    assert settings.database_url is not None
    symbols = ["SYN0000", "SYN0001", "SYN0002"]

    run_id, result = run_regime_fit(
        settings.database_url, RegimeSpec(model="hmm"), symbols, workers=1
    )

    filtered = load_labels(db, "hmm", symbols, kind="filtered")
    smoothed = load_labels(db, "hmm", symbols, kind="smoothed")
    assert filtered.height == smoothed.height == 3 * 1499  # the first bar has no return
    assert filtered["probs"].list.len().unique().to_list() == [2]
    assert filtered.equals(result.labels.filter(pl.col("kind") == "filtered").drop("kind"))
    run = db.execute(
        "SELECT status, stats, n_states FROM regime_runs WHERE id = %s", (run_id,)
    ).fetchone()
    assert run is not None and run[0] == "succeeded" and run[2] == 2
    assert np.array(run[1]["symbols"]["SYN0000"]["transmat"]).shape == (2, 2)

    truth = pl.DataFrame(
        db.execute(
            "SELECT i.symbol, t.ts, t.regime FROM true_regimes t "
            "JOIN instruments i ON i.id = t.instrument_id"
        ).fetchall(),
        schema={"symbol": pl.String, "ts": pl.Datetime("us", "UTC"), "true": pl.Int32},
        orient="row",
    )
    joined = filtered.join(truth, on=["symbol", "ts"])
    assert _balanced_accuracy(joined["true"].to_numpy(), joined["regime"].to_numpy()) >= 0.85

    snapshot = regime_snapshot(db, "hmm", symbols)
    assert snapshot["symbol"].to_list() == symbols
    assert snapshot["days_in_regime"].min() >= 1


def test_a_one_month_longer_window_keeps_the_labels(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("synthetic", "1", n_days=1200)
    assert settings.database_url is not None
    cutoff = load_bars(db, ["SYN0000"])["ts"][1000]
    _, shorter = run_regime_fit(
        settings.database_url, RegimeSpec(model="hmm", smooth=False), ["SYN0000"], end=cutoff
    )
    _, longer = run_regime_fit(
        settings.database_url,
        RegimeSpec(model="hmm", smooth=False),
        ["SYN0000"],
        end=load_bars(db, ["SYN0000"])["ts"][1021],
    )

    overlap = shorter.labels.join(longer.labels, on=["symbol", "ts", "kind"], suffix="_longer")
    assert overlap.height == 1000
    assert (overlap["regime"] == overlap["regime_longer"]).mean() >= 0.95


@pytest.mark.slow
def test_sp500_high_volatility_regime_covers_oct_2008_and_aug_2011(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("sample", "SPX")
    assert settings.database_url is not None
    spec = RegimeSpec(
        model="hmm", walk_forward=WalkForward(min_train=504, refit_every=63), smooth=False
    )

    _, result = run_regime_fit(settings.database_url, spec, ["SPX"], workers=1)

    labels = result.labels.filter(pl.col("kind") == "filtered")
    for year, month in ((2008, 10), (2011, 8)):
        days = labels.filter((pl.col("ts").dt.year() == year) & (pl.col("ts").dt.month() == month))
        assert days.height >= 19
        assert (days["regime"] == 1).mean() >= 0.8, (
            f"{year}-{month:02d}: {days['regime'].to_list()}"
        )


def test_bad_requests_are_clear(settings: Settings, db: psycopg.Connection, ingest: Ingest) -> None:
    assert settings.database_url is not None
    with pytest.raises(ValueError, match="unknown regime model 'hmmm'"):
        RegimeSpec(model="hmmm")
    with pytest.raises(ValueError, match="at least 2 states"):
        RegimeSpec(model="hmm", n_states=1)
    with pytest.raises(RegimeRunError, match=r"no stored 1d bars for \['NOPE'\]"):
        run_regime_fit(settings.database_url, RegimeSpec(model="hmm"), ["NOPE"])
    ingest("synthetic", "1", n_days=15)
    with pytest.raises(RegimeRunError, match="failed"):
        run_regime_fit(
            settings.database_url,
            RegimeSpec(model="hmm"),
            ["SYN0000"],
            start=datetime(2010, 1, 4, tzinfo=UTC),
        )
    status = db.execute("SELECT status, error FROM regime_runs ORDER BY id DESC LIMIT 1").fetchone()
    assert status is not None and status[0] == "failed" and status[1]


def test_runs_are_listed_loaded_and_summarized_per_symbol(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    ingest("synthetic", "2", n_days=300)
    assert settings.database_url is not None
    symbols = ["SYN0000", "SYN0001"]
    first, _ = run_regime_fit(
        settings.database_url, RegimeSpec(model="hmm", smooth=False), symbols, workers=1
    )
    second, _ = run_regime_fit(
        settings.database_url, RegimeSpec(model="hmm", n_states=3), ["SYN0001"], workers=1
    )
    last_days = load_bars(db, ["SYN0000"])["ts"][-2]
    with pytest.raises(RegimeRunError, match="failed"):  # two bars: too little to fit
        run_regime_fit(
            settings.database_url, RegimeSpec(model="jump"), ["SYN0000"], start=last_days
        )

    assert latest_run_ids(db, "hmm", [*symbols, "NOPE"]) == {"SYN0000": first, "SYN0001": second}
    assert latest_run_ids(db, "jump", symbols) == {}

    runs, total = list_runs(db, limit=2)
    assert total == 3 and [r["id"] for r in runs] == [second + 1, second]
    assert runs[0]["status"] == "failed" and runs[0]["error"]
    assert list_runs(db, model="hmm", symbol="SYN0000")[0][0]["id"] == first
    assert list_runs(db, status="succeeded", offset=1)[1] == 2
    assert list_runs(db, status="cancelled") == ([], 0)

    run = load_run(db, second)
    assert run is not None and run["n_states"] == 3 and run["status"] == "succeeded"
    assert run["params"]["features"] == ["log_return"]
    assert "stats" not in (load_run(db, second, details=False) or {})
    assert load_run(db, 10_000) is None

    parts = symbol_run_stats(db, {"SYN0000": first, "SYN0001": second})
    assert parts["SYN0001"]["run_id"] == second and parts["SYN0001"]["n_states"] == 3
    assert len(parts["SYN0001"]["model"]["transmat"]) == 3
    assert [r["regime"] for r in parts["SYN0000"]["regimes"]] == [0, 1]
    assert {r["symbol"] for r in parts["SYN0000"]["regimes"]} == {"SYN0000"}
    assert parts["SYN0000"]["failure"] is None
    assert symbol_run_stats(db, {}) == {}

    # the SQL snapshot equals the Polars one over the full history, plus the run
    latest = latest_regimes(db, "hmm", [*symbols, "NOPE"])
    assert latest.drop("run_id", "n_states").equals(regime_snapshot(db, "hmm", symbols))
    assert latest["run_id"].to_list() == [first, second]
    assert latest["n_states"].to_list() == [2, 3]
    assert latest_regimes(db, "jump", symbols).is_empty()

    full = load_labels(db, "hmm", ["SYN0001"], run_id=second, kind="smoothed")
    page, total = label_page(db, second, "SYN0001", kind="smoothed", limit=5, offset=10)
    assert total == full.height == 299
    assert page.equals(full.drop("symbol").slice(10, 5))
    window, in_window = label_page(db, second, "SYN0001", start=full["ts"][3], end=full["ts"][7])
    assert in_window == 5 and window["ts"].to_list() == full["ts"][3:8].to_list()
    newest, _ = label_page(db, second, "SYN0001", limit=1, newest_first=True)
    assert newest["ts"].to_list() == [full["ts"][-1]]
    unsmoothed, none = label_page(db, first, "SYN0000", kind="smoothed")  # fitted smooth=False
    assert unsmoothed.is_empty() and unsmoothed.schema == page.schema and none == 0
