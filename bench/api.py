"""API benchmark: the cached regime snapshot and a 10-year bars route under load.

    uv run python bench/api.py [--clients 100] [--seconds 30] [--workers 2]

For each route, 100 concurrent keep-alive clients for 30 s against `regimelab serve
--workers 2` (granian, the production setting) on loopback, with an API key (auth and the
per-key rate limiter run on every request; the limit is lifted for the bench). Two servers
are measured side by side: the default TTLs (cache hit) and TTL 0 for both routes
(`REGIMELAB_API_TTLS=...=0`: every request recomputes from Postgres, then stores).

Load comes from `wrk` when it is installed (`apt-get install wrk`; a C client that leaves
the cores to the server), else from a small asyncio HTTP/1.1 client in this process.
Runs against throwaway embedded PostgreSQL and Valkey, or DATABASE_URL/REDIS_URL if set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from engine.ingest.seed import SEED_SYMBOLS, seed_sample_data
from engine.io.api_keys import create_api_key
from engine.settings import load_settings

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
from ingest import servers  # noqa: E402  (bench/ingest.py: throwaway embedded servers)

# This file is bench/api.py: with its folder on the path, `import api` would find it
# instead of RegimeLab's package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

ROUTES = {
    "regime snapshot (SPX, IXIC)": "/api/v1/regimes/snapshot?symbols=SPX,IXIC",
    "bars SPX 2008-2017 (JSON)": "/api/v1/instruments/SPX/bars?start=2008-01-01&end=2017-12-31",
}
SECRET = "bench-secret-0123456789abcdef"


@dataclass(frozen=True)
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def api_server(
    database_url: str, redis_url: str, workers: int, ttls: str, prefix: str
) -> Iterator[str]:
    """`regimelab serve --workers N` in a subprocess; yields its base URL."""
    port = _free_port()
    state = tempfile.mkdtemp(prefix="regimelab-bench-api-")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REGIMELAB_SECRET_KEY": SECRET,
        "REGIMELAB_RATE_LIMIT": "0",
        "REGIMELAB_SCHEDULER": "false",
        "REGIMELAB_LOG_LEVEL": "WARNING",
        "REGIMELAB_CACHE_PREFIX": prefix,
        "REGIMELAB_API_TTLS": ttls,
        "REGIMELAB_STATE_DIR": state,
    }
    process = subprocess.Popen(
        ["regimelab", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start: {process.stderr and process.stderr.read()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(state, ignore_errors=True)


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert match, text
    return float(match[1]) * _WRK_UNITS[match[2]]


def load_wrk(url: str, key: str, clients: int, seconds: int) -> Figures:
    """wrk's own figures: requests/s and its latency distribution."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{clients}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"X-API-Key: {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    assert p50 and p99 and rps, out
    return Figures(
        float(rps[1]), _wrk_ms(p50[1]), _wrk_ms(p99[1]), int(non_2xx[1]) if non_2xx else 0
    )


async def _client(host: str, port: int, request: bytes, stop: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            out.append(time.perf_counter() - started)
    finally:
        writer.close()
    return errors


def load_python(url: str, key: str, clients: int, seconds: int) -> Figures:
    """A keep-alive asyncio HTTP/1.1 client (when wrk is not installed)."""
    parsed = httpx.URL(url)
    target = parsed.raw_path.decode()
    request = (f"GET {target} HTTP/1.1\r\nHost: {parsed.host}\r\nX-API-Key: {key}\r\n\r\n").encode()
    latencies: list[float] = []

    async def run() -> int:
        stop = time.perf_counter() + seconds
        tasks = [
            _client(parsed.host, parsed.port or 80, request, stop, latencies)
            for _ in range(clients)
        ]
        return sum(await asyncio.gather(*tasks))

    started = time.perf_counter()
    errors = asyncio.run(run())
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return Figures(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, errors)


def measure(url: str, key: str, clients: int, seconds: int) -> Figures:
    # warm: the first request computes (and, with TTL > 0, stores) the response
    for _ in range(3):
        response = httpx.get(url, headers={"X-API-Key": key}, timeout=30)
        response.raise_for_status()
    load = load_wrk if shutil.which("wrk") else load_python
    return load(url, key, clients, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from api.domain.regimes.services import ensure_regime_run

    with servers() as (database_url, redis_url):
        settings = load_settings(
            environ={
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "REGIMELAB_SECRET_KEY": SECRET,
                "REGIMELAB_STATE_DIR": tempfile.mkdtemp(prefix="regimelab-bench-state-"),
            }
        )
        seed_sample_data(settings, database_url=database_url, redis_url=redis_url)
        ensure_regime_run(settings, database_url, redis_url)
        with psycopg.connect(database_url, autocommit=True) as conn:
            _, key = create_api_key(conn, "bench", "read", SECRET.encode())
        print(
            f"{args.clients} clients x {args.seconds} s per route, {args.workers} granian "
            f"workers, load from {'wrk' if shutil.which('wrk') else 'asyncio client'}; "
            f"symbols {', '.join(SEED_SYMBOLS)}\n"
        )
        rows: dict[tuple[str, str], Figures] = {}
        modes = {
            "cache hit": "",
            "cache miss (TTL 0)": "regimes.snapshot=0,bars=0",
        }
        for mode, ttls in modes.items():
            prefix = f"regimelab-bench-{abs(hash(mode)) % 10_000}"
            with api_server(database_url, redis_url, args.workers, ttls, prefix) as url:
                for route, path in ROUTES.items():
                    rows[(route, mode)] = measure(url + path, key, args.clients, args.seconds)
                    figures = rows[(route, mode)]
                    print(
                        f"  measured {route} / {mode}: {figures.requests_per_second:,.0f} req/s",
                        flush=True,
                    )
        print()
        print("| route | cache | req/s | p50 ms | p99 ms | non-2xx |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for route in ROUTES:
            for mode in modes:
                f = rows[(route, mode)]
                print(
                    f"| {route} | {mode} | {f.requests_per_second:,.0f} | {f.p50_ms:.2f} | "
                    f"{f.p99_ms:.2f} | {f.errors} |"
                )
        for route in ROUTES:
            hit, miss = rows[(route, "cache hit")], rows[(route, "cache miss (TTL 0)")]
            ratio = hit.requests_per_second / miss.requests_per_second
            print(f"{route}: cache hit serves {ratio:.1f}x the requests/s of a miss")


if __name__ == "__main__":
    main()
