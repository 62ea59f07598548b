"""Live signals: the same strategy code as the backtest, evaluated on the latest bars.

The target of a symbol's last bar is what the strategy wants to hold from the next bar on
(the backtest executes it at t+1 exactly so). Sizing (direction, fraction, vol target) and
portfolio caps apply as in the backtest, so a signal is the weight the backtest would
trade next.
"""

from __future__ import annotations

import msgspec
import polars as pl

from engine.backtest.engine import prepare, target_frame
from engine.backtest.execution import column
from engine.backtest.spec import BacktestSpec
from engine.schema import CLOSE, SYMBOL, TS
from engine.strategies.base import SpecError

__all__ = ["latest_targets"]


def latest_targets(
    bars: pl.DataFrame, spec: BacktestSpec, regimes: pl.DataFrame | None = None
) -> pl.DataFrame:
    """symbol, ts (the last bar), target, regime, regime_prob, context (JSON text) per symbol.

    A spec with a grid has no single signal: SpecError.
    """
    if spec.grid:
        raise SpecError("a signal needs one parameter set: drop the grid (use --param)")
    (params,) = spec.param_sets()
    lf = prepare(bars, spec, regimes)
    lf, (key,) = target_frame(lf, spec, [params])
    regime_cols = [c for c in ("regime", "regime_prob") if c in lf.collect_schema().names()]
    last = (
        lf.group_by(SYMBOL, maintain_order=True)
        .agg(pl.all().last())
        .select(
            SYMBOL,
            TS,
            pl.col(column("target", key)).fill_null(0.0).fill_nan(0.0).alias("target"),
            *regime_cols,
            pl.col(CLOSE),
        )
        .collect()
    )
    if "regime" not in last.columns:
        last = last.with_columns(
            pl.lit(None, pl.Int32).alias("regime"), pl.lit(None, pl.Float64).alias("regime_prob")
        )
    context = {
        "strategy": spec.strategy,
        "params": msgspec.to_builtins(params),
        "sizing": msgspec.to_builtins(spec.sizing),
        "executes": f"next bar's {spec.execution.price}",
    }
    notes = [msgspec.json.encode({**context, "close": close}).decode() for close in last[CLOSE]]
    return last.with_columns(pl.Series("context", notes, dtype=pl.String)).select(
        SYMBOL, TS, "target", "regime", "regime_prob", "context"
    )
