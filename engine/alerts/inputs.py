"""What a set of alert rules reads, loaded from Postgres through engine.io.

The only module of engine.alerts that touches the database (and only via engine.io): it
loads the bars, filtered regime labels, regime names and signal history that the given
rules need, no more, with enough warm-up history for their indicators and confirmation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import polars as pl
import psycopg

from engine.alerts.conditions import AlertInputs, warmup_bars
from engine.alerts.rules import AlertRuleSpec, RegimeChange, SignalChange
from engine.io.alerts_inputs import load_label_window, load_signal_history, warmup_start
from engine.io.bars import load_bars
from engine.io.regimes import latest_run_ids, symbol_run_stats
from engine.regimes.stats import regime_names
from engine.schema import BAR_SCHEMA

__all__ = ["load_alert_inputs", "watched_symbols"]

RuleLike = AlertRuleSpec | tuple[int, AlertRuleSpec]


def _specs(rules: Iterable[RuleLike]) -> list[AlertRuleSpec]:
    return [rule[1] if isinstance(rule, tuple) else rule for rule in rules]


def watched_symbols(rules: Iterable[RuleLike], watchlist: Sequence[str]) -> list[str]:
    """Every symbol `rules` watch: their own symbols, plus `watchlist` if one asks for it."""
    wanted: list[str] = []
    for spec in _specs(rules):
        wanted += spec.symbols
        if spec.watchlist:
            wanted += watchlist
    return list(dict.fromkeys(wanted))


def _history_start(
    conn: psycopg.Connection,
    specs: Sequence[AlertRuleSpec],
    symbols: Sequence[str],
    *,
    history_bars: int,
    start: datetime | None,
    interval: str,
) -> datetime | None:
    """Where to start loading: `history_bars` (or the rules' longest warm-up) bars before
    `start` (before the newest bar when None); None (everything) if a rule needs it all."""
    warmups = [warmup_bars(spec.condition) for spec in specs]
    if any(bars is None for bars in warmups):
        return None
    needed = max([history_bars, *(bars for bars in warmups if bars is not None)])
    return warmup_start(conn, symbols, bars=needed, before=start, interval=interval)


def _regime_names(
    conn: psycopg.Connection, model: str, symbols: Sequence[str]
) -> dict[str, list[str]]:
    """symbol -> a name per regime, from the statistics of the newest run of `model`."""
    names: dict[str, list[str]] = {}
    stats = symbol_run_stats(conn, latest_run_ids(conn, model, symbols))
    for symbol, entry in stats.items():
        fitted: dict[str, Any] = entry.get("model") or {}
        variances = fitted.get("variances")
        if variances:
            names[symbol] = regime_names(model, variances)
    return names


def load_alert_inputs(
    conn: psycopg.Connection,
    rules: Iterable[RuleLike],
    symbols: Sequence[str],
    *,
    history_bars: int = 300,
    start: datetime | None = None,
    end: datetime | None = None,
    interval: str = "1d",
) -> AlertInputs:
    """The inputs `rules` (specs, or (id, spec) pairs) are evaluated on.

    `symbols` is the configured watchlist: what `watchlist: true` means. Bars, filtered
    labels and signals are loaded for the symbols the rules watch, from `history_bars`
    bars (or the rules' longest warm-up) before `start` (before the newest bar when None:
    live mode) up to `end`; from the beginning if a rule needs the whole history (a
    running peak). Only what the rules use is loaded: bars for bar-based rules, the
    labels and regime names of the models named, the signals of the strategies named.
    """
    specs = _specs(rules)
    wanted = watched_symbols(specs, symbols)
    begin = _history_start(
        conn, specs, wanted, history_bars=history_bars, start=start, interval=interval
    )
    watched = [spec.condition for spec in specs]
    models = list(dict.fromkeys(c.model for c in watched if isinstance(c, RegimeChange)))
    strategies = list(dict.fromkeys(c.strategy for c in watched if isinstance(c, SignalChange)))
    needs_bars = any(not isinstance(c, RegimeChange | SignalChange) for c in watched)
    if needs_bars and wanted:
        bars = load_bars(conn, wanted, start=begin, end=end, interval=interval)
    else:
        bars = pl.DataFrame(schema=BAR_SCHEMA)
    labels: dict[str, pl.DataFrame] = {
        m: load_label_window(conn, m, wanted, start=begin, end=end) for m in models
    }
    names: dict[str, dict[str, list[str]]] = {m: _regime_names(conn, m, wanted) for m in models}
    signals = None
    if strategies:
        signals = load_signal_history(conn, strategies, wanted, start=begin, end=end)
    return AlertInputs(
        bars=bars,
        labels=labels,
        signals=signals,
        watchlist=tuple(dict.fromkeys(symbols)),
        regime_names=names,
    )
