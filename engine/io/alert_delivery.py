"""Alert delivery: signed webhooks, Slack, Discord and email from the outbox; the live feed.

A delivery round claims due outbox rows (engine.io.alerts), sends each one concurrently and
records the outcome as it completes, so one slow or broken target never holds up the rest.
Delivery is at-least-once: a sender that dies after sending but before recording leaves a
lease that expires, and the delivery is sent again; webhook receivers deduplicate on the
`X-RegimeLab-Delivery` header.

Webhook targets pass an SSRF guard: http(s) only, and every address the host resolves to
must be public (no loopback, private, link-local, multicast, reserved or unspecified
addresses, nor IPv4-mapped/6to4/Teredo/NAT64 forms of them) unless private targets are
allowed in settings; cloud metadata addresses are refused even then. The check runs again
at send time and the request goes to the address that was checked (DNS rebinding can't
swap it), with redirects not followed and proxy variables ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import smtplib
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Final

import httpx
import msgspec
import psycopg

from engine.errors import RegimeLabError
from engine.io.alerts import Claimed, claim_deliveries, mark_failed, mark_sent
from engine.io.api_keys import server_secret
from engine.io.db import connect
from engine.io.targets import forbidden_reason
from engine.settings import Settings

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryError",
    "DeliveryReport",
    "DeliveryWorker",
    "PermanentDeliveryError",
    "UnsafeTargetError",
    "check_target",
    "deliver_due",
    "discord_payload",
    "email_message",
    "resolve_host",
    "run_delivery_loop",
    "send_email",
    "sign",
    "slack_payload",
    "verify_signature",
    "webhook_payload",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-RegimeLab-Signature"
DELIVERY_HEADER: Final = "X-RegimeLab-Delivery"
EVENT_HEADER: Final = "X-RegimeLab-Event"
_USER_AGENT: Final = "RegimeLab-Alerts/0.1 (+https://github.com/regimelab)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class DeliveryError(RegimeLabError):
    """An attempt failed in a way a later attempt may not (network, HTTP status, DNS)."""


class PermanentDeliveryError(DeliveryError):
    """An attempt failed in a way retrying cannot fix (bad target, missing configuration)."""


class UnsafeTargetError(PermanentDeliveryError):
    """A webhook target the SSRF guard refuses (or not an http(s) URL at all)."""


# ---------------------------------------------------------------- SSRF guard


def resolve_host(host: str, port: int) -> list[str]:
    """Addresses `host` resolves to for TCP, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refusal(address: IPAddress, allow_private: bool) -> str | None:
    reason = forbidden_reason(address, allow_private=allow_private)
    if reason is None:
        return None
    return f"a {reason} address" + (" (always refused)" if reason == "cloud metadata" else "")


def check_target(
    url: str, *, allow_private: bool = False, resolve: Resolver = resolve_host
) -> list[IPAddress]:
    """The addresses `url`'s host resolves to, every one safe to connect to.

    UnsafeTargetError for a URL that is not http(s) or reaches a refused address (see the
    module docstring); DeliveryError if the host does not resolve (it may later).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTargetError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTargetError(f"alert webhooks must be http or https URLs, not {parsed.scheme!r}")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeTargetError("the webhook URL has no host")
    literal = _literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(a) for a in resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise DeliveryError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise DeliveryError(f"cannot resolve {host}: no addresses")
    for address in addresses:
        reason = _refusal(address, allow_private)
        if reason is not None:
            where = f"{address} is" if literal is not None else f"{host} resolves to {address},"
            hint = "" if "metadata" in reason else " (REGIMELAB_ALERT_ALLOW_PRIVATE_TARGETS)"
            raise UnsafeTargetError(f"refused: {where} {reason}{hint}")
    return addresses


def _pinned(url: httpx.URL, address: IPAddress) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """`url` sent to the checked `address`, keeping Host, TLS SNI and certificate name."""
    host = url.raw_host.decode("ascii")
    if _literal(host) is not None:
        return url, {}, {}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    return url.copy_with(host=str(address)), {"Host": url.netloc.decode("ascii")}, extensions


# ---------------------------------------------------------------- signatures


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes | str, body: bytes, *, timestamp: int | None = None) -> str:
    """The signature header value: `t=<unix ts>,v1=<hex HMAC-SHA256 of "<t>." + body>`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(_key(secret), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def verify_signature(
    secret: bytes | str,
    header: str,
    body: bytes,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """True if `header` signs the raw `body` with `secret` within `tolerance` seconds of now.

    The timestamp is part of what is signed, so a captured request can't be replayed
    after the tolerance window (receivers deduplicate within it by delivery id).
    """
    stamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            stamp = int(value)
        elif name == "v1":
            macs.append(value)
    if stamp is None or not macs:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp=stamp).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, mac) for mac in macs)


