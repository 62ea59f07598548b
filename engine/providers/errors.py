"""Provider errors: each says which provider failed and why, in one sentence."""

from __future__ import annotations

from engine.errors import RegimeLabError

__all__ = [
    "MissingCredentialsError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderResponseError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "UnknownProviderError",
    "UnknownSymbolError",
]


class ProviderError(RegimeLabError):
    """A provider call failed. `transient` errors are worth retrying."""

    transient = False


class UnknownProviderError(ProviderError):
    """No provider (or no such dataset of a provider) by that name."""


class MissingCredentialsError(ProviderError):
    """The provider needs credentials that are not configured."""


class UnknownSymbolError(ProviderError):
    """The provider does not know the symbol."""


class ProviderRequestError(ProviderError):
    """The provider rejected the request (4xx other than 429): retrying will not help.

    `status` and `body` let a provider map its own error codes (an unknown symbol, say)
    without parsing the message.
    """

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ProviderResponseError(ProviderError):
    """The provider answered with something that is not in its documented format."""


class ProviderUnavailableError(ProviderError):
    """Timeout, connection failure or 5xx: transient."""

    transient = True


class RateLimitedError(ProviderUnavailableError):
    """HTTP 429: transient; `retry_after` seconds if the provider said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
