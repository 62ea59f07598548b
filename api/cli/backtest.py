"""`backtest`, `strategies`, `signals`: run strategies on stored bars, list them, see today's
targets."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import app, console, invalidate_cached_reads, progress_bar, ready_services
from engine.errors import ConfigError
from engine.io.backtests import json_safe
from engine.settings import get_settings

__all__ = ["backtest", "backtest_runs", "signals", "strategies"]

_TABLE_METRICS = (
    ("total_return", "total", "{:+.1%}"),
    ("cagr", "cagr", "{:+.1%}"),
    ("sharpe", "sharpe", "{:.2f}"),
    ("sortino", "sortino", "{:.2f}"),
    ("max_drawdown", "max dd", "{:.1%}"),
    ("exposure", "exposure", "{:.0%}"),
    ("trades", "trades", "{:d}"),
    ("win_rate", "win rate", "{:.0%}"),
    ("total_fees", "fees", "{:,.0f}"),
    ("benchmark_return", "benchmark", "{:+.1%}"),
)
_MAX_TABLE_ROWS = 30


def _out() -> Console:
    """stdout for tables: as wide as the terminal, or wide enough for every column when
    piped (rich would squeeze them into 80)."""
    return Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def _symbols(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r} is not key=value")
        params[key.strip()] = _value(value.strip())
    return params


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(int(value) if fmt == "{:d}" else value)
    except (TypeError, ValueError):
        return str(value)


def _metrics_table(
    frame: pl.DataFrame, grid: list[str], title: str | None = None, *, by_regime: bool = False
) -> Table:
    """Metrics per row of `frame`: symbol, grid parameters (and regime, share of time)."""
    columns = [
        c for c in ("symbol", *grid, *(["regime"] if by_regime else [])) if c in frame.columns
    ]
    shown = (*([("share_of_time", "time", "{:.0%}")] if by_regime else []), *_TABLE_METRICS)
    metrics = [m for m in shown if m[0] in frame.columns]
    table = Table(*columns, *(label for _, label, _ in metrics), box=None, title=title)
    for row in frame.iter_rows(named=True):
        if by_regime and row["regime"] is None:
            row["regime"] = "unknown"  # bars before the first label (model warm-up)
        table.add_row(
            *(str(row[c]) for c in columns), *(_cell(row[name], fmt) for name, _, fmt in metrics)
        )
    return table


def _records(
    metrics: pl.DataFrame, regimes: pl.DataFrame | None, grid: list[str]
) -> list[dict[str, Any]]:
    per_regime: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if regimes is not None:
        for row in regimes.iter_rows(named=True):
            key = (row.pop("key"), row.pop("symbol"))
            per_regime.setdefault(key, []).append(row)
    records = []
    for row in metrics.iter_rows(named=True):
        key = row.pop("key")
        params = json.loads(row.pop("params"))
        for name in grid:
            row.pop(name, None)
        record = {"symbol": row.pop("symbol"), "params": params, **row}
        if (key, record["symbol"]) in per_regime:
            record["regimes"] = per_regime[(key, record["symbol"])]
        records.append(record)
    return records


def _write_equity(result_equity: pl.DataFrame | None, path: Path) -> None:
    if result_equity is None:
        raise ConfigError("no equity curves were kept (a large sweep keeps metrics only)")
    if path.suffix == ".parquet":
        result_equity.write_parquet(path)
    else:
        result_equity.write_csv(path)
    console.print(f"equity curves written to {path} ({result_equity.height} rows)")


@app.command("backtest")
def backtest(
    strategy: Annotated[
        str | None, typer.Option(help="strategy name (see `regimelab strategies`).")
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="comma-separated symbols.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="parameter k=v.")] = None,
    grid: Annotated[
        list[str] | None, typer.Option("--grid", help="k=a:b:step (inclusive) or k=a,b,c.")
    ] = None,
    fees_bps: Annotated[float, typer.Option(help="fee per order, bps of its value.")] = 0.0,
    slippage_bps: Annotated[float, typer.Option(help="fill price moved against orders.")] = 0.0,
    price: Annotated[str, typer.Option(help="execute at the next bar's close or open.")] = "close",
    rebalance: Annotated[
        str, typer.Option(help="on_change, daily, weekly or monthly.")
    ] = "on_change",
    direction: Annotated[str, typer.Option(help="long, short or long_short.")] = "long_short",
    sizing: Annotated[str, typer.Option(help="fixed or vol_target.")] = "fixed",
    fraction: Annotated[float, typer.Option(help="weight multiplier (1 = all in).")] = 1.0,
    vol_target: Annotated[float, typer.Option(help="annual volatility target.")] = 0.15,
    max_leverage: Annotated[float, typer.Option(help="vol_target: weight cap.")] = 1.0,
    portfolio: Annotated[bool, typer.Option(help="one shared-cash portfolio.")] = False,
    weight_cap: Annotated[float, typer.Option(help="portfolio: cap per symbol.")] = 1.0,
    regime_model: Annotated[
        str | None, typer.Option(help="stored regime model (causal labels) for per-regime metrics.")
    ] = None,
    regime_reference: Annotated[
        str | None, typer.Option(help="symbol whose regime drives cross-asset strategies.")
    ] = None,
    benchmark: Annotated[str | None, typer.Option(help="benchmark symbol (default: own).")] = None,
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD.")] = None,
    init_cash: Annotated[float, typer.Option(help="starting equity.")] = 100_000.0,
    walk_forward: Annotated[
        str | None, typer.Option(help="train:test[:step] bars, e.g. 504:126.")
    ] = None,
    wf_metric: Annotated[str, typer.Option(help="walk-forward: metric to maximize.")] = "sharpe",
    wf_mode: Annotated[str, typer.Option(help="walk-forward: rolling or anchored.")] = "rolling",
    monte_carlo: Annotated[
        int, typer.Option(help="bootstrap paths of the strategy's returns (0 = off).")
    ] = 0,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="a JSON spec file (options then ignored).")
    ] = None,
    rerun: Annotated[
        int | None, typer.Option(help="run the stored spec of this run id again.")
    ] = None,
    save_as: Annotated[
        str | None, typer.Option(help="store the spec as a named strategy for live signals.")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    equity_out: Annotated[
        Path | None, typer.Option(help="write equity curves (csv, or .parquet).")
    ] = None,
    executor: Annotated[str, typer.Option(help="auto, local, pool or ray.")] = "auto",
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores).")] = None,
) -> None:
    """Backtest a strategy on stored bars; print metrics (per regime too); store the run."""
    from engine.backtest.runs import run_stored_backtest
    from engine.backtest.spec import BacktestSpec, parse_grid

    if output_format not in ("table", "json", "csv"):
        raise ConfigError("--format must be table, json or csv")
    settings = get_settings()
    walk = None
    if rerun is not None:
        spec, walk = _stored_spec(settings, rerun)
    elif spec_file is not None:
        try:
            text = spec_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read --spec {spec_file}: {exc.strerror}") from None
        spec = BacktestSpec.parse(text)
    else:
        if strategy is None or symbols is None:
            raise ConfigError("give --strategy and --symbols (or --spec FILE)")
        data: dict[str, Any] = {
            "strategy": strategy,
            "symbols": _symbols(symbols),
            "params": _params(param or []),
            "grid": parse_grid(grid or []),
            "start": start,
            "end": end,
            "benchmark": benchmark,
            "execution": {
                "price": price,
                "fees_bps": fees_bps,
                "slippage_bps": slippage_bps,
                "rebalance": rebalance,
                "init_cash": init_cash,
            },
            "sizing": {
                "kind": sizing,
                "fraction": fraction,
                "vol_target": vol_target,
                "max_leverage": max_leverage,
                "direction": direction,
            },
            "portfolio": {"weight_cap": weight_cap} if portfolio else None,
            "regimes": (
                {"model": regime_model, "reference": regime_reference} if regime_model else None
            ),
        }
        spec = BacktestSpec.parse(data)
    if walk is not None:
        _run_walk_forward(spec, walk, output_format, equity_out)
        return
    if walk_forward is not None:
        wf = _walk_forward_spec(walk_forward, wf_metric, wf_mode)
        _run_walk_forward(spec, wf, output_format, equity_out)
        return
    with ready_services(settings, cache=False) as endpoints, progress_bar("backtest") as progress:
        run_id, result = run_stored_backtest(
            endpoints.database_url,
            spec,
            executor=executor,  # type: ignore[arg-type]  # checked by run_sweep
            workers=workers,
            progress=progress,
            timeout=settings.connect_timeout,
            strategy_name=save_as,
            ray_address=settings.ray_address,
        )
    invalidate_cached_reads(settings, "backtests")
    _print_result(result, list(spec.grid), output_format)
    if monte_carlo > 0:
        _monte_carlo(result, monte_carlo)
    if equity_out is not None:
        _write_equity(result.equity, equity_out)
    sets = f"{len(result.keys)} parameter set(s) x {len(spec.symbols)} symbol(s)"
    console.print(f"run {run_id}: {spec.strategy}, {sets}")


def _print_result(result: Any, grid_names: list[str], output_format: str) -> None:
    if output_format == "json":
        records = _records(result.metrics, result.regime_metrics, grid_names)
        sys.stdout.write(json.dumps(json_safe(records), default=str) + "\n")
    elif output_format == "csv":
        sys.stdout.write(result.metrics.drop("key").write_csv())
    else:
        out = _out()
        shown = result.metrics
        if shown.height > _MAX_TABLE_ROWS and "sharpe" in shown.columns:
            shown = shown.sort("sharpe", descending=True, nulls_last=True).head(_MAX_TABLE_ROWS)
            out.print(
                f"top {_MAX_TABLE_ROWS} of {result.metrics.height} by sharpe (--format csv for all)"
            )
        out.print(_metrics_table(shown, grid_names))
        if (
            result.regime_metrics is not None
            and result.regime_metrics.height <= 4 * _MAX_TABLE_ROWS
        ):
            params = result.metrics.select("key", *grid_names).unique()
            out.print(
                _metrics_table(
                    result.regime_metrics.join(params, on="key", how="left"),
                    grid_names,
                    "per regime",
                    by_regime=True,
                )
            )


def _monte_carlo(result: Any, paths: int) -> None:
    from engine.backtest.montecarlo import monte_carlo

    if result.equity is None:
        raise ConfigError("--monte-carlo needs equity curves (a single parameter set)")
    out = _out()
    for (key, symbol), part in result.equity.group_by(["key", "symbol"], maintain_order=True):
        returns = part["equity"].pct_change().drop_nulls().to_numpy()
        summary = monte_carlo(returns, paths=paths).summary
        out.print(f"Monte Carlo, {symbol} ({key}), {paths} block-bootstrap paths:")
        out.print(summary)


def _walk_forward_spec(schedule: str, metric: str, mode: str) -> Any:
    from engine.backtest.walkforward import WalkForwardSpec
    from engine.strategies.base import SpecError

    try:
        numbers = [int(p) for p in schedule.split(":")]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3):
        raise ConfigError(f"--walk-forward {schedule!r} is not train:test[:step] (bars)")
    fields = dict(zip(("train", "test", "step"), numbers, strict=False))
    try:
        return msgspec.convert({**fields, "metric": metric, "mode": mode}, WalkForwardSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"walk-forward: {exc}") from None


def _run_walk_forward(spec: Any, wf: Any, output_format: str, equity_out: Path | None) -> None:
    from engine.backtest.runs import run_stored_walk_forward

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        progress_bar("walk-forward") as progress,
    ):
        run_id, result = run_stored_walk_forward(
            endpoints.database_url, spec, wf, progress=progress, timeout=settings.connect_timeout
        )
    invalidate_cached_reads(settings, "backtests")
    if output_format == "json":
        report = {
            "run_id": run_id,
            "metrics": result.metrics.to_dicts(),
            "windows": result.windows.to_dicts(),
            "stability": result.stability.to_dicts(),
        }
        sys.stdout.write(json.dumps(json_safe(report), default=str) + "\n")
    elif output_format == "csv":
        sys.stdout.write(result.windows.write_csv())
    else:
        out = _out()
        out.print(_metrics_table(result.metrics, [], title="out of sample"))
        out.print(result.windows.drop("key", "params"))
        out.print(result.stability)
    if equity_out is not None:
        _write_equity(result.equity, equity_out)
    count = result.windows["window"].n_unique()
    console.print(f"run {run_id}: walk-forward of {spec.strategy}, {count} window(s)")


def _stored_spec(settings: Any, run_id: int) -> tuple[Any, Any]:
    from engine.backtest.runs import stored_spec
    from engine.io.backtests import load_backtest_run
    from engine.io.db import connect

    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        run = load_backtest_run(conn, run_id)
    if run is None:
        raise ConfigError(f"no backtest run {run_id}")
    return stored_spec(run)


@app.command("backtest-runs")
def backtest_runs(
    limit: Annotated[int, typer.Option(help="how many, newest first.", min=1)] = 20,
) -> None:
    """The stored backtest runs: id, strategy, symbols, status (rerun with --rerun ID)."""
    from engine.io.backtests import list_backtest_runs
    from engine.io.db import connect

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        runs = list_backtest_runs(conn, limit=limit)
    table = Table("id", "kind", "strategy", "symbols", "status", "created", "error", box=None)
    for row in runs.iter_rows(named=True):
        symbols = ",".join(row["symbols"][:5]) + (" …" if len(row["symbols"]) > 5 else "")
        table.add_row(
            str(row["id"]),
            row["kind"],
            row["strategy"] or "-",
            symbols,
            row["status"],
            f"{row['created_at']:%Y-%m-%d %H:%M}",
            row["error"] or "",
        )
    _out().print(table)


@app.command("strategies")
def strategies() -> None:
    """List the built-in and registered strategies with their parameters."""
    from engine.strategies.base import get_strategy, strategy_names

    out = _out()
    table = Table("strategy", "parameters (defaults)", "description", box=None)
    for name in strategy_names():
        definition = get_strategy(name)
        defaults = msgspec.to_builtins(definition.params())
        table.add_row(name, json.dumps(defaults), definition.description)
    out.print(table)


@app.command("signals")
def signals(
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="stored strategy (default: all).")
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Compute and store today's targets of stored strategies (see `backtest --save-as`)."""
    from engine.backtest.runs import compute_signals

    settings = get_settings()
    with ready_services(settings, cache=False) as endpoints:
        frame = compute_signals(endpoints.database_url, strategy, timeout=settings.connect_timeout)
    invalidate_cached_reads(settings, "signals")
    if frame.is_empty():
        console.print("no stored strategies: save one with `regimelab backtest ... --save-as NAME`")
        return
    if output_format == "json":
        sys.stdout.write(json.dumps(json_safe(frame.to_dicts()), default=str) + "\n")
        return
    out = _out()
    table = Table("strategy", "symbol", "as of", "target", "regime", "p", box=None)
    for row in frame.iter_rows(named=True):
        table.add_row(
            row["strategy"],
            row["symbol"],
            f"{row['ts']:%Y-%m-%d}",
            f"{row['target']:+.2f}",
            "-" if row["regime"] is None else str(row["regime"]),
            "-" if row["regime_prob"] is None else f"{row['regime_prob']:.2f}",
        )
    out.print(table)
