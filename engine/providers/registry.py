"""The provider registry: names to providers, imported lazily (some pull heavy libraries)."""

from __future__ import annotations

import importlib
from typing import Final

from engine.providers.base import Provider
from engine.providers.errors import UnknownProviderError

__all__ = [
    "PROVIDER_MODULES",
    "get_provider",
    "provider_names",
    "providers",
    "register",
    "unregister",
]

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


# providers registered at run time (a user's own module, a test's recording provider)
_REGISTERED: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    """Make `provider` available by name (replacing a run-time registration of that name)."""
    if provider.name in PROVIDER_MODULES:
        raise ValueError(f"provider {provider.name!r} is built in and cannot be replaced")
    _REGISTERED[provider.name] = provider


def unregister(name: str) -> None:
    """Forget a provider registered with `register`."""
    _REGISTERED.pop(name, None)


def provider_names() -> list[str]:
    """Provider names: built-in first, then those registered at run time."""
    return [*PROVIDER_MODULES, *_REGISTERED]


def get_provider(name: str) -> Provider:
    """The provider called `name`, or an UnknownProviderError listing the known ones."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    module = PROVIDER_MODULES.get(name)
    if module is None:
        raise UnknownProviderError(
            f"unknown provider {name!r}; known providers: {', '.join(provider_names())}"
        )
    provider = importlib.import_module(module).PROVIDER
    assert isinstance(provider, Provider) and provider.name == name
    return provider


def providers() -> list[Provider]:
    """Every provider."""
    return [get_provider(name) for name in provider_names()]
