"""The `regimelab` command as a user runs it: real processes, real servers, real HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from engine.io.embedded import EmbeddedPostgres, EmbeddedValkey
from engine.settings import PROJECT_ROOT
from tests.integration.api.cli_process import (
    REGIMELAB,
    state_outside_basetemp,
)
from tests.integration.api.cli_process import (
    cli_env as _env,
)
from tests.integration.api.cli_process import (
    error_after_progress as _error_after_progress,
)
from tests.integration.api.cli_process import (
    one_error_line as _one_error_line,
)
from tests.integration.api.cli_process import (
    run_cli as _run,
)

MIGRATIONS = PROJECT_ROOT / "prisma" / "migrations"

__all__ = ["state_outside_basetemp"]  # the autouse fixture applies to this module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_embedded_servers(state: Path) -> bool:
    return (
        EmbeddedPostgres(state / "postgres").running_port() is None
        and EmbeddedValkey(state / "valkey").running_port() is None
    )


class Up:
    """A `regimelab up` process and the output it printed."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"up-{self.port}.log"
        with self.log.open("w") as sink:
            self.process = subprocess.Popen(
                [REGIMELAB, "up", "--port", str(self.port)],
                env=_env(tmp_path),
                cwd=tmp_path,
                stdout=sink,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def wait_healthy(self, timeout: float = 90) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"`up` exited early:\n{self.log.read_text()}")
            try:
                response = httpx.get(f"{self.url}/health", timeout=2)
                if response.status_code == 200 and response.json()["status"] == "ok":
                    return dict(response.json())
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"`up` never became healthy:\n{self.log.read_text()}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    @property
    def output(self) -> str:
        return self.log.read_text()


@pytest.fixture
def up_factory(tmp_path: Path) -> Iterator[type[Up]]:
    started: list[Up] = []

    class Tracked(Up):
        def __init__(self, path: Path) -> None:
            super().__init__(path)
            started.append(self)

    yield Tracked
    for up in started:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()


@pytest.mark.slow
def test_up_serves_reuses_its_data_and_stops_cleanly(tmp_path: Path, up_factory: type[Up]) -> None:
    state = tmp_path / "state"
    first = up_factory(tmp_path)
    health = first.wait_healthy()
    assert health["database"] == {
        "status": "ok",
        "detail": None,
        "latency_ms": health["database"]["latency_ms"],
    }  # type: ignore[index]
    spec = httpx.get(f"{first.url}/schema/openapi.json", timeout=10)
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "RegimeLab API"
    ready = httpx.get(f"{first.url}/ready", timeout=10).json()
    assert ready["scheduler"] == "leader"

    # The snapshot route answers with the current regime of the sample symbols.
    created = _run(tmp_path, "api-keys", "create", "--name", "reader", "--scopes", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    snapshot = httpx.get(
        f"{first.url}/api/v1/regimes/snapshot", headers={"X-API-Key": key}, timeout=30
    )
    assert snapshot.status_code == 200, snapshot.text
    current = {row["symbol"]: row for row in snapshot.json()["items"]}
    assert set(current) == {"SPX", "IXIC"}
    for row in current.values():
        assert 0 <= row["regime"] < 3
        assert 0.0 < row["probability"] <= 1.0

    # `up` embedded the sample bars, regime probabilities included: the analogs answer.
    analogs = httpx.get(f"{first.url}/api/v1/analogs/SPX", headers={"X-API-Key": key}, timeout=30)
    assert analogs.status_code == 200, analogs.text
    assert len(analogs.json()["analogs"]) == 10
    assert all(a["regime"] is not None for a in analogs.json()["analogs"])

    # A second command on the same state folder attaches to the running servers.
    visitor = _run(tmp_path, "migrate")
    assert visitor.returncode == 0, visitor.stderr
    assert "database is up to date" in visitor.stderr
    assert httpx.get(f"{first.url}/health", timeout=5).json()["status"] == "ok"

    database_url = EmbeddedPostgres(state / "postgres").start_or_attach()
    with psycopg.connect(database_url) as conn:
        bars = conn.execute("SELECT count(*) FROM bars").fetchone()
    assert bars is not None and bars[0] > 10_000  # SPX and IXIC 1999-2018

    assert first.stop(signal.SIGINT) == 0, first.output
    assert f"http://127.0.0.1:{first.port}" in first.output
    assert "seeded sample data" in first.output
    assert "fitted hmm regimes on SPX, IXIC" in first.output
    assert _no_embedded_servers(state)

    second = up_factory(tmp_path)  # reuses the data: no migration, no second seed
    second.wait_healthy()
    assert second.stop(signal.SIGTERM) == 0
    assert "database is up to date" in second.output
    assert "seeded sample data" not in second.output
    assert _no_embedded_servers(state)
    server = EmbeddedPostgres(state / "postgres")
    try:
        with psycopg.connect(server.start_or_attach()) as conn:
            assert conn.execute("SELECT count(*) FROM bars").fetchone() == bars
    finally:
        server.stop()


@pytest.mark.slow
def test_commands_in_a_row_each_start_and_stop_their_servers(tmp_path: Path) -> None:
    first = _run(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    folders = sorted(p.name for p in MIGRATIONS.iterdir() if p.is_dir())
    assert f"applied {len(folders)} migration(s)" in first.stderr
    assert _no_embedded_servers(tmp_path / "state")

    second = _run(tmp_path, "migrate")
    assert second.returncode == 0, second.stderr
    assert "database is up to date" in second.stderr
    assert _no_embedded_servers(tmp_path / "state")

    listed = _run(tmp_path, "migrate", "--status")
    assert listed.returncode == 0
    assert listed.stdout.split() == [word for name in folders for word in ("applied", name)]


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        ("postgresql://nobody:s3cret@127.0.0.1:1/regimelab", "cannot connect to PostgreSQL at"),
        ("mysql://root@localhost/db", "DATABASE_URL must start with postgresql://"),
        ("postgresql://u@h:port/db", "DATABASE_URL is not a valid PostgreSQL URL"),
    ],
)
def test_bad_database_url_is_one_clear_line(
    tmp_path: Path, database_url: str, message: str
) -> None:
    line = _one_error_line(_run(tmp_path, "migrate", DATABASE_URL=database_url))
    assert message in line
    assert "s3cret" not in line


