"""Research notes in Postgres: write, list, delete, and search by meaning or by words.

With an embedder (`engine.analogs.notes.local_embedder()`), a note's title and body are
embedded when written and a search ranks notes by cosine similarity to the query's vector
(notes written before the model was installed are embedded on the next search). Without
one, a search is PostgreSQL full-text search (`websearch_to_tsquery`, English), and the
result says which method answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from engine.analogs.notes import NoteEmbedder
from engine.io.db import vector_literal

__all__ = [
    "NoteHits",
    "create_note",
    "delete_note",
    "embed_missing",
    "get_note",
    "list_notes",
    "search_notes",
]

SearchMethod = Literal["semantic", "fulltext"]
_COLUMNS: Final = (
    "id, title, body, symbol, day, regime, tags, embedding_model, created_at, updated_at"
)
_DOCUMENT: Final = "to_tsvector('english', title || ' ' || body)"


def _text(title: str, body: str) -> str:
    return f"{title}\n{body}"


def _dicts(
    conn: psycopg.Connection, query: str | sql.Composed, params: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """The rows of `query` as dicts by column name."""
    return conn.cursor(row_factory=dict_row).execute(query, params).fetchall()


def create_note(
    conn: psycopg.Connection,
    *,
    title: str,
    body: str,
    symbol: str | None = None,
    day: date | None = None,
    regime: int | None = None,
    tags: Sequence[str] = (),
    embedder: NoteEmbedder | None = None,
) -> dict[str, Any]:
    """The stored note (embedded when an embedder is given)."""
    vector = model = None
    if embedder is not None:
        vector, model = vector_literal(embedder.embed([_text(title, body)])[0]), embedder.name
    with conn.transaction():
        inserted = _dicts(
            conn,
            "INSERT INTO research_notes (title, body, symbol, day, regime, tags, embedding, "
            "embedding_model) VALUES (%s, %s, %s, %s, %s, %s, %s::vector, %s) "
            f"RETURNING {_COLUMNS}",
            (title, body, symbol, day, regime, list(tags), vector, model),
        )
        return inserted[0]


def get_note(conn: psycopg.Connection, note_id: int) -> dict[str, Any] | None:
    """One note, or None."""
    rows = _dicts(conn, f"SELECT {_COLUMNS} FROM research_notes WHERE id = %s", (note_id,))
    return rows[0] if rows else None


def _filters(symbol: str | None, regime: int | None, tag: str | None) -> sql.Composable:
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    if symbol is not None:
        where.append(sql.SQL("symbol = {}").format(sql.Literal(symbol)))
    if regime is not None:
        where.append(sql.SQL("regime = {}").format(sql.Literal(regime)))
    if tag is not None:
        where.append(sql.SQL("{} = ANY(tags)").format(sql.Literal(tag)))
    return sql.SQL(" AND ").join(where)


def list_notes(
    conn: psycopg.Connection,
    *,
    symbol: str | None = None,
    regime: int | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """A page of notes, newest first, and how many match."""
    where = _filters(symbol, regime, tag)
    rows = _dicts(
        conn,
        sql.SQL(
            "SELECT " + _COLUMNS + ", count(*) OVER () AS total FROM research_notes WHERE {} "
            "ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {}"
        ).format(where, sql.Literal(limit), sql.Literal(offset)),
    )
    if rows:
        return [{k: v for k, v in r.items() if k != "total"} for r in rows], int(rows[0]["total"])
    total = conn.execute(
        sql.SQL("SELECT count(*) FROM research_notes WHERE {}").format(where)
    ).fetchone()
    return [], int(total[0]) if total else 0


def delete_note(conn: psycopg.Connection, note_id: int) -> bool:
    """Whether a note was deleted."""
    with conn.transaction():
        cur = conn.execute("DELETE FROM research_notes WHERE id = %s", (note_id,))
        return cur.rowcount > 0


def embed_missing(conn: psycopg.Connection, embedder: NoteEmbedder, batch: int = 500) -> int:
    """Embed notes without a vector of `embedder`'s model; returns how many."""
    done = 0
    while True:
        rows = conn.execute(
            "SELECT id, title, body FROM research_notes WHERE embedding IS NULL "
            "OR embedding_model IS DISTINCT FROM %s ORDER BY id LIMIT %s",
            (embedder.name, batch),
        ).fetchall()
        if not rows:
            return done
        vectors = embedder.embed([_text(title, body) for _, title, body in rows])
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "UPDATE research_notes SET embedding = %s::vector, embedding_model = %s "
                "WHERE id = %s",
                [
                    (vector_literal(v), embedder.name, note_id)
                    for (note_id, _, _), v in zip(rows, vectors, strict=True)
                ],
            )
        done += len(rows)


@dataclass(frozen=True, slots=True)
class NoteHits:
    """Notes matching a search, best first, and how they were found."""

    method: SearchMethod
    model: str | None
    notes: list[dict[str, Any]]
    """each note's columns plus `score` (cosine similarity, or full-text rank)"""


def search_notes(
    conn: psycopg.Connection,
    query: str,
    *,
    k: int = 10,
    embedder: NoteEmbedder | None = None,
    symbol: str | None = None,
    regime: int | None = None,
    tag: str | None = None,
) -> NoteHits:
    """The `k` notes most like `query`: by meaning with an embedder, else by words."""
    where = _filters(symbol, regime, tag)
    if embedder is not None:
        embed_missing(conn, embedder)
        vector = vector_literal(embedder.embed([query])[0])
        hits = _dicts(
            conn,
            sql.SQL(
                "SELECT " + _COLUMNS + ", 1 - (embedding <=> {q}::vector) AS score "
                "FROM research_notes WHERE embedding_model = {model} AND {where} "
                "ORDER BY embedding <=> {q}::vector, id LIMIT {k}"
            ).format(
                q=sql.Literal(vector),
                model=sql.Literal(embedder.name),
                where=where,
                k=sql.Literal(k),
            ),
        )
        return NoteHits("semantic", embedder.name, hits)
    hits = _dicts(
        conn,
        sql.SQL(
            "SELECT " + _COLUMNS + ", ts_rank(" + _DOCUMENT + ", q) AS score "
            "FROM research_notes, websearch_to_tsquery('english', {query}) q "
            "WHERE " + _DOCUMENT + " @@ q AND {where} ORDER BY score DESC, id LIMIT {k}"
        ).format(query=sql.Literal(query), where=where, k=sql.Literal(k)),
    )
    return NoteHits("fulltext", None, hits)
