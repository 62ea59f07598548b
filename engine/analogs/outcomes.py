"""What happened after each analog: forward returns, price paths and their distribution.

All pure Polars over canonical bars. A forward return over `h` bars is the simple return
close[t+h] / close[t] - 1 on the analog's own bars. Nothing after `known_until` (the query
date) is used: a horizon that ends later is null, because it was not known on the query
date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from engine.schema import CLOSE, SYMBOL, TS

__all__ = [
    "FAN_QUANTILES",
    "OFFSET",
    "aligned_paths",
    "distinct_analogs",
    "fan",
    "forward_returns",
    "outcome_distribution",
    "price_paths",
]

OFFSET: Final = "offset"
VALUE: Final = "value"
FAN_QUANTILES: Final = (0.1, 0.25, 0.5, 0.75, 0.9)
_ROW: Final = "_row"
_ANCHOR_ROW: Final = "_anchor_row"


def distinct_analogs(candidates: pl.DataFrame, k: int, min_gap: timedelta) -> pl.DataFrame:
    """The `k` nearest candidates that are at least `min_gap` apart on the same symbol.

    `candidates` (symbol, ts, distance) are taken nearest first; one that falls within
    `min_gap` of an already taken analog of its symbol is the same episode seen a few bars
    later, and is skipped.
    """
    taken: dict[str, list[datetime]] = {}
    keep: list[int] = []
    ordered = candidates.with_row_index(_ROW).sort("distance", SYMBOL, TS)
    for row, symbol, ts in ordered.select(_ROW, SYMBOL, TS).iter_rows():
        times = taken.setdefault(symbol, [])
        if all(abs(ts - other) >= min_gap for other in times):
            times.append(ts)
            keep.append(row)
            if len(keep) == k:
                break
    return ordered.filter(pl.col(_ROW).is_in(keep)).sort("distance", SYMBOL, TS).drop(_ROW)


def _indexed(bars: pl.DataFrame, anchors: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bars with their row number per symbol, and the anchors with their bar's row number."""
    indexed = (
        bars.select(SYMBOL, TS, CLOSE)
        .sort(SYMBOL, TS)
        .with_columns(pl.int_range(pl.len()).over(SYMBOL).alias(_ROW))
    )
    located = anchors.select(SYMBOL, TS).join(
        indexed.select(SYMBOL, TS, pl.col(_ROW).alias(_ANCHOR_ROW), pl.col(CLOSE).alias("_c0")),
        on=[SYMBOL, TS],
        how="left",
    )
    if located[_ANCHOR_ROW].null_count():
        missing = located.filter(pl.col(_ANCHOR_ROW).is_null()).row(0, named=True)
        raise ValueError(f"no bar for analog {missing[SYMBOL]} at {missing[TS]}")
    return indexed, located


def price_paths(
    bars: pl.DataFrame,
    anchors: pl.DataFrame,
    *,
    before: int,
    after: int,
    known_until: datetime | None = None,
) -> pl.DataFrame:
    """symbol, ts (the anchor), offset, value: close[t+offset] / close[t] - 1 for offsets
    -before..after bars around each anchor; bars after `known_until` are left out."""
    indexed, located = _indexed(bars, anchors)
    offsets = pl.DataFrame({OFFSET: pl.int_range(-before, after + 1, eager=True)})
    grid = located.join(offsets, how="cross").with_columns(
        (pl.col(_ANCHOR_ROW) + pl.col(OFFSET)).alias(_ROW)
    )
    joined = grid.join(
        indexed.select(SYMBOL, _ROW, pl.col(TS).alias("_bar_ts"), CLOSE), on=[SYMBOL, _ROW]
    )
    if known_until is not None:
        joined = joined.filter(pl.col("_bar_ts") <= known_until)
    return joined.select(
        SYMBOL, TS, OFFSET, (pl.col(CLOSE) / pl.col("_c0") - 1.0).alias(VALUE)
    ).sort(SYMBOL, TS, OFFSET)


def aligned_paths(
    paths: pl.DataFrame, anchors: pl.DataFrame, offsets: Sequence[int]
) -> pl.DataFrame:
    """symbol, ts, values: each anchor's path (`price_paths` rows) as one list along
    `offsets`, null where no bar is known, in the anchors' order."""
    grid = (
        anchors.select(SYMBOL, TS)
        .with_row_index(_ROW)
        .join(pl.DataFrame({OFFSET: list(offsets)}, schema={OFFSET: pl.Int64()}), how="cross")
    )
    return (
        grid.join(paths.select(SYMBOL, TS, OFFSET, VALUE), on=[SYMBOL, TS, OFFSET], how="left")
        .sort(_ROW, OFFSET)
        .group_by(_ROW, maintain_order=True)
        .agg(pl.col(SYMBOL).first(), pl.col(TS).first(), pl.col(VALUE).alias("values"))
        .drop(_ROW)
    )


def forward_returns(
    bars: pl.DataFrame,
    anchors: pl.DataFrame,
    horizons: Sequence[int],
    *,
    known_until: datetime | None = None,
) -> pl.DataFrame:
    """`anchors` (symbol, ts, ...) with one column `ret_<h>` per horizon: the simple return
    over the next h bars, null when the data (up to `known_until`) does not reach that far."""
    paths = price_paths(bars, anchors, before=0, after=max(horizons), known_until=known_until)
    wide = (
        paths.filter(pl.col(OFFSET).is_in(list(horizons)))
        .with_columns(pl.format("ret_{}", OFFSET).alias("_h"))
        .pivot(on="_h", index=[SYMBOL, TS], values=VALUE)
    )
    result = anchors.join(wide, on=[SYMBOL, TS], how="left", maintain_order="left")
    missing = [f"ret_{h}" for h in horizons if f"ret_{h}" not in result.columns]
    return result.with_columns(pl.lit(None, pl.Float64).alias(m) for m in missing).select(
        *anchors.columns, *(f"ret_{h}" for h in horizons)
    )


def outcome_distribution(returns: pl.DataFrame, horizons: Sequence[int]) -> pl.DataFrame:
    """One row per horizon: count, mean, median, quantiles and share positive of `ret_<h>`
    over the analogs where it is known."""
    rows = []
    for h in horizons:
        column = pl.col(f"ret_{h}").drop_nulls()
        rows.append(
            returns.select(
                pl.lit(h, pl.Int32).alias("horizon"),
                column.count().cast(pl.Int64).alias("count"),
                column.mean().alias("mean"),
                column.median().alias("median"),
                column.quantile(0.1, "linear").alias("q10"),
                column.quantile(0.25, "linear").alias("q25"),
                column.quantile(0.75, "linear").alias("q75"),
                column.quantile(0.9, "linear").alias("q90"),
                (column > 0).mean().alias("share_positive"),
            )
        )
    return pl.concat(rows)


def fan(paths: pl.DataFrame) -> pl.DataFrame:
    """offset, count, q10, q25, median, q75, q90 of the analogs' paths per offset: the fan
    chart of what happened next."""
    names = {0.1: "q10", 0.25: "q25", 0.5: "median", 0.75: "q75", 0.9: "q90"}
    return (
        paths.group_by(OFFSET)
        .agg(
            pl.len().cast(pl.Int64).alias("count"),
            *(pl.col(VALUE).quantile(q, "linear").alias(names[q]) for q in FAN_QUANTILES),
        )
        .sort(OFFSET)
    )
