"""The provider registry: names to providers, imported lazily (some pull heavy libraries)."""

from __future__ import annotations

import importlib
from typing import Final

from engine.providers.base import Provider
from engine.providers.errors import UnknownProviderError

__all__ = ["PROVIDER_MODULES", "get_provider", "provider_names", "providers"]

# name -> module exposing `PROVIDER: Provider`
PROVIDER_MODULES: Final[dict[str, str]] = {
    "sample": "engine.providers.sample",
    "synthetic": "engine.providers.synthetic",
    "files": "engine.providers.files",
    "yahoo": "engine.providers.yahoo",
    "binance": "engine.providers.binance",
    "polygon": "engine.providers.polygon",
    "alpaca": "engine.providers.alpaca",
    "fred": "engine.providers.fred",
}


def provider_names() -> list[str]:
    """Registered provider names, in registration order."""
    return list(PROVIDER_MODULES)


def get_provider(name: str) -> Provider:
    """The provider called `name`, or an UnknownProviderError listing the known ones."""
    module = PROVIDER_MODULES.get(name)
    if module is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}; known providers: {', '.join(PROVIDER_MODULES)}"
        )
    provider = importlib.import_module(module).PROVIDER
    assert isinstance(provider, Provider) and provider.name == name
    return provider


def providers() -> list[Provider]:
    """Every registered provider."""
    return [get_provider(name) for name in PROVIDER_MODULES]
