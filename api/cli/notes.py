"""`notes add | list | search`: research notes, found by meaning or by words."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli._app import app, parse_date, ready_services
from engine.io.db import connect
from engine.settings import get_settings

notes_app = typer.Typer(help="Write research notes and find them by meaning or by words.")
app.add_typer(notes_app, name="notes")


@notes_app.command("add")
def add(
    title: Annotated[str, typer.Option(help="one line.")],
    body: Annotated[str, typer.Option(help="the note.")],
    symbol: Annotated[str | None, typer.Option(help="the symbol it is about.")] = None,
    date: Annotated[str | None, typer.Option(help="the day it is about, YYYY-MM-DD.")] = None,
    regime: Annotated[int | None, typer.Option(help="the regime it is about.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable).")] = None,
) -> None:
    """Store a note (embedded by the local model when one is installed); prints its id."""
    from engine.analogs.notes import local_embedder
    from engine.io.notes import create_note

    settings = get_settings()
    day = parse_date(date, "--date")
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        note = create_note(
            conn,
            title=title,
            body=body,
            symbol=symbol,
            day=None if day is None else day.date(),
            regime=regime,
            tags=tag or [],
            embedder=local_embedder(),
        )
    print(note["id"])


def _table(rows: list[dict[str, object]], title: str, score: bool) -> Table:
    table = Table("id", "title", "symbol", "day", "tags", *(["score"] if score else []), box=None)
    table.title = title
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["title"]),
            str(row["symbol"] or ""),
            str(row["day"] or ""),
            ",".join(row["tags"] or []),  # type: ignore[arg-type]
            *([f"{row['score']:.3f}"] if score else []),
        )
    return table


@notes_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="what to look for.")],
    k: Annotated[int, typer.Option(help="notes to show.", min=1, max=100)] = 10,
    symbol: Annotated[str | None, typer.Option(help="only notes about this symbol.")] = None,
    fulltext: Annotated[bool, typer.Option(help="search by words even with a model.")] = False,
) -> None:
    """The notes most like QUERY: by meaning with a local model, else by words."""
    from engine.analogs.notes import local_embedder
    from engine.io.notes import search_notes

    settings = get_settings()
    embedder = None if fulltext else local_embedder()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        hits = search_notes(conn, query, k=k, embedder=embedder, symbol=symbol)
        conn.commit()  # notes embedded on the way are kept
    how = f"by meaning ({hits.model})" if hits.method == "semantic" else "by words (full text)"
    Console(soft_wrap=True).print(_table(hits.notes, f"notes found {how}", score=True))


@notes_app.command("list")
def list_(
    symbol: Annotated[str | None, typer.Option(help="only notes about this symbol.")] = None,
    limit: Annotated[int, typer.Option(help="notes to show.", min=1, max=1000)] = 50,
) -> None:
    """Notes, newest first."""
    from engine.io.notes import list_notes

    settings = get_settings()
    with (
        ready_services(settings, cache=False) as endpoints,
        connect(endpoints.database_url, timeout=settings.connect_timeout) as conn,
    ):
        rows, total = list_notes(conn, symbol=symbol, limit=limit)
    Console(soft_wrap=True).print(_table(rows, f"{total} notes", score=False))
