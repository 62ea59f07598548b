"""`ingest`, `providers`, `instruments`: market data in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from api.cli._app import app, parse_date, parse_options, progress_bar, ready_services
from engine.errors import ConfigError
from engine.io.services import Services
from engine.settings import get_settings


@app.command()
def ingest(
    provider: Annotated[
        str, typer.Option(help="provider name (see `regimelab providers`).")
    ] = "sample",
    symbols: Annotated[
        str | None,
        typer.Option(
            help="comma-separated symbols (synthetic: a count, e.g. 500; files: all if omitted)."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD (UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD (UTC).")] = None,
    interval: Annotated[
        str, typer.Option(help="bar interval: 1m 5m 15m 30m 1h 4h 1d 1wk 1mo.")
    ] = "1d",
    full: Annotated[
        bool, typer.Option("--full", help="refetch everything, not only what is missing.")
    ] = False,
    path: Annotated[
        Path | None, typer.Option(help="files provider: a CSV/Parquet file or folder.")
    ] = None,
    mapping: Annotated[
        str | None,
        typer.Option(
            "--map", help="files provider: canonical=source columns, e.g. ts=Date,close=Close."
        ),
    ] = None,
    opt: Annotated[
        list[str] | None, typer.Option("--opt", help="provider option key=value (repeatable).")
    ] = None,
) -> None:
    """Fetch bars from a provider (through the Redis cache) and load them into Postgres."""
    from engine.ingest.service import build_request, run_ingest

    settings = get_settings()
    options: dict[str, object] = dict(parse_options(opt or []))
    if path is not None:
        options["path"] = str(path)
    if mapping:
        from engine.providers.files import parse_mapping

        try:
            options["mapping"] = parse_mapping(mapping)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        request = build_request(
            provider,
            symbols,
            start=parse_date(start, "--start"),
            end=parse_date(end, "--end"),
            interval=interval,
            full=full,
            options=options,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with ready_services(settings) as endpoints, progress_bar("ingest") as progress:
        result = run_ingest(
            settings,
            request,
            database_url=endpoints.database_url,
            redis_url=endpoints.redis_url,
            progress=progress,
        )
    typer.echo(
        f"run {result.run_id}: {result.symbols} symbol(s), {result.rows_fetched} rows fetched, "
        f"{result.rows_upserted} inserted or updated, {result.rows_rejected} rejected"
        + (
            f", {result.quality.calendar_gaps} calendar gap(s)"
            if result.quality.calendar_gaps
            else ""
        )
        + (f", {result.true_regimes} true regime labels" if result.true_regimes else "")
    )


@app.command()
def providers() -> None:
    """List market-data providers: credentials, default cache TTL, intervals."""
    from rich.table import Table

    from engine.providers.registry import providers as all_providers

    settings = get_settings()
    configured = settings.credentials
    table = Table("provider", "credentials", "TTL s", "intervals", "description", box=None)
    for provider in all_providers():
        fetcher = provider.fetcher("bars")
        creds = ", ".join(
            f"{name} {'✓' if name in configured else '(missing)'}" for name in provider.credentials
        )
        table.add_row(
            provider.name,
            creds or "none needed",
            str(settings.ttl_overrides.get((provider.name, "bars"), fetcher.default_ttl)),
            " ".join(fetcher.intervals),
            provider.description,
        )
    Console(soft_wrap=True).print(table)


@app.command()
def instruments(
    provider: Annotated[
        str | None, typer.Option(help="search this provider instead of the database.")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="text to look for in symbols and names.")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows.", min=1, max=1000)] = 50,
) -> None:
    """List stored instruments, or search a provider's (`--provider P --search TEXT`)."""
    from rich.table import Table

    settings = get_settings()
    if provider is not None:
        from engine.ingest.service import search_instruments

        if not search:
            raise ConfigError("--provider needs --search TEXT")
        with Services(settings, check=False) as services:
            assert services.endpoints is not None
            found = search_instruments(
                settings, provider, search, limit=limit, redis_url=services.endpoints.redis_url
            )
    else:
        from engine.io.bars import list_instruments
        from engine.io.db import connect

        with (
            ready_services(settings, cache=False) as endpoints,
            connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
        ):
            found = list_instruments(conn).head(limit)
    table = Table(*found.columns, box=None)
    for row in found.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=True).print(table)
