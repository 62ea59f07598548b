"""HTTP for providers: timeouts, retries with exponential backoff and full jitter, Retry-After,
and a circuit breaker per provider.

Every network provider goes through `HttpClient`, so retry and error rules live here once.
Transient failures (timeouts, connection errors, 429, 5xx) are retried; the last one is
raised as a provider error that says what happened. A 4xx other than 429 is not retried.
After `BreakerPolicy.threshold` failed calls in a row to one provider its circuit opens:
further calls fail at once (no request, no waiting) until `cooldown` seconds have passed,
then one trial call decides whether it closes again. Circuits are per provider and per
process, shared by every client (every run) in it, so runs retried or scheduled against a
provider that is down fail at once instead of hammering it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from engine.providers.errors import (
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitedError,
)

__all__ = ["BreakerPolicy", "CircuitOpenError", "HttpClient", "RetryPolicy", "reset_circuits"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry `attempt` (1-based): Retry-After if given, else full jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311  (jitter, not cryptography)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a provider's circuit opens, and for how long."""

    threshold: int = 5
    """failed calls in a row (each attempt counts) that open the circuit"""
    cooldown: float = 30.0
    """seconds an open circuit refuses calls before one trial call"""


class CircuitOpenError(ProviderUnavailableError):
    """The provider failed too often in a row; no request was made."""


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False


class _Breakers:
    """One circuit per provider."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def before(self, provider: str) -> None:
        """Raise CircuitOpenError while `provider`'s circuit is open."""
        with self._lock:
            circuit = self._circuits.setdefault(provider, _Circuit())
            if circuit.opened_at is None:
                return
            waited = self._clock() - circuit.opened_at
            if waited >= self.policy.cooldown and not circuit.trial:
                circuit.trial = True  # half open: this call is the trial
                return
            left = max(self.policy.cooldown - waited, 0.0)
            raise CircuitOpenError(
                f"{provider}: circuit open after {circuit.failures} failed calls in a row; "
                f"not calling it for another {left:.0f}s"
            )

    def record(self, provider: str, *, ok: bool) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(provider, _Circuit())
            if ok:
                circuit.failures, circuit.opened_at, circuit.trial = 0, None, False
                return
            circuit.failures += 1
            if circuit.trial or circuit.failures >= self.policy.threshold:
                if circuit.opened_at is None or circuit.trial:
                    log.warning("%s: circuit opened after %d failures", provider, circuit.failures)
                circuit.opened_at, circuit.trial = self._clock(), False


_SHARED = _Breakers(BreakerPolicy(), time.monotonic)


def reset_circuits() -> None:
    """Close every shared circuit (tests; an operator who knows the provider is back)."""
    global _SHARED  # noqa: PLW0603  (one registry per process, replaced whole)
    _SHARED = _Breakers(BreakerPolicy(), time.monotonic)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpClient:
    """A synchronous HTTP client shared by the providers of one ingest run."""

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry = retry or RetryPolicy()
        # the process's shared circuits, unless a policy of its own is asked for
        self._breakers = _SHARED if breaker is None else _Breakers(breaker, clock)
        self.timeout = timeout
        self._sleep = sleep
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "RegimeLab/0.1 (+https://github.com/regimelab)"},
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def retrying(self, call: Callable[[], T], *, provider: str) -> T:
        """`call()`'s result, retrying ProviderUnavailableError under this client's policy.

        The last failure is re-raised with the attempt count, keeping its type and its
        `retry_after`, chained to the original.
        """
        attempts = self.retry.attempts
        for attempt in range(1, attempts + 1):
            self._breakers.before(provider)
            try:
                result = call()
            except ProviderUnavailableError as exc:
                self._breakers.record(provider, ok=False)
                retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
                if attempt == attempts:
                    message = f"{exc} (gave up after {attempts} attempts)"
                    if isinstance(exc, RateLimitedError):
                        raise RateLimitedError(message, retry_after) from exc
                    raise type(exc)(message) from exc
                wait = self.retry.delay(attempt, retry_after)
                log.warning("%s (attempt %d/%d), retrying in %.2fs", exc, attempt, attempts, wait)
                self._sleep(wait)
            else:
                self._breakers.record(provider, ok=True)
                return result
        raise AssertionError(f"{provider}: RetryPolicy.attempts must be >= 1")

    def get(
        self,
        url: str,
        *,
        provider: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A 2xx response, after retrying transient failures; raises a provider error otherwise."""
        return self.retrying(
            lambda: self._get_once(url, provider=provider, params=params, headers=headers),
            provider=provider,
        )

    def _get_once(
        self,
        url: str,
        *,
        provider: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        try:
            response = self._client.get(url, params=params, headers=headers)
        except httpx.TimeoutException:
            raise ProviderUnavailableError(
                f"{provider}: request timed out ({_path(url)})"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ProviderRequestError(f"{provider}: bad URL {url!r}: {exc}") from None
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(f"{provider}: connection failed: {exc}") from None
        if response.is_success:
            return response
        raise _error_for(provider, url, response)

    def get_json(self, url: str, *, provider: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful GET."""
        response = self.get(url, provider=provider, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ProviderResponseError(
                f"{provider}: response is not JSON ({_path(url)}): {response.text[:80]!r}"
            ) from None


def _path(url: str) -> str:
    return httpx.URL(url).path


def _error_for(
    provider: str, url: str, response: httpx.Response
) -> ProviderUnavailableError | ProviderRequestError:
    status = response.status_code
    snippet = response.text[:160].strip().replace("\n", " ")
    if status == 429:
        return RateLimitedError(f"{provider}: rate limited (HTTP 429)", _retry_after(response))
    if status >= 500:
        return ProviderUnavailableError(f"{provider}: server error HTTP {status} ({_path(url)})")
    return ProviderRequestError(
        f"{provider}: request rejected with HTTP {status}: {snippet}", status, response.text
    )