# ---------------------------------------------------------------- payloads

_SLACK_EMOJI: Final = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
_DISCORD_EMOJI: Final = {"info": "ℹ️", "warning": "⚠️", "critical": "🚨"}
_SLACK_LIMIT: Final = 3000
_DISCORD_LIMIT: Final = 2000


def _when(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def webhook_payload(delivery: Claimed) -> dict[str, Any]:
    """The JSON object a generic webhook receives for `delivery`."""
    return {
        "event_id": delivery.event_id,
        "delivery_id": delivery.id,
        "rule": delivery.rule,
        "symbol": delivery.symbol,
        "ts": delivery.ts.astimezone(UTC).isoformat(),
        "severity": delivery.severity,
        "message": delivery.message,
        "payload": delivery.payload,
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(delivery: Claimed) -> dict[str, Any]:
    """A Slack incoming-webhook body: `{"text": ...}` in mrkdwn with a severity emoji."""
    emoji = _SLACK_EMOJI.get(delivery.severity.lower(), ":bell:")
    title = _slack_escape(f"{delivery.severity.upper()} · {delivery.rule}")
    head = f"{emoji} *{title}* — {_slack_escape(delivery.symbol)} at {_when(delivery.ts)}"
    return {"text": f"{head}\n{_slack_escape(delivery.message)}"[:_SLACK_LIMIT]}


def discord_payload(delivery: Claimed) -> dict[str, Any]:
    """A Discord webhook body: `{"content": ...}` (markdown, mentions disabled)."""
    emoji = _DISCORD_EMOJI.get(delivery.severity.lower(), "🔔")
    head = f"{emoji} **{delivery.severity.upper()} · {delivery.rule}** — {delivery.symbol}"
    content = f"{head} at {_when(delivery.ts)}\n{delivery.message}"
    return {"content": content[:_DISCORD_LIMIT], "allowed_mentions": {"parse": []}}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def email_message(delivery: Claimed, sender: str) -> EmailMessage:
    """The email of `delivery` from `sender` to its comma-separated target addresses."""
    message = EmailMessage()
    message["Subject"] = _one_line(
        f"[RegimeLab {delivery.severity}] {delivery.rule}: {delivery.symbol}"
    )
    message["From"] = sender
    message["To"] = ", ".join(a.strip() for a in delivery.target.split(",") if a.strip())
    message[DELIVERY_HEADER] = str(delivery.id)
    message[EVENT_HEADER] = str(delivery.event_id)
    details = msgspec.json.format(msgspec.json.encode(delivery.payload), indent=2).decode()
    message.set_content(
        f"{delivery.message}\n\n"
        f"Rule:     {delivery.rule}\n"
        f"Symbol:   {delivery.symbol}\n"
        f"Bar:      {_when(delivery.ts)}\n"
        f"Severity: {delivery.severity}\n\n"
        f"Details:\n{details}\n"
    )
    return message


def send_email(delivery: Claimed, settings: Settings, *, timeout: float = 10.0) -> None:
    """Send `delivery` over the configured SMTP server; PermanentDeliveryError if there is none."""
    host = settings.smtp_host
    sender = settings.smtp_from or settings.smtp_user
    if not host:
        raise PermanentDeliveryError("email alerts need an SMTP server: set REGIMELAB_SMTP_HOST")
    if not sender:
        raise PermanentDeliveryError("email alerts need a sender: set REGIMELAB_SMTP_FROM")
    message = email_message(delivery, sender)
    context = ssl.create_default_context()
    implicit_tls = settings.smtp_port == 465
    smtp = (
        smtplib.SMTP_SSL(host, settings.smtp_port, timeout=timeout, context=context)
        if implicit_tls
        else smtplib.SMTP(host, settings.smtp_port, timeout=timeout)
    )
    with smtp:
        if settings.smtp_starttls and not implicit_tls:
            smtp.starttls(context=context)
        if settings.smtp_user:
            password = settings.smtp_password.reveal() if settings.smtp_password else ""
            smtp.login(settings.smtp_user, password)
        smtp.send_message(message)


# ---------------------------------------------------------------- delivery rounds


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one delivery round did: sent, scheduled for a retry, failed for good."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Failure:
    error: str
    permanent: bool


def _head(response: httpx.Response, size: int = 200) -> bytes:
    """The first `size` bytes of a streamed response body (for error messages)."""
    head = b""
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= size:
            break
    return head[:size]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DeliveryWorker:
    """Sends due deliveries one round per `run_once`, reusing a connection and HTTP client.

    Safe to run in every API replica at once: claims are disjoint. `lease_seconds` must
    outlast a round; by default it covers `limit / concurrency` sends at `timeout` each.
    """

    def __init__(
        self,
        database_url: str,
        settings: Settings,
        *,
        limit: int = 50,
        timeout: float = 10.0,
        concurrency: int = 8,
        lease_seconds: float | None = None,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        jitter: float = 0.1,
        resolve: Resolver = resolve_host,
    ) -> None:
        self.limit = limit
        self.timeout = timeout
        self.concurrency = max(1, concurrency)
        self.lease_seconds = (
            lease_seconds
            if lease_seconds is not None
            else timeout * math.ceil(limit / self.concurrency) + 30
        )
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.max_attempts = max(1, settings.alert_max_attempts)
        self._database_url = database_url
        self._settings = settings
        self._resolve = resolve
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()  # one round at a time; close() waits for it
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # a proxy would connect on our behalf, past the address check
            # no reuse: a pooled connection (keyed by address) was verified for another name
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": _USER_AGENT},
        )

    def __enter__(self) -> DeliveryWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connection and the HTTP client (after a running round)."""
        with self._lock:
            self._http.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def run_once(self) -> DeliveryReport:
        """What one round did: claim due deliveries, send them, record each outcome."""
        with self._lock:
            conn = self._connection()
            try:
                return self._round(conn)
            except psycopg.Error:
                conn.close()  # reconnect next round
                self._conn = None
                raise

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self._database_url, autocommit=True)
        return self._conn

    def _round(self, conn: psycopg.Connection) -> DeliveryReport:
        claimed = claim_deliveries(
            conn,
            limit=self.limit,
            lease_seconds=self.lease_seconds,
            max_attempts=self.max_attempts,
        )
        if not claimed:
            return DeliveryReport()
        outcomes: Counter[str] = Counter()
        workers = min(self.concurrency, len(claimed))
        with ThreadPoolExecutor(workers, thread_name_prefix="alert-delivery") as pool:
            futures = {pool.submit(self._attempt, delivery): delivery for delivery in claimed}
            for future in as_completed(futures):  # record each as soon as it is known
                outcomes[self._record(conn, futures[future], future.result())] += 1
        return DeliveryReport(
            sent=outcomes["sent"], retried=outcomes["pending"], failed=outcomes["failed"]
        )

    def _record(self, conn: psycopg.Connection, delivery: Claimed, failure: _Failure | None) -> str:
        if failure is None:
            mark_sent(conn, delivery.id)
            return "sent"
        status = mark_failed(
            conn,
            delivery.id,
            failure.error,
            max_attempts=self.max_attempts,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            jitter=self.jitter,
            permanent=failure.permanent,
            attempt=delivery.attempts,  # a sender whose lease ran out can't undo a newer claim
        )
        log.warning(
            "alert delivery %d (%s, event %d) attempt %d failed%s: %s",
            delivery.id,
            delivery.channel,
            delivery.event_id,
            delivery.attempts,
            " for good" if status == "failed" else "",
            failure.error,
        )
        return status or "lost"

    def send_now(self, delivery: Claimed) -> str | None:
        """Why sending `delivery` now failed, or None when it went out; nothing is claimed
        or recorded (test notifications), but the SSRF check, signing and payloads are a real
        delivery's."""
        failure = self._attempt(delivery)
        return None if failure is None else failure.error

    def _attempt(self, delivery: Claimed) -> _Failure | None:
        try:
            self._send(delivery)
        except PermanentDeliveryError as exc:
            return _Failure(str(exc), permanent=True)
        except DeliveryError as exc:
            return _Failure(str(exc), permanent=False)
        except Exception as exc:  # network, SMTP, anything: this target only
            return _Failure(_describe(exc), permanent=False)
        return None

    def _send(self, delivery: Claimed) -> None:
        match delivery.channel:
            case "webhook":
                body = msgspec.json.encode(webhook_payload(delivery))
                headers = {
                    SIGNATURE_HEADER: sign(self._webhook_secret(delivery), body),
                    DELIVERY_HEADER: str(delivery.id),
                    EVENT_HEADER: str(delivery.event_id),
                }
                self._post(delivery.target, body, headers)
            case "slack":
                self._post(delivery.target, msgspec.json.encode(slack_payload(delivery)), {})
            case "discord":
                self._post(delivery.target, msgspec.json.encode(discord_payload(delivery)), {})
            case "email":
                send_email(delivery, self._settings, timeout=self.timeout)
            case other:
                raise PermanentDeliveryError(f"unknown alert channel {other!r}")

    def _webhook_secret(self, delivery: Claimed) -> bytes:
        secret = delivery.config.get("secret")
        if isinstance(secret, str) and secret:
            return secret.encode()
        try:
            return server_secret(self._settings)
        except RegimeLabError as exc:
            raise PermanentDeliveryError(f"cannot sign the webhook: {exc}") from None

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        addresses = check_target(
            url, allow_private=self._settings.alert_allow_private_targets, resolve=self._resolve
        )
        target, host_header, extensions = _pinned(httpx.URL(url), addresses[0])
        with self._http.stream(
            "POST",
            target,
            content=body,
            headers={"Content-Type": "application/json", **headers, **host_header},
            extensions=extensions,
        ) as response:
            if response.is_success:
                return  # the body is never read: a receiver can't stall or flood us with it
            note = " (redirects are not followed)" if response.is_redirect else ""
            snippet = _one_line(_head(response).decode(errors="replace"))
        raise DeliveryError(f"HTTP {response.status_code}{note}: {snippet}".rstrip(": "))


def deliver_due(
    database_url: str,
    settings: Settings,
    *,
    limit: int = 50,
    timeout: float = 10.0,
    concurrency: int = 8,
    lease_seconds: float | None = None,
    base_delay: float = 2.0,
    max_delay: float = 3600.0,
    jitter: float = 0.1,
    resolve: Resolver = resolve_host,
) -> DeliveryReport:
    """What one delivery round did (see DeliveryWorker; this one opens and closes its own)."""
    with DeliveryWorker(
        database_url,
        settings,
        limit=limit,
        timeout=timeout,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        base_delay=base_delay,
        max_delay=max_delay,
        jitter=jitter,
        resolve=resolve,
    ) as worker:
        return worker.run_once()


async def run_delivery_loop(
    database_url: str,
    settings: Settings,
    stop: asyncio.Event,
    *,
    interval: float = 1.0,
    limit: int = 50,
    timeout: float = 10.0,
    concurrency: int = 8,
) -> None:
    """Returns once `stop` is set: until then, a delivery round (in a thread) per `interval`.

    A full round starts the next one at once (a backlog drains without waiting). A failing
    round (database down) is logged once per outage and retried. For an API lifespan:
    `task = asyncio.create_task(run_delivery_loop(...))`, then `stop.set(); await task`.
    """
    worker = DeliveryWorker(
        database_url, settings, limit=limit, timeout=timeout, concurrency=concurrency
    )
    failing = False
    try:
        while not stop.is_set():
            backlog = False
            try:
                report = await asyncio.to_thread(worker.run_once)
                backlog = report.sent + report.retried + report.failed >= limit
                if failing:
                    log.info("alert delivery recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("alert delivery round failed (will keep trying): %s", exc)
                failing = True
            if not backlog:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
    finally:
        await asyncio.to_thread(worker.close)
