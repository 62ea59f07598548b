"""Load test: many concurrent clients against the production server settings, on loopback.

    uv run python bench/load.py [--clients 200] [--seconds 60]

Starts `regimelab serve --workers 2` (granian, two worker processes: what the Dockerfile
runs) on throwaway embedded PostgreSQL and Valkey seeded with the sample S&P 500 and
NASDAQ and a fitted HMM, then runs `--clients` concurrent clients for `--seconds`, each
looping over a mix of the regime snapshot (40 %), daily bars (30 %), regime labels and
statistics (20 %) and backtest submissions (10 %, each a real job). Reports requests/s,
p50/p99 latency per route and overall, errors (any non-2xx or transport error), and the
server's memory (RSS of the server and its workers) after warm-up, at the end and at its
peak. Rate limiting is off for the run (one key would otherwise be throttled).

`tests/integration/faults/test_load.py` runs the same load in a short mode (<= 20 s) and
requires no errors and no runaway memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

BENCH = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == BENCH:
    sys.path.pop(0)  # run as a script: bench/api.py would shadow the `api` package

Route = tuple[str, str, str, dict[str, object] | None]  # name, method, path, JSON body

MIX: tuple[tuple[float, Route], ...] = (
    (0.40, ("snapshot", "GET", "/api/v1/regimes/snapshot", None)),
    (0.15, ("bars", "GET", "/api/v1/instruments/SPX/bars?start=2016-01-01", None)),
    (0.15, ("bars", "GET", "/api/v1/instruments/IXIC/bars?start=2017-01-01&format=csv", None)),
    (0.10, ("labels", "GET", "/api/v1/regimes/labels?symbol=SPX&limit=500", None)),
    (0.10, ("stats", "GET", "/api/v1/regimes/stats?symbol=IXIC", None)),
    (
        0.10,
        (
            "backtest",
            "POST",
            "/api/v1/backtests",
            {"spec": {"strategy": "sma_crossover", "symbols": ["SPX"], "start": "2015-01-01"}},
        ),
    ),
)


@dataclass
class LoadReport:
    """What a load run measured."""

    seconds: float
    clients: int
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rss_after_warmup: int = 0
    rss_middle: int = 0
    rss_end: int = 0
    rss_peak: int = 0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rss_growth(self) -> float:
        """End RSS over the RSS after warm-up, minus one (job workers start on demand, so
        part of it is new processes, not growth of old ones)."""
        return self.rss_end / max(self.rss_after_warmup, 1) - 1.0

    @property
    def late_growth(self) -> float:
        """Growth over the second half of the run: near zero when memory has levelled off,
        the sign of a leak when it keeps climbing."""
        return self.rss_end / max(self.rss_middle, 1) - 1.0

    def lines(self) -> list[str]:
        def ms(values: list[float], q: int) -> float:
            return 1000 * statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else 0.0

        everything = [v for values in self.latencies.values() for v in values]
        rows = [*sorted(self.latencies.items()), ("all", everything)]
        out = [
            f"{self.clients} clients x {self.seconds:.0f} s: {self.requests:,} requests, "
            f"{self.requests / self.seconds:,.0f} req/s, errors {self.error_count}",
            f"  {'route':<10}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}",
        ]
        for name, values in rows:
            out.append(
                f"  {name:<10}{len(values):>10,}{ms(values, 50):>10.1f}{ms(values, 99):>10.1f}"
            )
        if self.errors:
            out.append(f"  errors: {dict(self.errors)}")
        mib = 1024 * 1024
        out.append(
            f"  server memory (RSS, server + workers): {self.rss_after_warmup / mib:,.0f} MiB "
            f"after warm-up, {self.rss_end / mib:,.0f} MiB at the end ({self.rss_growth:+.1%}), "
            f"peak {self.rss_peak / mib:,.0f} MiB; second half {self.late_growth:+.1%}"
        )
        return out


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total


async def _client(
    http: httpx.AsyncClient,
    report: LoadReport,
    deadline: float,
    seed: int,
    record: Callable[[], bool],
) -> None:
    rng = random.Random(seed)
    weights = [w for w, _ in MIX]
    routes = [r for _, r in MIX]
    while time.monotonic() < deadline:
        name, method, path, body = rng.choices(routes, weights)[0]
        started = time.perf_counter()
        try:
            response = await http.request(method, path, json=body)
            ok = response.is_success
            failure = f"{name} HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, failure = False, f"{name} {type(exc).__name__}"
        if not record():
            continue
        if ok:
            report.latencies[name].append(time.perf_counter() - started)
        else:
            report.errors[failure] += 1


async def run_load(
    url: str, key: str, *, clients: int, seconds: float, server_pid: int, warmup: float = 3.0
) -> LoadReport:
    """Drive `clients` concurrent clients for `warmup` + `seconds`; measure after warm-up."""
    report = LoadReport(seconds=seconds, clients=clients)
    started = time.monotonic()
    measuring = threading.Event()
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.wait(0.5):
            rss = tree_rss(server_pid)
            if measuring.is_set():
                report.rss_peak = max(report.rss_peak, rss)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=limits,
    ) as http:
        deadline = started + warmup + seconds

        async def warm() -> None:
            await asyncio.sleep(warmup)
            report.rss_after_warmup = tree_rss(server_pid)
            measuring.set()
            await asyncio.sleep(seconds / 2)
            report.rss_middle = tree_rss(server_pid)

        await asyncio.gather(
            warm(),
            *(_client(http, report, deadline, seed, measuring.is_set) for seed in range(clients)),
        )
    report.rss_end = tree_rss(server_pid)
    report.rss_peak = max(report.rss_peak, report.rss_end)
    stop.set()
    sampler.join(timeout=2)
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], port: int, log: Path, workers: int = 2
) -> subprocess.Popen[bytes]:
    """`regimelab serve --workers N` in its own process group; returns once it is ready."""
    regimelab = Path(sys.executable).with_name("regimelab")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(regimelab), "serve", "--workers", str(workers)],
            env={**os.environ, **env, "REGIMELAB_PORT": str(port)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`regimelab serve` exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise RuntimeError("`regimelab serve` did not become ready")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def seed(settings_env: dict[str, str]) -> str:
    """Load the sample series, fit the default regimes, and return an admin API key."""
    from api.domain.regimes.services import ensure_regime_run
    from engine.ingest.service import build_request, run_ingest
    from engine.io.api_keys import create_api_key, server_secret
    from engine.io.db import connect
    from engine.settings import load_settings

    settings = load_settings(environ=settings_env)
    assert settings.database_url is not None
    run_ingest(
        settings,
        build_request("sample", "SPX,IXIC"),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    ensure_regime_run(settings, settings.database_url, settings.redis_url)
    with connect(settings.database_url, autocommit=True) as conn:
        _, key = create_api_key(conn, "load", "admin", server_secret(settings))
    return key


def _bench_module(name: str) -> Any:
    """A sibling bench script, loaded by path (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    servers = _bench_module("ingest").servers  # bench/ingest.py: throwaway embedded servers

    with servers() as (database_url, redis_url):
        env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REGIMELAB_SECRET_KEY": "load-test-secret-key-0123456789abcdef",
            "REGIMELAB_RATE_LIMIT": "0",
            "REGIMELAB_SCHEDULER": "false",
            "REGIMELAB_LOG_FORMAT": "json",
            "REGIMELAB_DB_POOL_MAX": "20",
        }
        key = seed(env)
        port = free_port()
        log = Path(f"/tmp/regimelab-load-{port}.log")
        server = start_server(env, port, log, args.workers)
        try:
            report = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{port}",
                    key,
                    clients=args.clients,
                    seconds=args.seconds,
                    server_pid=server.pid,
                )
            )
        finally:
            stop_server(server)
    print(f"regimelab serve --workers {args.workers} on loopback (server log: {log})")
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
