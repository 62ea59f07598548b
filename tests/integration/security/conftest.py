"""The API fixtures (`api_url`, `api`, `api_keys`, `serve_api`) for the security tests."""

from __future__ import annotations

from tests.integration.api.conftest import (  # noqa: F401  (fixtures)
    api,
    api_keys,
    api_url,
    http,
    serve_api,
)
