"""Alert delivery end to end: real Postgres outbox, a real local HTTP receiver, SMTP, Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import polars as pl
import psycopg
import pytest
import redis
from pytest_httpserver import HTTPServer
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug import Request, Response

from engine.io.alert_delivery import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    DeliveryReport,
    UnsafeTargetError,
    check_target,
    deliver_due,
    run_delivery_loop,
    sign,
    verify_signature,
)
from engine.io.alert_feed import events_channel, publish_events, subscribe_events
from engine.io.alerts import get_events, insert_rule, record_events
from engine.io.api_keys import server_secret
from engine.io.bars import ensure_instruments
from engine.io.cache import async_client
from engine.settings import PROJECT_ROOT, Settings

BAR = datetime(2024, 3, 1, 21, tzinfo=UTC)
SECRET = "a-webhook-secret-of-some-length"


@pytest.fixture(scope="module")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver(http_server: HTTPServer) -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 that records every request it gets (fresh per test)."""
    http_server.clear()
    yield http_server
    http_server.clear()


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    """Settings that let webhooks reach the local receiver (private targets allowed)."""
    return replace(settings, alert_allow_private_targets=True)


def _firing(rule_id: int, ts: datetime = BAR) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rule_id": [rule_id],
            "symbol": ["SPX"],
            "ts": [ts],
            "severity": ["critical"],
            "message": ["SPX entered the <high-vol> regime"],
            "payload": ['{"regime": 2, "probability": 0.93}'],
            "dedupe_key": [f"{rule_id}:SPX:{ts.isoformat()}"],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def _rule(database_url: str, channels: Sequence[dict[str, Any]]) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_instruments(conn, [("SPX", None)], "sample")
        return insert_rule(
            conn, {"name": "regime shift", "kind": "regime_change", "channels": list(channels)}
        )


def _fire(database_url: str, channels: Sequence[dict[str, Any]]) -> list[int]:
    """Event ids of one firing of a new rule with `channels`, recorded with its outbox."""
    rule_id = _rule(database_url, channels)
    with psycopg.connect(database_url, autocommit=True) as conn:
        return record_events(conn, _firing(rule_id), {rule_id: list(channels)})


def _deliveries(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT channel, status::text, attempts, last_error FROM alert_deliveries ORDER BY id"
        ).fetchall()


def _requests(server: HTTPServer, path: str | None = None) -> list[Request]:
    return [request for request, _ in server.log if path is None or request.path == path]


def _recording(status: Callable[[int], int]) -> Callable[[Request], Response]:
    calls = iter(range(1, 1000))
    return lambda request: Response("ok", status=status(next(calls)))


# ---------------------------------------------------------------- webhooks


def test_a_firing_is_delivered_once_with_a_valid_signature(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    channels = [{"type": "webhook", "url": receiver.url_for("/hook"), "secret": SECRET}]
    rule_id = _rule(database_url, channels)
    with psycopg.connect(database_url, autocommit=True) as conn:
        (event_id,) = record_events(conn, _firing(rule_id), {rule_id: channels})
        assert record_events(conn, _firing(rule_id), {rule_id: channels}) == []  # re-evaluated

    assert deliver_due(database_url, open_settings) == DeliveryReport(sent=1)
    assert deliver_due(database_url, open_settings) == DeliveryReport()

    (request,) = _requests(receiver)
    body = request.get_data()
    header = request.headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, header, body)
    assert not verify_signature("another-secret-entirely", header, body)
    assert not verify_signature(SECRET, header, body.replace(b"0.93", b"0.99"))
    assert request.headers[EVENT_HEADER] == str(event_id)
    assert request.headers["Content-Type"] == "application/json"
    sent = json.loads(body)
    assert sent == {
        "event_id": event_id,
        "delivery_id": int(request.headers[DELIVERY_HEADER]),
        "rule": "regime shift",
        "symbol": "SPX",
        "ts": "2024-03-01T21:00:00+00:00",
        "severity": "critical",
        "message": "SPX entered the <high-vol> regime",
        "payload": {"regime": 2, "probability": 0.93},
    }
    assert _deliveries(database_url) == [("webhook", "sent", 1, None)]


