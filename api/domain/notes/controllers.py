"""Research-note routes: create, list, read, delete, and search by meaning or words."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler

from api.domain.notes import services
from api.domain.notes.schemas import Note, NoteCreate, NoteSearchResult
from api.domain.regimes.schemas import SYMBOL_PATTERN
from api.lib.auth import requires
from api.lib.deps import Database
from api.lib.pagination import Page, Pagination

__all__ = ["ROUTES", "NoteController"]

NoteId = Annotated[int, Parameter(ge=1, le=2**31 - 1)]
SymbolFilter = Annotated[
    str | None, Parameter(pattern=SYMBOL_PATTERN, max_length=40, description="a symbol")
]
RegimeFilter = Annotated[int | None, Parameter(ge=0, le=16, description="a regime")]
TagFilter = Annotated[
    str | None, Parameter(pattern=r"^[\w.:-]+$", max_length=40, description="a tag")
]


class NoteController(Controller):
    """Research notes attached to symbols, days and regimes."""

    path = "/notes"
    tags = ["notes"]  # noqa: RUF012  (Litestar declares it as a plain attribute)

    @post(
        "/",
        operation_id="createNote",
        summary="Write a research note",
        guards=[requires("write")],
        status_code=HTTP_201_CREATED,
    )
    async def create(self, data: JSONBody[NoteCreate], database: NamedDependency[Database]) -> Note:
        """The stored note (embedded by the local model when one is installed)."""
        return await services.create(database, data)

    @get("/", operation_id="listNotes", summary="Research notes, newest first")
    async def list_notes(
        self,
        *,
        database: NamedDependency[Database],
        page: NamedDependency[Pagination],
        symbol: SymbolFilter = None,
        regime: RegimeFilter = None,
        tag: TagFilter = None,
    ) -> Page[Note]:
        """Notes, optionally of one symbol, regime or tag."""
        return await services.list_page(database, page, symbol, regime, tag)

    @get("/search", operation_id="searchNotes", summary="Find notes by meaning or by words")
    async def search(
        self,
        *,
        database: NamedDependency[Database],
        q: Annotated[str, Parameter(min_length=1, max_length=500, description="the query")],
        k: Annotated[int, Parameter(ge=1, le=100, description="notes to return")] = 10,
        method: Annotated[
            Literal["auto", "semantic", "fulltext"],
            Parameter(description="auto: semantic when a local model is installed"),
        ] = "auto",
        symbol: SymbolFilter = None,
        regime: RegimeFilter = None,
        tag: TagFilter = None,
    ) -> NoteSearchResult:
        """The `k` best notes; `method` in the answer says which search was used."""
        return await services.search(
            database, query=q, k=k, method=method, symbol=symbol, regime=regime, tag=tag
        )

    @get("/{note_id:int}", operation_id="getNote", summary="One research note")
    async def get_note(self, note_id: NoteId, database: NamedDependency[Database]) -> Note:
        return await services.get(database, note_id)

    @delete(
        "/{note_id:int}",
        operation_id="deleteNote",
        summary="Delete a research note",
        guards=[requires("write")],
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_note(self, note_id: NoteId, database: NamedDependency[Database]) -> None:
        await services.delete(database, note_id)


ROUTES: list[ControllerRouterHandler] = [NoteController]
