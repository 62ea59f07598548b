"""`analogs SYMBOL`: the periods most like a symbol's today, and what happened next."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Literal

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import app, invalidate_cached_reads, parse_date, progress_bar, ready_services
from engine.errors import ConfigError
from engine.io.db import connect
from engine.settings import get_settings


def _horizons(text: str) -> tuple[int, ...]:
    from engine.analogs.service import AnalogError, parse_horizons

    try:
        return parse_horizons(text)
    except AnalogError as exc:
        raise ConfigError(f"--horizons {text!r}: {exc}") from None


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:+.1%}"


@app.command("analogs")
def analogs(
    symbol: Annotated[str, typer.Argument(help="a stored symbol, e.g. SPX.")],
    date: Annotated[
        str | None, typer.Option(help="query date YYYY-MM-DD (default: the latest bar).")
    ] = None,
    k: Annotated[int, typer.Option(help="analogs to show (1-1000).")] = 10,
    horizons: Annotated[str, typer.Option(help="forward horizons in bars.")] = "5,21,63",
    universe: Annotated[
        str | None, typer.Option(help="comma-separated symbols analogs may come from.")
    ] = None,
    exclude_recent_days: Annotated[
        int, typer.Option(help="also skip analogs this many days before the date.")
    ] = 0,
    exact: Annotated[bool, typer.Option(help="brute-force search instead of HNSW.")] = False,
    rebuild: Annotated[
        bool, typer.Option(help="recompute every stored state first (after a regime refit).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables.")] = False,
) -> None:
    """Find the k earlier market states most like SYMBOL's on a date (one per episode), with
    their forward returns and distribution. States of new bars are embedded first."""
    from engine.analogs.service import build_states, default_spec, find_analogs

    settings = get_settings()
    spec = default_spec(settings)
    when = parse_date(date, "--date")
    horizon_list = _horizons(horizons)
    method: Literal["hnsw", "exact"] = "exact" if exact else "hnsw"
    members = None if universe is None else [s.strip() for s in universe.split(",") if s.strip()]
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout, autocommit=True) as conn,
    ):
        with progress_bar("embed") as progress:
            report = build_states(conn, None, spec, full=rebuild, progress=progress)
        if report.states:
            invalidate_cached_reads(settings, "analogs")
        found = find_analogs(
            conn,
            symbol,
            date=None if when is None else when + timedelta(days=1, microseconds=-1),
            k=k,
            horizons=horizon_list,
            universe=members,
            exclude_recent_days=exclude_recent_days,
            spec=spec,
            method=method,
        )
    if as_json:
        print(
            json.dumps(
                {
                    "symbol": found.symbol,
                    "ts": found.ts.isoformat(),
                    "version": found.version,
                    "cutoff": found.cutoff.isoformat(),
                    "analogs": found.analogs.to_dicts(),
                    "distribution": found.distribution.to_dicts(),
                },
                default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
            )
        )
        return
    out = Console(soft_wrap=True)
    returns = [f"ret_{h}" for h in found.horizons]
    table = Table(
        "#",
        "symbol",
        "date",
        "distance",
        "regime",
        *(f"+{h} bars" for h in found.horizons),
        title=f"{found.symbol} on {found.ts:%Y-%m-%d}: nearest earlier states "
        f"({found.method}, {found.version}, none after {found.cutoff:%Y-%m-%d})",
        box=None,
    )
    for row in found.analogs.iter_rows(named=True):
        regime = "" if row["regime"] is None else str(row["regime"])
        table.add_row(
            str(row["rank"]),
            row["symbol"],
            f"{row['ts']:%Y-%m-%d}",
            f"{row['distance']:.3f}",
            regime,
            *(_percent(row[r]) for r in returns),
        )
    out.print(table)
    summary = Table(
        "horizon",
        "analogs",
        "median",
        "q10",
        "q90",
        "positive",
        title="what happened next",
        box=None,
    )
    for row in found.distribution.filter(pl.col("count") > 0).iter_rows(named=True):
        summary.add_row(
            f"{row['horizon']} bars",
            str(row["count"]),
            _percent(row["median"]),
            _percent(row["q10"]),
            _percent(row["q90"]),
            f"{row['share_positive']:.0%}",
        )
    out.print(summary)