def test_signatures_expire_so_captured_requests_cannot_be_replayed() -> None:
    body = b'{"event_id": 1}'
    now = time.time()
    fresh = sign(SECRET, body)
    stale = sign(SECRET, body, timestamp=int(now) - 301)
    future = sign(SECRET, body, timestamp=int(now) + 301)

    assert verify_signature(SECRET, fresh, body) and verify_signature(SECRET.encode(), fresh, body)
    assert not verify_signature(SECRET, stale, body)
    assert not verify_signature(SECRET, future, body)
    assert verify_signature(SECRET, stale, body, tolerance=600)
    assert not verify_signature(SECRET, fresh, body, now=now + 3600)
    assert not verify_signature(SECRET, "v1=abc", body) and not verify_signature(SECRET, "", body)
    resigned = fresh.replace(fresh.split(",")[0], f"t={int(now) + 1}")  # new t, old mac
    assert not verify_signature(SECRET, resigned, body)


def test_a_receiver_failing_twice_then_succeeding_gets_it_once(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/flaky").respond_with_handler(
        _recording(lambda call: 500 if call <= 2 else 200)
    )
    _fire(database_url, [{"type": "webhook", "url": receiver.url_for("/flaky")}])

    reports: list[DeliveryReport] = []
    deadline = time.monotonic() + 10
    while not any(r.sent for r in reports) and time.monotonic() < deadline:
        report = deliver_due(database_url, open_settings, base_delay=0.05, jitter=0)
        if report != DeliveryReport():
            reports.append(report)
        time.sleep(0.02)

    assert reports == [DeliveryReport(retried=1), DeliveryReport(retried=1), DeliveryReport(sent=1)]
    assert _deliveries(database_url) == [("webhook", "sent", 3, None)]
    requests = _requests(receiver)
    assert len(requests) == 3
    assert len({r.headers[DELIVERY_HEADER] for r in requests}) == 1  # the receiver's dedupe key
    secret = server_secret(open_settings)  # no channel secret: signed with the server's
    for request in requests:
        assert verify_signature(secret, request.headers[SIGNATURE_HEADER], request.get_data())


def test_slack_and_discord_get_their_own_payloads_and_sse_nothing(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    for path in ("/slack", "/discord"):
        receiver.expect_request(path, method="POST").respond_with_data("ok")
    _fire(
        database_url,
        [
            {"type": "slack", "url": receiver.url_for("/slack")},
            {"type": "discord", "url": receiver.url_for("/discord")},
            {"type": "sse"},
        ],
    )

    assert deliver_due(database_url, open_settings) == DeliveryReport(sent=2)

    (slack,) = _requests(receiver, "/slack")
    (discord,) = _requests(receiver, "/discord")
    assert slack.json == {
        "text": ":rotating_light: *CRITICAL · regime shift* — SPX at 2024-03-01 21:00 UTC\n"
        "SPX entered the &lt;high-vol&gt; regime"
    }
    assert discord.json == {
        "content": "🚨 **CRITICAL · regime shift** — SPX at 2024-03-01 21:00 UTC\n"
        "SPX entered the <high-vol> regime",
        "allowed_mentions": {"parse": []},
    }
    assert SIGNATURE_HEADER not in slack.headers
    assert [row[:2] for row in _deliveries(database_url)] == [
        ("slack", "sent"),
        ("discord", "sent"),
    ]


def test_redirects_are_not_followed(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": receiver.url_for("/elsewhere")}
    )
    _fire(database_url, [{"type": "webhook", "url": receiver.url_for("/moved")}])

    assert deliver_due(database_url, open_settings) == DeliveryReport(retried=1)

    assert _requests(receiver, "/elsewhere") == []
    ((*_, error),) = _deliveries(database_url)
    assert error.startswith("HTTP 302 (redirects are not followed)")


def test_one_bad_target_does_not_hold_up_the_others(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/ok").respond_with_data("ok")
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
    _fire(
        database_url,
        [
            {"type": "webhook", "url": dead},
            {"type": "webhook", "url": "ftp://example.com/hook"},
            {"type": "webhook", "url": receiver.url_for("/ok")},
        ],
    )

    assert deliver_due(database_url, open_settings) == DeliveryReport(sent=1, retried=1, failed=1)
    dead_row, ftp_row, ok_row = _deliveries(database_url)
    assert dead_row[1] == "pending" and "ConnectError" in dead_row[3]
    assert ftp_row[1] == "failed" and "http or https" in ftp_row[3]
    assert ok_row[1] == "sent"


# ---------------------------------------------------------------- SSRF guard


def _resolver(*addresses: str) -> Callable[[str, int], list[str]]:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.1.10",
        "172.16.0.1",
        "169.254.10.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 form of 10.0.0.1
        "2002:a00:1::",  # 6to4 form of 10.0.0.1
    ],
)
def test_private_addresses_are_refused_by_default(address: str) -> None:
    with pytest.raises(UnsafeTargetError, match="refused"):
        check_target("https://hooks.example.com/x", resolve=_resolver(address))
    check_target("https://hooks.example.com/x", allow_private=True, resolve=_resolver(address))


