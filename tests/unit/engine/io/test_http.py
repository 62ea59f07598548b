"""HttpClient's retry rules against a real local HTTP server (pytest-httpserver).

What is retried (timeouts, connection failures, 429, 5xx) and what is not (other 4xx), how
many attempts are made, how long it waits (Retry-After in seconds or as an HTTP-date, else
full jitter within the exponential ceiling), and what is raised at the end.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from engine.io.http import BreakerPolicy, CircuitOpenError, HttpClient, RetryPolicy
from engine.providers.errors import (
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RateLimitedError,
)

PATH = "/v1/thing"


class SleepRecorder:
    """Stands in for time.sleep: records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def waits() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(waits: SleepRecorder) -> Iterator[HttpClient]:
    with HttpClient(timeout=2.0, retry=RetryPolicy(attempts=3, base_delay=0.01), sleep=waits) as c:
        yield c


def requests_made(httpserver: HTTPServer) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == PATH)


def wait_for_requests(httpserver: HTTPServer, count: int, deadline: float = 5.0) -> None:
    """Let the single-threaded server finish slow handlers so they don't leak into later tests."""
    stop = time.monotonic() + deadline
    while requests_made(httpserver) < count and time.monotonic() < stop:
        time.sleep(0.05)


def test_success_needs_one_request(
    httpserver: HTTPServer, client: HttpClient, waits: SleepRecorder
) -> None:
    httpserver.expect_request(PATH, query_string={"a": "1"}).respond_with_json({"ok": True})
    assert client.get_json(httpserver.url_for(PATH), provider="demo", params={"a": 1}) == {
        "ok": True
    }
    assert requests_made(httpserver) == 1
    assert waits.waits == []


def test_sends_the_given_headers(httpserver: HTTPServer, client: HttpClient) -> None:
    httpserver.expect_request(PATH, headers={"X-Key": "k1"}).respond_with_json([])
    assert client.get_json(httpserver.url_for(PATH), provider="demo", headers={"X-Key": "k1"}) == []


def test_5xx_then_success_is_retried(
    httpserver: HTTPServer, client: HttpClient, waits: SleepRecorder
) -> None:
    httpserver.expect_oneshot_request(PATH).respond_with_data("busy", status=503)
    httpserver.expect_request(PATH).respond_with_json({"ok": True})
    assert client.get_json(httpserver.url_for(PATH), provider="demo") == {"ok": True}
    assert requests_made(httpserver) == 2
    assert len(waits.waits) == 1 and 0 <= waits.waits[0] <= 0.01


def test_persistent_5xx_gives_up_after_the_configured_attempts(
    httpserver: HTTPServer, client: HttpClient, waits: SleepRecorder
) -> None:
    httpserver.expect_request(PATH).respond_with_data("down", status=502)
    with pytest.raises(
        ProviderUnavailableError, match=r"demo: server error HTTP 502 .*gave up after 3 attempts"
    ):
        client.get(httpserver.url_for(PATH), provider="demo")
    assert requests_made(httpserver) == 3
    assert len(waits.waits) == 2  # no wait after the last attempt


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_4xx_is_not_retried(
    httpserver: HTTPServer, client: HttpClient, waits: SleepRecorder, status: int
) -> None:
    httpserver.expect_request(PATH).respond_with_json({"message": "no such thing"}, status=status)
    with pytest.raises(
        ProviderRequestError, match=rf"demo: request rejected with HTTP {status}: .*no such thing"
    ):
        client.get(httpserver.url_for(PATH), provider="demo")
    assert requests_made(httpserver) == 1
    assert waits.waits == []


def test_429_waits_the_retry_after_seconds(
    httpserver: HTTPServer, client: HttpClient, waits: SleepRecorder
) -> None:
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request(PATH).respond_with_json({"ok": True})
    assert client.get_json(httpserver.url_for(PATH), provider="demo") == {"ok": True}
    assert waits.waits == [7.0]


def test_429_retry_after_as_an_http_date(httpserver: HTTPServer, waits: SleepRecorder) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "", status=429, headers={"Retry-After": later}
    )
    httpserver.expect_request(PATH).respond_with_json({"ok": True})
    with HttpClient(retry=RetryPolicy(attempts=2, max_delay=60), sleep=waits) as client:
        client.get(httpserver.url_for(PATH), provider="demo")
    assert len(waits.waits) == 1 and 27 <= waits.waits[0] <= 30


def test_retry_after_is_capped_and_never_negative(
    httpserver: HTTPServer, waits: SleepRecorder
) -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "", status=429, headers={"Retry-After": past}
    )
    httpserver.expect_request(PATH).respond_with_json({"ok": True})
    with HttpClient(retry=RetryPolicy(attempts=3, max_delay=20), sleep=waits) as client:
        client.get(httpserver.url_for(PATH), provider="demo")
    assert waits.waits == [20.0, 0.0]


def test_unparseable_retry_after_falls_back_to_jitter(
    httpserver: HTTPServer, waits: SleepRecorder
) -> None:
    httpserver.expect_oneshot_request(PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "soon"}
    )
    httpserver.expect_request(PATH).respond_with_json({"ok": True})
    with HttpClient(retry=RetryPolicy(attempts=2, base_delay=0.5), sleep=waits) as client:
        client.get(httpserver.url_for(PATH), provider="demo")
    assert len(waits.waits) == 1 and 0 <= waits.waits[0] <= 0.5