def test_unreachable_redis_is_one_clear_line(tmp_path: Path, database_url: str) -> None:
    line = _one_error_line(
        _run(
            tmp_path,
            "serve",
            "--port",
            str(_free_port()),
            DATABASE_URL=database_url,
            REDIS_URL="redis://127.0.0.1:1/0",
        )
    )
    assert "cannot connect to Redis at redis://127.0.0.1:1/0" in line


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_error_line(_run(tmp_path, "up", "--port", str(port)))
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert _no_embedded_servers(tmp_path / "state")


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    line = _one_error_line(_run(tmp_path, "migrate", REGIMELAB_PORT="http"))
    assert "REGIMELAB_PORT='http' is not valid" in line


@pytest.mark.slow
def test_ingest_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    first = _run(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX,IXIC")
    assert first.returncode == 0, first.stderr
    assert "2 symbol(s), 10062 rows fetched, 10062 inserted or updated, 0 rejected" in first.stdout

    again = _run(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX,IXIC")
    assert again.returncode == 0, again.stderr
    assert "0 inserted or updated" in again.stdout
    assert _no_embedded_servers(tmp_path / "state")


def test_ingest_of_an_unknown_symbol_is_one_clear_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "ingest", "--provider", "sample", "--symbols", "NOPE")
    assert "failed: sample: unknown symbol 'NOPE'" in _error_after_progress(result)


def test_ingest_of_an_unknown_provider_is_one_clear_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "ingest", "--provider", "nasdaq-secret", "--symbols", "X")
    assert "unknown provider 'nasdaq-secret'" in _error_after_progress(result)


@pytest.mark.slow
def test_regimes_fit_then_export_labels(tmp_path: Path) -> None:
    assert _run(tmp_path, "ingest", "--provider", "sample", "--symbols", "SPX").returncode == 0

    fitted = _run(
        tmp_path, "regimes", "fit", "--model", "hmm", "--symbols", "SPX", "--workers", "1"
    )
    assert fitted.returncode == 0, fitted.stderr
    assert "run 1: hmm, 2 regimes, 1 symbol(s)" in fitted.stdout
    assert "SPX: regime" in fitted.stdout

    exported = _run(
        tmp_path, "regimes", "labels", "--model", "hmm", "--symbols", "SPX", "--format", "csv"
    )
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert lines[0] == "symbol,ts,regime,prob_0,prob_1"
    assert len(lines) == 1 + 5030

    parquet = tmp_path / "labels.parquet"
    written = _run(
        tmp_path,
        "regimes",
        "labels",
        "--model",
        "hmm",
        "--symbols",
        "SPX",
        "--kind",
        "smoothed",
        "--format",
        "parquet",
        "--out",
        str(parquet),
    )
    assert written.returncode == 0, written.stderr
    import polars as pl

    assert pl.read_parquet(parquet).columns == ["symbol", "ts", "regime", "prob_0", "prob_1"]

    snapshot = _run(tmp_path, "regimes", "snapshot", "--model", "hmm", "--symbols", "SPX")
    assert snapshot.returncode == 0 and "SPX" in snapshot.stdout


def test_regimes_fit_of_an_unknown_model_is_one_clear_line(tmp_path: Path) -> None:
    line = _one_error_line(_run(tmp_path, "regimes", "fit", "--model", "hmmm", "--symbols", "SPX"))
    assert "unknown regime model 'hmmm'" in line