def test_literal_and_metadata_targets() -> None:
    with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 is a loopback"):
        check_target("http://127.0.0.1:8080/hook")
    with pytest.raises(UnsafeTargetError, match="loopback"):
        check_target("http://[::1]/hook")
    with pytest.raises(UnsafeTargetError, match="loopback"):
        check_target("http://localhost:8080/hook")  # resolved, not matched by name
    assert [str(a) for a in check_target("http://127.0.0.1:8080/", allow_private=True)] == [
        "127.0.0.1"
    ]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"):
        for allow_private in (False, True):
            with pytest.raises(UnsafeTargetError, match="metadata address"):
                check_target(url, allow_private=allow_private)


def test_only_http_urls_resolving_to_public_addresses_pass() -> None:
    public = _resolver("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    assert len(check_target("https://hooks.example.com/x", resolve=public)) == 2
    with pytest.raises(UnsafeTargetError, match=r"resolves to 10\.0\.0\.7"):  # any bad one
        check_target("https://hooks.example.com/x", resolve=_resolver("93.184.215.14", "10.0.0.7"))
    for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "hooks"):
        with pytest.raises(UnsafeTargetError):
            check_target(url, resolve=public)

    def unresolvable(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DeliveryError, match="cannot resolve") as caught:
        check_target("https://nowhere.invalid/x", resolve=unresolvable)
    assert not isinstance(caught.value, UnsafeTargetError)  # DNS may recover: retried


def test_targets_are_checked_again_at_send_time_and_pinned(
    receiver: HTTPServer, database_url: str, settings: Settings, open_settings: Settings
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    url = f"http://hooks.example.test:{receiver.port}/hook"  # "rebinds" to loopback
    _fire(database_url, [{"type": "webhook", "url": url}])
    loopback = _resolver("127.0.0.1")

    assert deliver_due(database_url, settings, resolve=loopback) == DeliveryReport(failed=1)
    assert _requests(receiver) == []
    ((_, status, _, error),) = _deliveries(database_url)
    assert status == "failed" and "hooks.example.test resolves to 127.0.0.1" in error

    # allowed: the request goes to the checked address, under the URL's own Host name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE alert_deliveries SET status = 'pending', next_attempt_at = now()")
    assert deliver_due(database_url, open_settings, resolve=loopback) == DeliveryReport(sent=1)
    (request,) = _requests(receiver)
    assert request.headers["Host"] == f"hooks.example.test:{receiver.port}"


# ---------------------------------------------------------------- crash safety

_CRASHING_SENDER = """
import sys, time
from datetime import datetime, timezone
import polars as pl, psycopg
from engine.io.alerts import claim_deliveries, record_events

url, rule_id, hook, claim = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "claim"
firing = pl.DataFrame({
    "rule_id": [rule_id], "symbol": ["SPX"], "ts": [datetime(2024, 3, 1, tzinfo=timezone.utc)],
    "severity": ["info"], "message": ["m"], "payload": ["{}"], "dedupe_key": ["crash:SPX:1"],
})
with psycopg.connect(url, autocommit=True) as conn:
    created = record_events(conn, firing, {rule_id: [{"type": "webhook", "url": hook}]})
    claimed = claim_deliveries(conn, lease_seconds=1.5) if claim else []
    print(len(created), len(claimed), flush=True)
    time.sleep(60)  # SIGKILLed here: nothing sent, nothing marked
"""


@pytest.mark.parametrize("killed", ["after-write", "after-claim"])
def test_a_sender_killed_before_delivering_delivers_once_after_restart(
    killed: str, receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = receiver.url_for("/hook")
    rule_id = _rule(database_url, [{"type": "webhook", "url": hook}])
    mode = "claim" if killed == "after-claim" else "write"
    sender = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_SENDER, database_url, str(rule_id), hook, mode],
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        text=True,
    )
    try:
        assert sender.stdout is not None
        line = sender.stdout.readline().split()
    finally:
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=10)
        if sender.stdout is not None:
            sender.stdout.close()
    assert line == (["1", "1"] if killed == "after-claim" else ["1", "0"])
    assert _requests(receiver) == []

    if killed == "after-claim":  # the dead sender's lease must run out first
        assert _deliveries(database_url) == [("webhook", "sending", 1, None)]
        assert deliver_due(database_url, open_settings) == DeliveryReport()
        time.sleep(1.6)
    assert deliver_due(database_url, open_settings) == DeliveryReport(sent=1)
    assert deliver_due(database_url, open_settings) == DeliveryReport()

    assert len(_requests(receiver)) == 1
    attempts = 2 if killed == "after-claim" else 1
    assert _deliveries(database_url) == [("webhook", "sent", attempts, None)]