def test_persistent_429_raises_rate_limited(httpserver: HTTPServer, client: HttpClient) -> None:
    httpserver.expect_request(PATH).respond_with_data("", status=429, headers={"Retry-After": "1"})
    with pytest.raises(
        RateLimitedError, match=r"demo: rate limited \(HTTP 429\).*gave up after 3 attempts"
    ):
        client.get(httpserver.url_for(PATH), provider="demo")
    assert requests_made(httpserver) == 3


def test_timeout_is_retried_then_reported(httpserver: HTTPServer, waits: SleepRecorder) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", content_type="application/json")

    httpserver.expect_request(PATH).respond_with_handler(slow)
    client = HttpClient(timeout=0.1, retry=RetryPolicy(attempts=2, base_delay=0.01), sleep=waits)
    timed_out = rf"demo: request timed out \({PATH}\).*2 attempts"
    with client, pytest.raises(ProviderUnavailableError, match=timed_out):
        client.get(httpserver.url_for(PATH), provider="demo")
    assert len(waits.waits) == 1
    wait_for_requests(httpserver, 2)
    assert requests_made(httpserver) == 2


def test_connection_refused_is_unavailable(waits: SleepRecorder) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpClient(retry=RetryPolicy(attempts=2, base_delay=0.01), sleep=waits)
    with client, pytest.raises(ProviderUnavailableError, match=r"demo: connection failed"):
        client.get(f"http://127.0.0.1:{port}/x", provider="demo")
    assert len(waits.waits) == 1


def test_garbage_body_is_a_response_error(httpserver: HTTPServer, client: HttpClient) -> None:
    httpserver.expect_request(PATH).respond_with_data(
        "<html>maintenance</html>", content_type="text/html"
    )
    with pytest.raises(ProviderResponseError, match=r"demo: response is not JSON \(/v1/thing\)"):
        client.get_json(httpserver.url_for(PATH), provider="demo")
    assert requests_made(httpserver) == 1


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8])
def test_jitter_stays_within_the_exponential_ceiling(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=5.0)
    ceiling = min(5.0, 0.5 * 2 ** (attempt - 1))
    random.seed(attempt)
    delays = [policy.delay(attempt) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > 0.8 * ceiling  # full jitter: it does use the whole range


def test_retry_after_overrides_jitter_within_bounds() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=10.0)
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert policy.delay(1, retry_after=99.0) == 10.0
    assert policy.delay(1, retry_after=-2.0) == 0.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_failures_in_a_row_and_then_fails_fast(
    httpserver: HTTPServer, waits: SleepRecorder
) -> None:
    httpserver.expect_request(PATH).respond_with_data("down", status=503)
    clock = FakeClock()
    with HttpClient(
        retry=RetryPolicy(attempts=3, base_delay=0.01),
        sleep=waits,
        breaker=BreakerPolicy(threshold=5, cooldown=30.0),
        clock=clock,
    ) as client:
        for _ in range(2):  # 3 + 2 attempts: the fifth failure opens the circuit
            with pytest.raises(ProviderUnavailableError):
                client.get(httpserver.url_for(PATH), provider="acme")
        assert requests_made(httpserver) == 5
        with pytest.raises(CircuitOpenError, match="circuit open after 5 failed calls"):
            client.get(httpserver.url_for(PATH), provider="acme")
        assert requests_made(httpserver) == 5  # refused without a request
        # another provider has its own circuit
        httpserver.expect_request("/other").respond_with_data("ok")
        assert client.get(httpserver.url_for("/other"), provider="other").text == "ok"

        # after the cooldown one trial call is let through; failing, it reopens at once
        clock.now += 30.0
        with pytest.raises(ProviderUnavailableError):
            client.get(httpserver.url_for(PATH), provider="acme")
        assert requests_made(httpserver) == 6
        with pytest.raises(CircuitOpenError):
            client.get(httpserver.url_for(PATH), provider="acme")


def test_a_successful_trial_closes_the_circuit(
    httpserver: HTTPServer, waits: SleepRecorder
) -> None:
    answers = iter([503] * 5 + [200, 200])
    httpserver.expect_request(PATH).respond_with_handler(
        lambda _: Response("x", status=next(answers))
    )
    clock = FakeClock()
    with HttpClient(
        retry=RetryPolicy(attempts=5, base_delay=0.01),
        sleep=waits,
        breaker=BreakerPolicy(threshold=5, cooldown=10.0),
        clock=clock,
    ) as client:
        with pytest.raises(ProviderUnavailableError):
            client.get(httpserver.url_for(PATH), provider="acme")
        clock.now += 10.0
        assert client.get(httpserver.url_for(PATH), provider="acme").text == "x"
        assert client.get(httpserver.url_for(PATH), provider="acme").text == "x"  # closed


def test_full_jitter_stays_under_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    random.seed(7)
    delays = {attempt: [policy.delay(attempt) for _ in range(200)] for attempt in (1, 2, 3, 6)}
    for attempt, values in delays.items():
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert all(0.0 <= d <= ceiling for d in values)
        assert max(values) - min(values) > ceiling / 2  # spread out, not a fixed wait
