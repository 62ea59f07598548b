"""The dashboard on the API's origin: the static export of web/ (web/out) served at `/`.

The API keeps `/api/v1`, `/schema`, `/health`, `/ready` and `/metrics`: the export's top-level
entries are mounted one by one, never a catch-all. A GET under them is a file of the export:
the exact file, then `<path>.html`, then `<path>/index.html`, else the export's 404 page. Pages
take their parameters from the query string (`/instrument?symbol=SPX`), so no server rendering
is needed.

`regimelab up` builds the export when it is missing or older than its sources
(`build_needed`), and serves it only when it exists.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from litestar import asgi
from litestar.enums import ScopeType
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.response.file import ASGIFileResponse
from litestar.types import ControllerRouterHandler, Receive, Scope, Send

from engine.settings import PROJECT_ROOT

__all__ = ["WEB_DIR", "WEB_OUT", "build_needed", "web_routes"]

WEB_DIR: Final = PROJECT_ROOT / "web"
WEB_OUT: Final = WEB_DIR / "out"
# what the export is built from; anything newer than out/index.html means a rebuild
_SOURCES: Final = (
    "app",
    "components",
    "lib",
    "public",
    "package.json",
    "package-lock.json",
    "next.config.ts",
    "postcss.config.mjs",
    "tsconfig.json",
)
_API_PREFIXES: Final = ("/api/", "/schema", "/health", "/ready", "/metrics")
_IMMUTABLE: Final = "public, max-age=31536000, immutable"


def resolve(root: Path, path: str) -> tuple[Path, int] | None:
    """The export's file for a URL path and its status (200, or 404 for the not-found page);
    None when the export has neither. Never leaves `root`."""
    relative = path.lstrip("/")
    base = root.resolve()
    candidates = (
        [base / "index.html"]
        if not relative
        else [base / relative, base / f"{relative}.html", base / relative / "index.html"]
    )
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_file() and resolved.is_relative_to(base):
            return resolved, 200
    not_found = base / "404.html"
    return (not_found, 404) if not_found.is_file() else None


def _file_server(root: Path) -> Any:
    async def dashboard(scope: Scope, receive: Receive, send: Send) -> None:
        # a mount sees its remainder in `path` ("instrument/"); the URL path is in raw_path
        raw_path = scope.get("raw_path") or str(scope.get("path", "/")).encode()
        path = unquote(raw_path.decode("latin-1").split("?", 1)[0])
        method = str(scope.get("method", "GET"))
        if scope["type"] != ScopeType.HTTP or method not in {"GET", "HEAD"}:
            raise MethodNotAllowedException(detail=f"{method} is not allowed on {path}")
        found = None if path.startswith(_API_PREFIXES) else resolve(root, path)
        if found is None:
            raise NotFoundException(detail=f"no route or page at {path}")
        file, status = found
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        response = ASGIFileResponse(
            file_path=file,
            media_type=media_type,
            status_code=status,
            content_disposition_type="inline",
            headers={"Cache-Control": _IMMUTABLE if "/_next/static/" in path else "no-cache"},
            is_head_response=method == "HEAD",
        )
        await response(scope, receive, send)

    return dashboard


def _newest_mtime(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)


def build_needed(web_dir: Path = WEB_DIR) -> bool:
    """Whether the export is missing or older than any of its sources."""
    built = web_dir / "out" / "index.html"
    if not built.is_file():
        return True
    sources = [web_dir / name for name in _SOURCES if (web_dir / name).exists()]
    return max(map(_newest_mtime, sources), default=0.0) > built.stat().st_mtime


def _top_level_paths(root: Path) -> list[str]:
    """A mount per top-level entry of the export (`/_next`, `/alerts`, `/alerts.html`, the
    page `/alerts`, ...). Not one mount at `/`: Litestar would route paths with parameters
    (`/api/v1/instruments/{symbol}/bars`) into it."""
    paths = {f"/{entry.name}" for entry in root.iterdir() if entry.name != "index.html"}
    paths |= {f"/{page.stem}" for page in root.glob("*.html") if page.stem != "index"}
    return sorted(paths)


def web_routes(root: Path = WEB_OUT) -> list[ControllerRouterHandler]:
    """The dashboard's routes when its export exists (`regimelab up` builds it), else none."""
    if not (root / "index.html").is_file():
        return []
    serve = _file_server(root)
    return [
        asgi("/", include_in_schema=False, copy_scope=True)(serve),
        asgi(_top_level_paths(root), is_mount=True, include_in_schema=False, copy_scope=True)(
            serve
        ),
    ]
