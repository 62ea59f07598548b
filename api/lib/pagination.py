"""Limit/offset pagination with totals, the same on every list route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Generic, TypeVar

import msgspec
from litestar.params import Parameter

__all__ = ["MAX_LIMIT", "MAX_OFFSET", "Page", "Pagination", "pagination"]

MAX_LIMIT: Final = 1000
MAX_OFFSET: Final = 1_000_000_000  # far past any list; keeps OFFSET inside Postgres' bigint
T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], kw_only=True):  # noqa: UP046  (Litestar resolves TypeVars)
    """One page of a list: its items, how many there are in all, and where it starts."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class Pagination:
    """Which page a list route should return."""

    limit: int
    offset: int

    def page[T](self, items: list[T], total: int) -> Page[T]:
        """Wrap this page's items."""
        return Page(items=items, total=total, limit=self.limit, offset=self.offset)


def pagination(
    limit: Annotated[
        int, Parameter(ge=1, le=MAX_LIMIT, description="items per page (1-1000)")
    ] = 100,
    offset: Annotated[int, Parameter(ge=0, le=MAX_OFFSET, description="items to skip")] = 0,
) -> Pagination:
    """The `limit` and `offset` query parameters (a Litestar dependency: `pagination`)."""
    return Pagination(limit=limit, offset=offset)
