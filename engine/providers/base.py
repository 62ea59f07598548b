"""The provider framework: a provider is a set of fetchers, one per dataset.

A fetcher has three small pieces (after OpenBB's fetchers):
- a query type: the standard query (e.g. `BarsQuery`) plus the provider's own parameters;
- `extract(query, context)`: the only I/O; returns the raw payload (bytes, JSON or a frame),
  which the cache stores as is;
- `transform(query, raw)`: pure; turns the payload into the canonical frame.
Provider quirks stay inside these three; shared code never branches on a provider name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import polars as pl

from engine.io.http import HttpClient
from engine.providers.errors import MissingCredentialsError, ProviderResponseError

__all__ = ["Fetcher", "Provider", "ProviderContext", "Raw", "documented"]

Raw = pl.DataFrame | bytes | dict[str, Any] | list[Any]
"""What an extract step returns: an HTTP body, decoded JSON or a frame read from disk."""


def documented[T](payload: Any, shape: type[T], *, provider: str, what: str) -> T:
    """`payload` converted to its documented `shape`, or a ProviderResponseError saying that
    `what` came back in another shape (checked on arrival, so the cache only holds valid data)."""
    try:
        return msgspec.convert(payload, shape)
    except msgspec.ValidationError as exc:
        raise ProviderResponseError(
            f"{provider}: {what} not in the documented format: {exc}"
        ) from None


def _split(spec: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What an extract step may use: credentials, the shared HTTP client, base URLs."""

    credentials: Mapping[str, str] = field(default_factory=dict)
    http: HttpClient | None = None
    base_urls: Mapping[str, str] = field(default_factory=dict)

    def credential(self, provider: str, name: str) -> str:
        """The credential `name` (an environment variable name), or a clear error."""
        value = self.credentials.get(name)
        if not value:
            raise MissingCredentialsError(
                f"provider {provider} needs {name}; set it in .env or the environment"
            )
        return value

    def base_url(self, provider: str, default: str) -> str:
        """The provider's API root: the configured override (tests, proxies) or `default`."""
        return self.base_urls.get(provider, default).rstrip("/")

    def client(self) -> HttpClient:
        """The HTTP client (providers that need the network get one from the ingest run)."""
        if self.http is None:
            raise RuntimeError("this provider needs an HttpClient in its context")
        return self.http


@dataclass(frozen=True, slots=True)
class Fetcher:
    """One dataset of one provider."""

    dataset: str
    query_type: type[msgspec.Struct]
    extract: Callable[[Any, ProviderContext], Raw]
    transform: Callable[[Any, Raw], pl.DataFrame]
    default_ttl: int
    """Seconds a cached payload stays fresh (0 = always call the provider, then store)."""
    max_symbols: int | None = 1
    """Symbols per extract call (None = the whole request in one call)."""
    intervals: tuple[str, ...] = ("1d",)


@dataclass(frozen=True, slots=True)
class Provider:
    """A named source of market data and the credentials it reads from settings."""

    name: str
    description: str
    fetchers: Mapping[str, Fetcher]
    credentials: tuple[str, ...] = ()
    network: bool = False
    """Whether it calls the internet (tests replay these; live calls are opt-in)."""
    calendar: str | None = None
    """Exchange calendar its daily bars follow (e.g. XNYS), for gap reports."""
    resolve_symbols: Callable[[str], tuple[str, ...]] = field(default=_split)
    """Turns the user's symbol list (CLI/API text) into symbols; providers may add aliases."""

    def fetcher(self, dataset: str) -> Fetcher:
        """The fetcher for `dataset`, or a clear error."""
        from engine.providers.errors import UnknownProviderError

        try:
            return self.fetchers[dataset]
        except KeyError:
            have = ", ".join(self.fetchers)
            raise UnknownProviderError(
                f"provider {self.name} has no {dataset!r} dataset (it has {have})"
            ) from None
