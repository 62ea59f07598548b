"""`/api/v1/instruments`: search, filters, pages with totals, one instrument, create."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import ApiKeys
from tests.integration.conftest import Ingest

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    return dict(body)


def _fields(problem: dict[str, object]) -> list[object]:
    errors = problem.get("errors")
    assert isinstance(errors, list), problem
    return [error["field"] for error in errors]


def test_list_pages_and_filters(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "3", n_days=120)

    everything = api.get("/api/v1/instruments").json()
    page = api.get("/api/v1/instruments", params={"limit": 1, "offset": 1}).json()
    beyond = api.get("/api/v1/instruments", params={"offset": 10}).json()

    assert everything["total"] == 3
    assert [i["symbol"] for i in everything["items"]] == ["SYN0000", "SYN0001", "SYN0002"]
    first = everything["items"][0]
    assert first["name"] == "Synthetic regime-switching series SYN0000"
    assert first["asset_class"] == "synthetic"
    assert first["provider"] == "synthetic"
    assert first["is_active"] is True
    [coverage] = first["coverage"]
    assert coverage["interval"] == "1d"
    assert coverage["bars"] == 120
    assert coverage["first"] == "2010-01-04T00:00:00Z"
    assert page == {**page, "total": 3, "limit": 1, "offset": 1}
    assert [i["symbol"] for i in page["items"]] == ["SYN0001"]
    assert beyond["items"] == [] and beyond["total"] == 3


def test_search_in_symbol_or_name_and_asset_class(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "3", n_days=30)

    by_symbol = api.get("/api/v1/instruments", params={"q": "syn0002"}).json()
    by_name = api.get("/api/v1/instruments", params={"q": "REGIME-switching"}).json()
    by_class = api.get("/api/v1/instruments", params={"asset_class": "synthetic"}).json()
    no_class = api.get("/api/v1/instruments", params={"asset_class": "equity"}).json()

    assert [i["symbol"] for i in by_symbol["items"]] == ["SYN0002"]
    assert by_symbol["total"] == 1
    assert by_name["total"] == 3
    assert by_class["total"] == 3
    assert no_class == {"items": [], "total": 0, "limit": 100, "offset": 0}


def test_one_instrument_and_unknown_ones(api: httpx.Client, ingest: Ingest) -> None:
    ingest("synthetic", "1", n_days=30)

    found = api.get("/api/v1/instruments/SYN0000")

    assert found.status_code == 200
    assert found.json()["coverage"][0]["bars"] == 30
    assert "SYN9999" in str(_problem(api.get("/api/v1/instruments/SYN9999"), 404)["detail"])
    assert _fields(_problem(api.get("/api/v1/instruments/a%20b"), 400)) == ["symbol"]
    _problem(api.get("/api/v1/instruments", params={"limit": 0}), 400)
    # text Postgres can't store (NUL) is a 400, never a database error
    assert _fields(_problem(api.get("/api/v1/instruments?asset_class=%00"), 400)) == ["asset_class"]
    assert _fields(_problem(api.get("/api/v1/instruments?q=a%00"), 400)) == ["q"]


def test_create_describes_an_instrument_and_refreshes_the_list(
    api: httpx.Client, api_keys: ApiKeys
) -> None:
    before = api.get("/api/v1/instruments").json()  # cached from here on
    body = {
        "symbol": "^GSPC",
        "name": "S&P 500",
        "asset_class": "index",
        "exchange": "XNYS",
        "calendar": "XNYS",
        "provider": "yahoo",
    }

    created = api.post(
        "/api/v1/instruments", json=body, headers={"Authorization": f"Bearer {api_keys.write}"}
    )
    after = api.get("/api/v1/instruments").json()
    one = api.get("/api/v1/instruments/%5EGSPC").json()

    assert before["total"] == 0
    assert created.status_code == 201, created.text
    assert created.json() == {**body, "currency": "USD", "is_active": True, "coverage": []}
    assert after["total"] == 1
    assert one == created.json()


def test_create_rejects_duplicates_bad_input_and_read_keys(
    api: httpx.Client, api_keys: ApiKeys
) -> None:
    body = {"symbol": "BTCUSDT", "provider": "binance", "asset_class": "crypto"}
    assert api.post("/api/v1/instruments", json=body).status_code == 201

    duplicate = _problem(api.post("/api/v1/instruments", json=body), 409)
    provider = _problem(api.post("/api/v1/instruments", json={**body, "provider": "nope"}), 400)
    calendar = _problem(
        api.post("/api/v1/instruments", json={**body, "symbol": "X", "calendar": "MARS"}), 400
    )
    symbol = _problem(api.post("/api/v1/instruments", json={**body, "symbol": "A B"}), 400)
    read_key = api.post(
        "/api/v1/instruments",
        json={**body, "symbol": "ETHUSDT"},
        headers={"Authorization": f"Bearer {api_keys.read}"},
    )

    assert "already exists" in str(duplicate["detail"])
    assert _fields(provider) == ["provider"]
    assert "known providers" in str(provider["detail"])
    assert _fields(calendar) == ["calendar"]
    assert symbol["errors"]
    assert "'write' scope" in str(_problem(read_key, 403)["detail"])
