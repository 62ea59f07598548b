"""How per-symbol series work is written: `.over(SYMBOL)`, or flat on a frame sorted by
(symbol, ts) with each symbol's warm-up bars nulled.

Every feature has both forms. The `.over` form is the documented simple version: symbols
may come in any order or interleaved (a panel sorted by ts, say), as long as each
symbol's bars are in time order. The fast form (`presorted=...`) relies on the canonical
order, or any order keeping each symbol's bars together and in time order: rolling,
shifting and differencing the whole column at once gives the `.over` values everywhere
except in a symbol's first bars, whose windows reach back into the previous symbol; those
are exactly the warm-up bars the `.over` form leaves null, so they are nulled. This skips
`.over`'s hashing of symbol strings and its scatter back to rows. Operations with no
fixed window (running peaks, exponential averages) use `.over` the integer run number of
the symbol instead of the string. (Splitting flat work into blocks of whole symbols run
`.over` a block key, for parallelism, measured slower: Polars' streaming engine already
spreads a flat rolling window over its threads.)

The fast form needs null-free inputs (windows over nulls take other code paths, and
Polars' weighted windows refuse them); `guard` checks order and nulls inside the lazy
plan and raises ValueError at collect time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from engine.schema import SYMBOL, TS

__all__ = [
    "Presorted",
    "as_expr",
    "check_window",
    "guard",
    "layout",
    "row_in_symbol",
    "symbol_run",
    "symbol_starts",
]


def as_expr(value: str | pl.Expr) -> pl.Expr:
    """`value` as an expression: a column name becomes `pl.col(name)`."""
    return pl.col(value) if isinstance(value, str) else value


def check_window(window: int, *, minimum: int = 2, what: str = "window") -> int:
    """`window` unchanged if it is an int >= `minimum`; ValueError otherwise."""
    if isinstance(window, bool) or not isinstance(window, int) or window < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {window!r}")
    return window


def symbol_starts() -> pl.Expr:
    """True on the first bar of each symbol of a frame sorted by symbol."""
    symbol = pl.col(SYMBOL)
    return (symbol != symbol.shift(1)).fill_null(value=True)


def symbol_run() -> pl.Expr:
    """Run number of each bar's symbol (0, 1, ...) on a sorted frame: a cheap `.over` key.
    Ascending by construction, whatever the order of the frame."""
    return pl.col(SYMBOL).rle_id().set_sorted()


def row_in_symbol(starts: pl.Expr | None = None) -> pl.Expr:
    """0-based position of each bar within its symbol, on a frame sorted by symbol.
    `starts` may pass an already computed `symbol_starts`."""
    row = pl.int_range(pl.len(), dtype=pl.Int32)
    first = symbol_starts() if starts is None else starts
    return row - pl.when(first).then(row).forward_fill()


@dataclass(frozen=True, slots=True)
class Presorted:
    """The fast form's view of a frame sorted by (symbol, ts), as expressions: each bar's
    position in its symbol and its symbol's run number.

    By default they are computed from the symbol column. `with_features` computes them
    once as columns and passes references, plus `shared`: subexpressions several features
    use (the log return, ...), computed once as columns. Polars' own common-subexpression
    pass does not look inside window expressions, which is where the fast form puts work.
    """

    row_in_symbol: pl.Expr = field(default_factory=row_in_symbol)
    run: pl.Expr = field(default_factory=symbol_run)
    shared: tuple[tuple[pl.Expr, str], ...] = ()
    """(expression, column holding its value) pairs."""

    def reuse(self, expr: pl.Expr) -> pl.Expr:
        """The column holding `expr` if it was computed in advance, else `expr`."""
        for computed, column in self.shared:
            if computed.meta.eq(expr):
                return pl.col(column)
        return expr

    def after_warmup(self, flat: pl.Expr, warmup: int) -> pl.Expr:
        """`flat` (computed over the whole sorted column) with each symbol's first `warmup`
        bars null: the bars whose windows reach into the previous symbol."""
        if warmup <= 0:
            return flat
        return pl.when(self.row_in_symbol >= warmup).then(flat)

    def over(self, expr: pl.Expr) -> pl.Expr:
        """`expr` per symbol, grouped by the integer run number instead of the string."""
        return expr.over(self.run)


def layout(presorted: bool | Presorted) -> Presorted | None:
    """The fast-form layout a feature's `presorted` argument asks for (None: `.over`)."""
    if isinstance(presorted, Presorted):
        return presorted
    return Presorted() if presorted else None


def _assertion(condition: pl.Expr, message: str) -> pl.Expr:
    """A scalar filter predicate that is True when `condition` holds, else raises."""

    def check(flag: pl.Series, **_: object) -> pl.Series:
        if not flag.all():
            raise ValueError(message)
        return flag

    return condition.map_batches(check, return_dtype=pl.Boolean, returns_scalar=True)


def guard(
    lf: pl.LazyFrame,
    *,
    presorted: bool | Presorted,
    null_free: Sequence[str] = (),
    non_empty: str | None = None,
) -> pl.LazyFrame:
    """`lf` unchanged, but collecting it raises ValueError if it breaks a precondition.

    With `presorted`, each symbol's bars must be contiguous and strictly increasing in ts
    (as after sorting by symbol, ts; the symbols themselves may come in any order) and the
    `null_free` columns must hold no nulls: what the fast form relies on. A `Presorted`
    lets the check reuse its row-in-symbol column. `non_empty`, when given, is the error
    message for a frame without rows.
    """
    if non_empty is not None:
        lf = lf.filter(_assertion(pl.len() > 0, non_empty))
    fast = layout(presorted)
    if fast is None:
        return lf
    starts, ts = fast.row_in_symbol == 0, pl.col(TS)
    # a symbol starts one run of bars only (symbols in any order, e.g. a database's
    # collation), and within a run time increases
    run_symbols = pl.col(SYMBOL).filter(starts)
    in_order = (run_symbols.n_unique() == run_symbols.len()) & (starts | (ts > ts.shift(1))).all()
    checks = [
        (
            in_order,
            "presorted features need each symbol's bars together and in time order, without "
            "duplicates (sort by symbol, ts) or presorted=False",
        )
    ]
    if null_free:
        checks.append(
            (
                pl.all_horizontal(pl.col(name).null_count() == 0 for name in null_free),
                f"presorted features need non-null {', '.join(null_free)}; drop the rows "
                "with missing prices (the ingest quality step does) or pass presorted=False",
            )
        )
    for condition, message in checks:
        lf = lf.filter(_assertion(condition, message))
    return lf
