"""Fixtures for integration tests against real servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.ingest.service import build_request, run_ingest
from engine.settings import Settings

Ingest = Callable[..., None]


@pytest.fixture
def ingest(settings: Settings) -> Ingest:
    """Load bars through the real ingest path: `ingest("synthetic", "3", n_days=500)`."""

    def load(provider: str, symbols: str, **options: object) -> None:
        assert settings.database_url is not None
        run_ingest(
            settings,
            build_request(provider, symbols, options=options),
            database_url=settings.database_url,
            redis_url=settings.redis_url,
        )

    return load
