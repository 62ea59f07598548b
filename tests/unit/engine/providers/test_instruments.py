"""The `instruments` dataset: the standard query, and the providers that offer it.

Binance replay follows `GET /api/v3/exchangeInfo` (documented shape: `{"timezone",
"serverTime", "symbols": [{"symbol", "status", "baseAsset", "quoteAsset", ...}]}`;
payload in tests/data/providers/binance/exchange_info.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from engine.io.cache import ReadThroughCache
from engine.io.http import HttpClient, RetryPolicy
from engine.providers import binance, sample, synthetic
from engine.providers.base import ProviderContext
from engine.providers.errors import UnknownSymbolError
from engine.providers.fetch import fetch
from engine.providers.standard.instruments import INSTRUMENT_SCHEMA, InstrumentsQuery

DATA = Path(__file__).parents[3] / "data" / "providers" / "binance"


def test_query_needs_symbols_or_search() -> None:
    with pytest.raises(ValueError, match="give symbols or a search text"):
        InstrumentsQuery()
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        InstrumentsQuery(search="x", limit=0)


def _fetch(module, query: InstrumentsQuery, context: ProviderContext | None = None):  # type: ignore[no-untyped-def]
    provider = module.PROVIDER
    return fetch(
        provider,
        provider.fetcher("instruments"),
        query,
        context=context or ProviderContext(),
        cache=ReadThroughCache(None),
        ttl=0,
    ).frame


def test_sample_describes_and_searches_its_series() -> None:
    frame = _fetch(sample, InstrumentsQuery(symbols=("SPX", "WTI")))

    assert frame.schema == INSTRUMENT_SCHEMA
    assert frame.rows() == [
        ("SPX", "S&P 500 Index", "index", "XNYS", "USD"),
        ("WTI", "WTI Crude Oil Spot", "commodity", None, "USD"),
    ]
    assert _fetch(sample, InstrumentsQuery(search="nasdaq"))["symbol"].to_list() == ["IXIC"]


def test_synthetic_describes_any_symbol() -> None:
    frame = _fetch(synthetic, InstrumentsQuery(symbols=("SYN0003",)))
    assert frame.row(0) == (
        "SYN0003",
        "Synthetic regime-switching series SYN0003",
        "synthetic",
        None,
        "USD",
    )


def test_binance_pairs_from_exchange_info(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v3/exchangeInfo").respond_with_json(
        json.loads((DATA / "exchange_info.json").read_text())
    )
    context = ProviderContext(
        base_urls={"binance": httpserver.url_for("")},
        http=HttpClient(retry=RetryPolicy(attempts=1)),
    )

    found = _fetch(binance, InstrumentsQuery(search="btc"), context)

    assert found.rows() == [
        ("BTCUSDT", "BTC/USDT", "crypto", "BINANCE", "USDT"),
        ("ETHBTC", "ETH/BTC", "crypto", "BINANCE", "BTC"),
    ]
    asked = _fetch(binance, InstrumentsQuery(symbols=("ETHBTC",)), context)
    assert asked["symbol"].to_list() == ["ETHBTC"]
    sent = [r.args.get("symbols") for r, _ in httpserver.log]
    assert sent[-1] == '["ETHBTC"]'


def test_binance_unknown_symbol(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v3/exchangeInfo").respond_with_json(
        {"code": -1121, "msg": "Invalid symbol."}, status=400
    )
    context = ProviderContext(
        base_urls={"binance": httpserver.url_for("")},
        http=HttpClient(retry=RetryPolicy(attempts=1)),
    )
    with pytest.raises(UnknownSymbolError, match="binance: unknown symbol"):
        _fetch(binance, InstrumentsQuery(symbols=("NOPE",)), context)
