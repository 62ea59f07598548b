"""`backup PATH` and `restore PATH`: every table's rows to a folder and back (docs/backup.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli._app import app, console, invalidate_cached_reads, progress_bar, ready_services
from engine.io.services import Services
from engine.settings import get_settings

__all__ = ["backup", "restore"]

# Cached API reads that a restore makes stale, besides each symbol's bars.
_DATA_SCOPES = ("instruments", "regimes", "backtests", "signals", "analogs")


@app.command()
def backup(
    path: Annotated[Path, typer.Argument(help="folder to write (a previous backup is replaced).")],
) -> None:
    """Back up every table's rows (one consistent snapshot) to the folder PATH."""
    from engine.io.backup import backup_database

    settings = get_settings()
    # no migration check: backing up before migrating is the point of a backup
    with Services(settings, cache=False) as services, progress_bar("backup") as update:
        assert services.endpoints is not None
        manifest = backup_database(
            services.endpoints.database_url,
            path,
            timeout=settings.connect_timeout,
            progress=update,
        )
    console.print(
        f"backed up {len(manifest.tables)} tables ({manifest.rows} rows, schema "
        f"{manifest.migrations[-1] if manifest.migrations else 'empty'}) to {path}"
    )


@app.command()
def restore(
    path: Annotated[Path, typer.Argument(help="a folder written by `regimelab backup`.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="delete the database's data first.")
    ] = False,
) -> None:
    """Restore the backup folder PATH into the database, in one transaction.

    The database must be migrated to the backup's schema version and hold no data, unless
    --replace (its data is deleted in the same transaction).
    """
    from engine.io.backup import read_manifest, restore_database, stored_symbols

    settings = get_settings()
    read_manifest(path)  # a bad path fails before any server starts
    with ready_services(settings, cache=False) as endpoints, progress_bar("restore") as update:
        before = stored_symbols(endpoints.database_url) if replace else set()
        manifest = restore_database(
            endpoints.database_url,
            path,
            replace=replace,
            timeout=settings.connect_timeout,
            progress=update,
        )
        after = stored_symbols(endpoints.database_url)
    invalidate_cached_reads(
        settings, *_DATA_SCOPES, *(f"bars:{symbol}" for symbol in sorted(before | after))
    )
    console.print(
        f"restored {len(manifest.tables)} tables ({manifest.rows} rows) from {path} "
        f"(backup of {manifest.created_at})"
    )
