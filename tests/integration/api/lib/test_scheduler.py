"""Scheduler leadership on a real Postgres: one leader, one run per slot, failover."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from api.lib.jobs import JobEnv, JobRunner, load_jobs
from api.lib.scheduler import Scheduler
from engine.io.db import async_pool
from engine.settings import Settings
from tests.integration.api.cli_process import REGIMELAB, cli_env, state_outside_basetemp

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module

INTERVAL = 1.0  # leader check interval of these tests, seconds
SLOT = re.compile(r"^housekeeping@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def _only_housekeeping(database_url: str) -> None:
    """Switch off every other scheduled job, so a test at 22:00 UTC fetches nothing."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, definition in load_jobs().items():
            if name != "housekeeping" and definition.schedule is not None:
                conn.execute(
                    "INSERT INTO job_schedules (name, trigger, enabled, params) "
                    "VALUES (%s, 'off', false, %s)",
                    (name, Jsonb({})),
                )


def _scheduled_runs(database_url: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT job_name, trigger, slot_key, status::text FROM job_runs ORDER BY id"
        ).fetchall()
    return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition()` held (polled every 10 ms); fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def test_one_leader_runs_each_slot_once_and_lets_go(settings: Settings) -> None:
    """Two schedulers in one database: one leads and runs housekeeping once per second;
    a lost connection demotes it at once; when it stops the other takes over."""
    assert settings.database_url is not None
    database_url = settings.database_url
    _only_housekeeping(database_url)
    fast = dataclasses.replace(
        settings,
        scheduler=True,
        leader_check_seconds=0.5,
        schedules=("housekeeping=every 1s",),
        job_workers=1,
    )

    async def main() -> None:
        pool = await async_pool(database_url, min_size=1, max_size=4)
        runner = JobRunner(pool, JobEnv(fast, database_url, fast.redis_url), 1)
        first = Scheduler(fast, database_url, runner, pool)
        second = Scheduler(fast, database_url, runner, pool)
        try:
            await first.start()
            await _until(lambda: first.is_leader, 5, "the first scheduler leads")
            await second.start()
            await asyncio.sleep(1.5)  # three of its checks
            assert (first.state, second.state) == ("leader", "follower")

            def finished() -> int:
                return sum(row[3] == "succeeded" for row in _scheduled_runs(database_url))

            await _until(lambda: finished() >= 2, 20, "two scheduled housekeeping runs")

            # the leader's lock connection dies: it stops scheduling, someone leads again
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'regimelab-scheduler' AND datname = "
                    "current_database() AND pid IN (SELECT pid FROM pg_locks "
                    "WHERE locktype = 'advisory')"
                )
            await _until(lambda: not first.is_leader, 1.5, "the leader steps down")
            await _until(lambda: first.is_leader or second.is_leader, 2, "a new leader")

            leader, follower = (first, second) if first.is_leader else (second, first)
            await leader.stop()  # a clean stop releases the lock for the other
            await _until(lambda: follower.is_leader, 1.5, "the follower takes over")
        finally:
            await first.stop()
            await second.stop()
            await runner.close()
            await pool.close()

    asyncio.run(main())

    runs = _scheduled_runs(database_url)
    assert {(job, trigger) for job, trigger, _, _ in runs} == {("housekeeping", "schedule")}
    slots = [slot for _, _, slot, _ in runs]
    assert all(SLOT.match(slot) for slot in slots), slots
    assert len(set(slots)) == len(slots)  # one run per slot, whoever led


def test_schedules_table_changes_reach_the_leader(settings: Settings) -> None:
    """Switching a job off in the table stops its runs at the leader's next check."""
    assert settings.database_url is not None
    database_url = settings.database_url
    _only_housekeeping(database_url)
    fast = dataclasses.replace(
        settings, scheduler=True, leader_check_seconds=0.5, schedules=("housekeeping=every 1s",)
    )

    async def main() -> None:
        pool = await async_pool(database_url, min_size=1, max_size=4)
        runner = JobRunner(pool, JobEnv(fast, database_url, fast.redis_url), 1)
        scheduler = Scheduler(fast, database_url, runner, pool)
        try:
            await scheduler.start()
            await _until(lambda: len(_scheduled_runs(database_url)) >= 2, 20, "two runs")
            async with pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO job_schedules (name, trigger, enabled) "
                    "VALUES ('housekeeping', 'every 1s', false)"
                )
            await asyncio.sleep(0.6)  # one check
            before = len(_scheduled_runs(database_url))
            await asyncio.sleep(2.2)
            assert len(_scheduled_runs(database_url)) == before
            assert scheduler.is_leader
        finally:
            await scheduler.stop()
            await runner.close()
            await pool.close()

    asyncio.run(main())


def test_disabled_scheduler_never_competes(settings: Settings) -> None:
    assert settings.database_url is not None
    database_url = settings.database_url

    async def main() -> str:
        pool = await async_pool(database_url, min_size=1, max_size=2)
        runner = JobRunner(pool, JobEnv(settings, database_url, settings.redis_url), 1)
        scheduler = Scheduler(settings, database_url, runner, pool)  # scheduler=False
        try:
            await scheduler.start()
            await asyncio.sleep(0.2)
            return scheduler.state
        finally:
            await scheduler.stop()
            await runner.close()
            await pool.close()

    assert asyncio.run(main()) == "disabled"
    with psycopg.connect(database_url) as conn:
        locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert locks.fetchone() == (0,)


# Two real API processes against one database ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """A `regimelab serve` process in its own process group (with its job workers)."""

    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        assert settings.database_url is not None and settings.redis_url is not None
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp_path / f"serve-{port}.log"
        assert settings.secret_key is not None
        env = cli_env(
            tmp_path,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            REGIMELAB_SECRET_KEY=settings.secret_key.reveal(),
            REGIMELAB_CACHE_PREFIX=settings.cache_prefix,
            REGIMELAB_PORT=str(port),
            REGIMELAB_SCHEDULER="true",
            REGIMELAB_LEADER_CHECK_SECONDS=str(INTERVAL),
            REGIMELAB_SCHEDULES="housekeeping=every 1s",
            REGIMELAB_JOB_WORKERS="1",
            REGIMELAB_LOG_FORMAT="text",
        )
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [REGIMELAB, "serve"],
                env=env,
                cwd=tmp_path,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def role(self) -> str | None:
        """This replica's scheduler role per /ready, or None while it does not answer."""
        if self.process.poll() is not None:
            raise AssertionError(f"`serve` exited:\n{self.log.read_text()}")
        try:
            response = httpx.get(f"{self.url}/ready", timeout=1)
        except httpx.HTTPError:
            return None
        return str(response.json()["scheduler"]) if response.status_code == 200 else None

    def housekeeping_runs(self) -> float:
        """How many housekeeping runs this replica finished (its Prometheus counter)."""
        text = httpx.get(f"{self.url}/metrics", timeout=2).text
        counts = re.findall(
            r'^regimelab_job_duration_seconds_count\{job="housekeeping",[^}]*\} (\S+)$',
            text,
            flags=re.MULTILINE,
        )
        return sum(float(count) for count in counts)

    def kill(self) -> None:
        """Die without a word: SIGKILL to the server and its job workers."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Teardown: nothing graceful is under test here, so no waiting for it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def replicas(tmp_path: Path, settings: Settings) -> Iterator[Callable[[], Replica]]:
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(tmp_path, settings)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()


def _roles(a: Replica, b: Replica, timeout: float = 60) -> tuple[str | None, str | None]:
    """Both replicas' roles once both answer and one of them leads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        roles = (a.role(), b.role())
        if None not in roles and "leader" in roles:
            return roles
        time.sleep(0.1)
    raise AssertionError(f"no leader within {timeout} s:\n{a.log.read_text()}")


def test_killing_the_leader_hands_over_within_one_check(
    settings: Settings, replicas: Callable[[], Replica]
) -> None:
    assert settings.database_url is not None
    database_url = settings.database_url
    _only_housekeeping(database_url)
    a, b = replicas(), replicas()

    roles = _roles(a, b)
    assert sorted(roles) == ["follower", "leader"], roles  # exactly one leads
    leader, follower = (a, b) if roles[0] == "leader" else (b, a)
    deadline = time.monotonic() + 30
    while leader.housekeeping_runs() < 1:
        assert time.monotonic() < deadline, leader.log.read_text()
        time.sleep(0.1)
    assert follower.role() == "follower"
    assert follower.housekeeping_runs() == 0  # only the leader runs scheduled jobs
    before_kill = {slot for _, _, slot, _ in _scheduled_runs(database_url)}

    leader.kill()
    killed = time.monotonic()
    while follower.role() != "leader":
        assert time.monotonic() - killed < INTERVAL + 1, "no takeover within interval + 1 s"
        time.sleep(0.02)

    deadline = time.monotonic() + 10
    while not {slot for _, _, slot, _ in _scheduled_runs(database_url)} - before_kill:
        assert time.monotonic() < deadline, "the new leader schedules nothing"
        time.sleep(0.1)
    runs = _scheduled_runs(database_url)
    assert {(job, trigger) for job, trigger, _, _ in runs} == {("housekeeping", "schedule")}
    slots = [slot for _, _, slot, _ in runs]
    assert len(set(slots)) == len(slots)
