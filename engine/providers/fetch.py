"""Fetch a provider dataset through the cache: the one place caching wraps `extract`.

The cache stores the raw payload (as the provider sent it, or the frame read from disk),
so a cached entry is exactly what the provider would have answered; the transform runs on
every read and a fixed transform never needs a cache flush.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import msgspec
import polars as pl

from engine.io.cache import CacheOutcome, ReadThroughCache, cache_key
from engine.providers.base import Fetcher, Provider, ProviderContext, Raw
from engine.providers.errors import ProviderResponseError

__all__ = ["Fetched", "decode_raw", "encode_raw", "fetch", "query_key"]

_FRAME, _BYTES, _JSON = b"F", b"B", b"J"


def encode_raw(raw: Raw) -> bytes:
    """A raw payload as bytes, tagged with its kind (Arrow IPC, bytes or JSON)."""
    if isinstance(raw, pl.DataFrame):
        buffer = io.BytesIO()
        raw.write_ipc(buffer, compression="lz4")
        return _FRAME + buffer.getvalue()
    if isinstance(raw, bytes):
        return _BYTES + raw
    return _JSON + msgspec.json.encode(raw)


def decode_raw(blob: bytes) -> Raw:
    """The payload `encode_raw` stored."""
    tag, body = blob[:1], blob[1:]
    if tag == _FRAME:
        return pl.read_ipc(io.BytesIO(body))
    if tag == _BYTES:
        return body
    if tag == _JSON:
        decoded: Any = msgspec.json.decode(body)
        return decoded  # type: ignore[no-any-return]
    raise ValueError(f"unknown cached payload tag {tag!r}")


def query_key(prefix: str, provider: Provider, fetcher: Fetcher, query: msgspec.Struct) -> str:
    """`<prefix>:<provider>:<dataset>:<hash of the canonical query>`."""
    return cache_key(prefix, provider.name, fetcher.dataset, payload=msgspec.json.encode(query))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A transformed frame and how its payload was served."""

    frame: pl.DataFrame
    outcome: CacheOutcome


def fetch(
    provider: Provider,
    fetcher: Fetcher,
    query: msgspec.Struct,
    *,
    context: ProviderContext,
    cache: ReadThroughCache,
    ttl: int,
    prefix: str = "regimelab",
) -> Fetched:
    """The canonical frame for `query`, the payload read through the TTL cache."""
    key = query_key(prefix, provider, fetcher, query)
    blob, outcome = cache.get_or_fetch(
        key, ttl, lambda: encode_raw(fetcher.extract(query, context))
    )
    raw = decode_raw(blob)
    try:
        frame = fetcher.transform(query, raw)
    except (pl.exceptions.PolarsError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProviderResponseError(
            f"{provider.name}: payload not in the expected format: {first}"
        ) from exc
    return Fetched(frame=frame, outcome=outcome)
