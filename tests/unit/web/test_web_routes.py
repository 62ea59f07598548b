"""The dashboard's static export on the API's origin (api/server/web.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from api.server.web import build_needed, resolve, web_routes


@get("/api/v1/instruments/{symbol:str}/bars", sync_to_thread=False)
def bars(symbol: str) -> dict[str, str]:
    return {"symbol": symbol}


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


def _export(root: Path) -> Path:
    out = root / "out"
    files = {
        "index.html": "<html>overview</html>",
        "instrument.html": "<html>instrument</html>",
        "instrument.txt": "rsc payload",
        "instrument/__next._tree.txt": "segment",
        "404.html": "<html>not found</html>",
        "_next/static/chunks/app.js": "console.log(1)",
        "icon.svg": "<svg/>",
    }
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "secret.txt").write_text("outside the export")
    return out


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    app = Litestar([bars, health, *web_routes(_export(tmp_path))])
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "status", "body", "media_type"),
    [
        ("/", 200, "overview", "text/html"),
        ("/instrument", 200, "instrument", "text/html"),
        ("/instrument?symbol=SPX&model=hmm", 200, "instrument", "text/html"),
        ("/instrument.txt", 200, "rsc payload", "text/plain"),
        ("/instrument/__next._tree.txt", 200, "segment", "text/plain"),
        ("/_next/static/chunks/app.js", 200, "console.log(1)", "javascript"),
        ("/icon.svg", 200, "<svg/>", "image/svg+xml"),
        ("/instrument/nope", 404, "not found", "text/html"),
    ],
)
def test_serves_the_export(
    client: TestClient[Litestar], path: str, status: int, body: str, media_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert body in response.text
    assert media_type in response.headers["content-type"]


def test_api_routes_with_parameters_are_not_shadowed(client: TestClient[Litestar]) -> None:
    assert client.get("/api/v1/instruments/SPX/bars").json() == {"symbol": "SPX"}
    assert client.get("/health").json() == {"status": "ok"}


def test_assets_are_immutable_and_pages_revalidated(client: TestClient[Litestar]) -> None:
    assert "immutable" in client.get("/_next/static/chunks/app.js").headers["cache-control"]
    assert client.get("/instrument").headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/_next/../../secret.txt",
        "/_next/%2e%2e/%2e%2e/secret.txt",
        "/instrument/..%2f..%2fsecret.txt",
    ],
)
def test_never_leaves_the_export(client: TestClient[Litestar], path: str) -> None:
    response = client.get(path)
    assert "outside the export" not in response.text


def test_only_reads_are_served(client: TestClient[Litestar]) -> None:
    assert client.post("/instrument").status_code == 405
    assert client.head("/instrument").status_code == 200


def test_no_routes_without_an_export(tmp_path: Path) -> None:
    assert web_routes(tmp_path / "out") == []


def test_resolve_prefers_the_exact_file_then_html(tmp_path: Path) -> None:
    out = _export(tmp_path)
    assert resolve(out, "/instrument") == (out / "instrument.html", 200)
    assert resolve(out, "/") == (out / "index.html", 200)
    assert resolve(out, "/missing") == (out / "404.html", 404)


def test_build_needed_when_missing_or_older_than_a_source(tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "app").mkdir(parents=True)
    page = web / "app" / "page.tsx"
    page.write_text("export default 1")
    assert build_needed(web)
    out = _export(web)
    os.utime(page, (1_000_000, 1_000_000))
    assert not build_needed(web)
    os.utime(out / "index.html", (100, 100))
    assert build_needed(web)
