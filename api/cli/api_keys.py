"""`api-keys create | list | revoke`: the keys API consumers and the dashboard send."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import app, console, ready_services
from engine.settings import get_settings

__all__ = ["create", "list_keys", "revoke"]

keys_app = typer.Typer(help="Create, list and revoke API keys (stored as digests only).")
app.add_typer(keys_app, name="api-keys")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="a name to tell the key apart.")],
    scopes: Annotated[str, typer.Option(help="comma-separated: read, write, admin.")] = "read",
) -> None:
    """Create a key. It is printed once, alone on the last line of stdout; keep it."""
    from engine.io.api_keys import create_api_key, parse_scopes, server_secret
    from engine.io.db import connect

    settings = get_settings()
    parse_scopes(scopes)  # bad scopes fail before any server starts
    secret = server_secret(settings)
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        record, key = create_api_key(conn, name, scopes, secret)  # committed at the end
    console.print(
        f"created API key {record.name!r} ({record.prefix}, scopes: {', '.join(record.scopes)}); "
        "it is shown once, below"
    )
    typer.echo(key)


@keys_app.command("list")
def list_keys() -> None:
    """The keys: name, prefix, scopes, created, last used, revoked."""
    from engine.io.api_keys import list_api_keys
    from engine.io.db import connect

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        keys = list_api_keys(conn)
    table = Table("name", "prefix", "scopes", "created", "last used", "revoked", box=None)
    for key in keys:
        table.add_row(
            key.name,
            key.prefix,
            ",".join(key.scopes),
            f"{key.created_at:%Y-%m-%d %H:%M}",
            "-" if key.last_used_at is None else f"{key.last_used_at:%Y-%m-%d %H:%M}",
            "-" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}",
        )
    Console(soft_wrap=True).print(table)


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name.")]) -> None:
    """Revoke a key: it stops working at once (the row stays, for the record)."""
    from engine.io.api_keys import revoke_api_key
    from engine.io.db import connect

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        record = revoke_api_key(conn, name)  # committed when the block ends
    console.print(f"revoked API key {record.name!r} ({record.prefix})")
