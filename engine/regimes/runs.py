"""Regime runs end to end: load bars, fit, store the run and its labels in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

import polars as pl

from engine.io.bars import load_bars
from engine.io.db import connect
from engine.io.regimes import create_run, finish_run, write_labels
from engine.regimes.service import Progress, RegimeResult, RegimeSpec, fit_regimes
from engine.regimes.stats import model_statistics
from engine.schema import SYMBOL, TS

__all__ = ["RegimeRunError", "run_regime_fit"]


class RegimeRunError(ValueError):
    """A regime fit failed; the message says why and names the run."""

    def __init__(self, message: str, run_id: int | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


def _run_stats(result: RegimeResult) -> dict[str, object]:
    return {
        "symbols": {symbol: model_statistics(params) for symbol, params in result.params.items()},
        "regimes": result.statistics.with_columns(pl.col(SYMBOL)).to_dicts(),
        "current": result.current.with_columns(pl.col(TS).dt.to_string()).to_dicts(),
        "failures": result.failures,
    }


def run_regime_fit(
    database_url: str,
    spec: RegimeSpec,
    symbols: Sequence[str],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str = "1d",
    workers: int | None = None,
    progress: Progress | None = None,
    timeout: float = 5.0,
) -> tuple[int, RegimeResult]:
    """Fit `spec` on the stored bars of `symbols`; store the run and labels; return both."""
    with connect(database_url, timeout=timeout, autocommit=True) as conn:
        bars = load_bars(conn, symbols, start=start, end=end, interval=interval)
        missing = sorted(set(symbols) - set(bars[SYMBOL].unique().to_list()))
        if missing:
            raise RegimeRunError(f"no stored {interval} bars for {missing}: ingest them first")
        params = {
            "features": list(spec.features),
            "params": dict(spec.params),
            "walk_forward": asdict(spec.walk_forward) if spec.walk_forward else None,
        }
        run_id = create_run(
            conn,
            model=spec.model,
            n_states=spec.n_states,
            symbols=symbols,
            params=params,
            interval=interval,
        )
        try:
            result = fit_regimes(bars, spec, workers=workers, progress=progress)
        except ValueError as exc:
            finish_run(conn, run_id, status="failed", error=str(exc))
            raise RegimeRunError(f"regime run {run_id} failed: {exc}", run_id) from None
        with conn.transaction():
            write_labels(conn, run_id, result.labels)
            finish_run(
                conn,
                run_id,
                status="succeeded",
                stats=_run_stats(result),
                train_start=bars[TS].min(),
                train_end=bars[TS].max(),
            )
    return run_id, result
