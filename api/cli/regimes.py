"""`regimes fit | labels | snapshot`: fit regime models, export labels, see current regimes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import (
    app,
    invalidate_cached_reads,
    parse_date,
    parse_options,
    progress_bar,
    ready_services,
)
from engine.errors import ConfigError
from engine.io.db import connect
from engine.settings import get_settings

regimes_app = typer.Typer(help="Fit regime models, export their labels, see current regimes.")
app.add_typer(regimes_app, name="regimes")

Symbols = Annotated[str, typer.Option(help="comma-separated symbols (stored bars).")]
Model = Annotated[str, typer.Option(help="rules, hmm, markov_switching, jump or changepoint.")]


def _symbols(text: str) -> list[str]:
    symbols = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not symbols:
        raise ConfigError("--symbols needs at least one symbol")
    return symbols


def _coerce(value: str) -> object:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@regimes_app.command("fit")
def fit(
    model: Model,
    symbols: Symbols,
    states: Annotated[int, typer.Option(help="number of regimes.", min=2, max=8)] = 2,
    features: Annotated[
        str, typer.Option(help="comma-separated features; the first is the return.")
    ] = "log_return",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="model parameter key=value.")
    ] = None,
    walk_forward: Annotated[
        str | None, typer.Option(help="expanding or rolling: out-of-sample refits.")
    ] = None,
    min_train: Annotated[
        int, typer.Option(help="walk-forward: bars before the first label.")
    ] = 504,
    refit_every: Annotated[int, typer.Option(help="walk-forward: bars between refits.")] = 21,
    window: Annotated[int | None, typer.Option(help="rolling walk-forward: training bars.")] = None,
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD.")] = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores).")] = None,
) -> None:
    """Fit a regime model on stored bars; store the run and its filtered and smoothed labels."""
    from engine.regimes.fitting import WalkForward
    from engine.regimes.runs import run_regime_fit
    from engine.regimes.service import RegimeSpec

    settings = get_settings()
    try:
        schedule = None
        if walk_forward is not None:
            schedule = WalkForward(
                mode=walk_forward,  # type: ignore[arg-type]  # validated by WalkForward
                min_train=min_train,
                refit_every=refit_every,
                window=window,
            )
        spec = RegimeSpec(
            model=model,
            n_states=states,
            features=tuple(f.strip() for f in features.split(",") if f.strip()),
            params={k: _coerce(v) for k, v in parse_options(param or []).items()},
            walk_forward=schedule,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with ready_services(settings, cache=False) as endpoints, progress_bar("fit") as progress:
        run_id, result = run_regime_fit(
            endpoints.database_url,
            spec,
            _symbols(symbols),
            start=parse_date(start, "--start"),
            end=parse_date(end, "--end"),
            workers=workers,
            progress=progress,
            timeout=settings.connect_timeout,
        )
    invalidate_cached_reads(settings, "regimes")
    out = Console(soft_wrap=True)
    table = Table(
        "symbol", "regime", "bars", "share", "mean return", "volatility", "sharpe", box=None
    )
    for row in result.statistics.iter_rows(named=True):
        table.add_row(
            row["symbol"],
            str(row["regime"]),
            str(row["bars"]),
            f"{row['share_of_time']:.1%}",
            f"{row['mean_return']:+.1%}",
            f"{row['volatility']:.1%}",
            f"{row['sharpe']:.2f}",
        )
    out.print(table)
    for row in result.current.iter_rows(named=True):
        out.print(
            f"{row['symbol']}: regime {row['regime']} since {row['days_in_regime']} bar(s) "
            f"(p = {row['probability']:.2f}, as of {row['ts']:%Y-%m-%d})"
        )
    for symbol, reason in result.failures.items():
        out.print(f"[yellow]{symbol}: not fitted: {reason}[/]")
    typer.echo(
        f"run {run_id}: {spec.model}, {spec.n_states} regimes, {len(result.params)} symbol(s)"
    )


@regimes_app.command("labels")
def labels(
    model: Model,
    symbols: Symbols,
    kind: Annotated[
        str, typer.Option(help="filtered (causal) or smoothed (research).")
    ] = "filtered",
    output_format: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="write here instead of stdout.")] = None,
    run: Annotated[
        int | None, typer.Option(help="a run id (default: the newest per symbol).")
    ] = None,
) -> None:
    """Export labels as symbol, ts, regime, prob_0..prob_{K-1}."""
    from engine.io.regimes import load_labels, wide_labels

    if kind not in ("filtered", "smoothed"):
        raise ConfigError("--kind must be filtered or smoothed")
    if output_format not in ("csv", "parquet", "json"):
        raise ConfigError("--format must be csv, parquet or json")
    if output_format == "parquet" and out is None:
        raise ConfigError("parquet is binary: give --out FILE")
    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        frame = load_labels(conn, model, _symbols(symbols), kind=kind, run_id=run)  # type: ignore[arg-type]
    if frame.is_empty():
        raise ConfigError(
            f"no {kind} labels of model {model} for {symbols}: run `regimelab regimes fit`"
        )
    _write(wide_labels(frame), output_format, out)  # type: ignore[arg-type]


def _write(
    frame: pl.DataFrame, output_format: Literal["csv", "parquet", "json"], out: Path | None
) -> None:
    if output_format == "parquet":
        assert out is not None
        frame.write_parquet(out)
        return
    text = frame.write_csv() if output_format == "csv" else frame.write_ndjson()
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


@regimes_app.command("snapshot")
def snapshot(model: Model, symbols: Symbols) -> None:
    """The current regime of each symbol: regime, probability, days in regime."""
    from engine.io.regimes import regime_snapshot

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        frame = regime_snapshot(conn, model, _symbols(symbols))
    table = Table(*frame.columns, box=None)
    for row in frame.iter_rows():
        table.add_row(*(str(v) for v in row))
    Console(soft_wrap=True).print(table)
