"""Request and response types of the research-note routes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from api.domain.regimes.schemas import SYMBOL_PATTERN

__all__ = ["Note", "NoteCreate", "NoteHit", "NoteSearchResult"]

_TEXT = r"^[^\x00]*$"  # Postgres text cannot hold NUL


class NoteCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A research note about a symbol, a day and/or a regime."""

    title: Annotated[str, Meta(min_length=1, max_length=200, pattern=_TEXT)]
    body: Annotated[str, Meta(min_length=1, max_length=20_000, pattern=_TEXT)]
    symbol: Annotated[str, Meta(pattern=SYMBOL_PATTERN)] | None = None
    day: date | None = None
    regime: Annotated[int, Meta(ge=0, le=16)] | None = None
    tags: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[\w.:-]+$")]],
        Meta(max_length=20),
    ] = msgspec.field(default_factory=list)


class Note(NoteCreate, kw_only=True):
    """A stored note."""

    id: int
    embedding_model: str | None
    """the local model that embedded it (null: only full-text search finds it)"""
    created_at: datetime
    updated_at: datetime


class NoteHit(msgspec.Struct, kw_only=True):
    note: Note
    score: float
    """cosine similarity (semantic) or full-text rank: higher is closer"""


class NoteSearchResult(msgspec.Struct, kw_only=True):
    """Notes matching a query, best first, and which search answered."""

    method: Literal["semantic", "fulltext"]
    """semantic: a local embedding model ranked by meaning; fulltext: PostgreSQL full-text
    search (no model installed, or `method=fulltext` asked for)"""
    model: str | None
    items: list[NoteHit]
