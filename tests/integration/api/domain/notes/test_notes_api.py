"""Research-note routes over real HTTP: write, list, search by meaning and by words."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import ApiKeys

PROBLEM = "application/problem+json"
NOTES = [
    {
        "title": "Crash",
        "body": "Equities sold off hard as volatility spiked and panic selling spread.",
        "symbol": "SPX",
        "day": "2008-10-10",
        "regime": 2,
        "tags": ["crisis"],
    },
    {"title": "Quiet grind", "body": "A calm bull market with low volatility.", "symbol": "SPX"},
    {"title": "Rates", "body": "The central bank raised interest rates.", "symbol": "IXIC"},
]


def test_notes_are_written_listed_and_found_by_meaning_or_words(
    api: httpx.Client, api_keys: ApiKeys
) -> None:
    created = [api.post("/api/v1/notes", json=note) for note in NOTES]
    assert [r.status_code for r in created] == [201, 201, 201], created[0].text
    crash = created[0].json()
    assert crash["day"] == "2008-10-10" and crash["tags"] == ["crisis"]
    assert crash["embedding_model"] is not None  # the dev group installs the local model

    listed = api.get("/api/v1/notes", params={"symbol": "SPX"}).json()
    assert listed["total"] == 2
    assert api.get(f"/api/v1/notes/{crash['id']}").json()["title"] == "Crash"

    semantic = api.get("/api/v1/notes/search", params={"q": "a stock market panic"}).json()
    assert semantic["method"] == "semantic" and semantic["model"]
    assert semantic["items"][0]["note"]["title"] == "Crash"

    words = api.get("/api/v1/notes/search", params={"q": "volatility", "method": "fulltext"}).json()
    assert words["method"] == "fulltext" and words["model"] is None
    assert {hit["note"]["title"] for hit in words["items"]} == {"Crash", "Quiet grind"}

    read_only = {"Authorization": f"Bearer {api_keys.read}"}
    assert api.post("/api/v1/notes", json=NOTES[0], headers=read_only).status_code == 403
    assert api.delete(f"/api/v1/notes/{crash['id']}").status_code == 204
    missing = api.get(f"/api/v1/notes/{crash['id']}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(PROBLEM)


def test_bad_notes_are_problems_naming_the_field(api: httpx.Client) -> None:
    for body, field in [
        ({"title": "", "body": "x"}, "title"),
        ({"title": "t", "body": "x", "symbol": "no spaces"}, "symbol"),
        ({"title": "t", "body": "x", "day": "2008-13-40"}, "day"),
        ({"title": "t", "body": "x", "tags": ["a b"]}, "tags"),
        ({"title": "t", "body": "x\u0000y"}, "body"),
    ]:
        response = api.post("/api/v1/notes", json=body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.text, (body, response.text)
    assert api.get("/api/v1/notes/search", params={"q": ""}).status_code == 400