def test_the_async_loop_delivers_until_stopped(
    receiver: HTTPServer, database_url: str, open_settings: Settings
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")
    _fire(database_url, [{"type": "webhook", "url": receiver.url_for("/hook")}])

    async def main() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_delivery_loop(database_url, open_settings, stop, interval=0.05)
        )
        deadline = time.monotonic() + 5
        while not _requests(receiver) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 5)
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.0
    assert len(_requests(receiver)) == 1
    assert _deliveries(database_url)[0][1] == "sent"


# ---------------------------------------------------------------- email


class _SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to accept messages: every command is OK, DATA is recorded."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpSession)
        self.messages: list[bytes] = []


class _SmtpSession(socketserver.StreamRequestHandler):
    server: _SmtpSink

    def handle(self) -> None:
        self.wfile.write(b"220 sink ESMTP\r\n")
        lines: list[bytes] | None = None
        while line := self.rfile.readline():
            if lines is not None:  # inside DATA
                if line == b".\r\n":
                    self.server.messages.append(b"".join(lines))
                    lines = None
                    self.wfile.write(b"250 queued\r\n")
                else:
                    lines.append(line[1:] if line.startswith(b"..") else line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                lines = []
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_sink() -> Iterator[_SmtpSink]:
    sink = _SmtpSink()
    thread = threading.Thread(target=sink.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield sink
    sink.shutdown()
    sink.server_close()


def test_email_alerts_go_out_over_smtp(
    smtp_sink: _SmtpSink, database_url: str, settings: Settings
) -> None:
    (event_id,) = _fire(database_url, [{"type": "email", "to": ["ops@example.com", "q@x.org"]}])
    smtp = replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.server_address[1],
        smtp_starttls=False,
        smtp_from="RegimeLab <alerts@example.com>",
    )

    assert deliver_due(database_url, smtp) == DeliveryReport(sent=1)

    (raw,) = smtp_sink.messages
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "[RegimeLab critical] regime shift: SPX"
    assert mail["From"] == "RegimeLab <alerts@example.com>"
    assert mail["To"] == "ops@example.com, q@x.org"
    assert mail[EVENT_HEADER] == str(event_id)
    assert isinstance(mail, EmailMessage)
    body = mail.get_body()
    assert body is not None
    text = body.get_content()
    assert "SPX entered the <high-vol> regime" in text and '"probability": 0.93' in text


def test_email_without_smtp_settings_fails_clearly(database_url: str, settings: Settings) -> None:
    _fire(database_url, [{"type": "email", "to": ["ops@example.com"]}])

    assert deliver_due(database_url, settings) == DeliveryReport(failed=1)
    ((_, status, attempts, error),) = _deliveries(database_url)
    assert (status, attempts) == ("failed", 1) and "REGIMELAB_SMTP_HOST" in error


# ---------------------------------------------------------------- live feed


def test_published_events_reach_subscribers(
    database_url: str, redis_server_url: str, cache_prefix: str
) -> None:
    (event_id,) = _fire(database_url, [{"type": "sse"}])
    with psycopg.connect(database_url) as conn:
        events = get_events(conn, [event_id])
    publisher = redis.Redis.from_url(redis_server_url)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        subscriber = async_client(redis_server_url)
        stream = subscribe_events(subscriber, cache_prefix)
        idle = subscribe_events(subscriber, cache_prefix, idle_every=0.1)
        try:
            first = asyncio.ensure_future(anext(stream))
            deadline = time.monotonic() + 5
            while not publisher.pubsub_numsub(events_channel(cache_prefix))[0][1]:
                assert time.monotonic() < deadline, "subscriber never subscribed"
                await asyncio.sleep(0.01)
            assert publish_events(publisher, cache_prefix, events) == 1
            return await asyncio.wait_for(first, 5), await asyncio.wait_for(anext(idle), 5)
        finally:
            await stream.aclose()
            await idle.aclose()
            await subscriber.aclose()

    try:
        received, keepalive = asyncio.run(main())
    finally:
        publisher.close()

    assert received["id"] == event_id and received["rule"] == "regime shift"
    assert received["symbol"] == "SPX" and received["payload"] == {"regime": 2, "probability": 0.93}
    assert received["ts"] == "2024-03-01T21:00:00Z"
    assert keepalive == {}
    assert publish_events(None, cache_prefix, events) == 0
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with contextlib.closing(unreachable) as down:
        assert publish_events(down, cache_prefix, events) == 0  # logged, never raised
