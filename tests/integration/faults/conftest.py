"""Fault tests reuse the API fixtures (a served app, keys of each scope)."""

from __future__ import annotations

from tests.integration.api.conftest import api_keys, serve_api

__all__ = ["api_keys", "serve_api"]
