"""Write the API's OpenAPI document to web/lib/api/openapi.json (the dashboard's typed client).

    uv run python scripts/export_openapi.py          # then: npm --prefix web run gen:api
    uv run python scripts/export_openapi.py --check  # exit 1 when the committed file is stale

The document comes from `create_app()` alone: no server starts and nothing connects (the
URLs below are only validated, never opened).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from api.server.app import create_app
from engine.settings import PROJECT_ROOT, Secret, Settings

OPENAPI_JSON = PROJECT_ROOT / "web" / "lib" / "api" / "openapi.json"
_UNUSED_DATABASE_URL = "postgresql://regimelab@127.0.0.1:5432/regimelab"
_UNUSED_REDIS_URL = "redis://127.0.0.1:6379/0"


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, with a fixed version so it changes only with the routes."""
    app = create_app(
        Settings(secret_key=Secret("openapi-export-only-never-served")),
        database_url=_UNUSED_DATABASE_URL,
        redis_url=_UNUSED_REDIS_URL,
    )
    document: dict[str, Any] = app.openapi_schema.to_schema()
    document["info"]["version"] = "0.0.0"
    return document


def render(document: dict[str, Any]) -> str:
    """Stable text of a document: sorted keys, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(openapi_document())
    if "--check" in argv:
        current = OPENAPI_JSON.read_text() if OPENAPI_JSON.exists() else ""
        if current != text:
            print(
                f"{OPENAPI_JSON.relative_to(PROJECT_ROOT)} is stale: run "
                "`uv run python scripts/export_openapi.py && npm --prefix web run gen:api`",
                file=sys.stderr,
            )
            return 1
        return 0
    OPENAPI_JSON.parent.mkdir(parents=True, exist_ok=True)
    Path(OPENAPI_JSON).write_text(text)
    print(f"wrote {OPENAPI_JSON.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
