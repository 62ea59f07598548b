"""The load test of bench/load.py in its short mode: the production server settings under
concurrent mixed traffic answer every request, and memory levels off."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine.settings import PROJECT_ROOT, Settings

SECONDS = 12.0  # plus 3 s of warm-up: the short mode stays under 20 s
CLIENTS = 50


def _bench_load() -> ModuleType:
    path = PROJECT_ROOT / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("bench_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_mixed_load_has_no_errors_and_memory_levels_off(settings: Settings, tmp_path: Path) -> None:
    load = _bench_load()
    assert settings.database_url is not None and settings.redis_url is not None
    assert settings.secret_key is not None
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REGIMELAB_CACHE_PREFIX": settings.cache_prefix,
        "REGIMELAB_SECRET_KEY": settings.secret_key.reveal(),
        "REGIMELAB_STATE_DIR": str(tmp_path / "state"),
        "REGIMELAB_RATE_LIMIT": "0",
        "REGIMELAB_SCHEDULER": "false",
        "REGIMELAB_LOG_FORMAT": "json",
    }
    key = load.seed(env)
    port = load.free_port()
    server = load.start_server(env, port, tmp_path / "serve.log", workers=2)
    try:
        report = asyncio.run(
            load.run_load(
                f"http://127.0.0.1:{port}",
                key,
                clients=CLIENTS,
                seconds=SECONDS,
                server_pid=server.pid,
            )
        )
    finally:
        load.stop_server(server)
    print("\n".join(report.lines()))  # the figures, for the log; timings are not asserted

    assert report.error_count == 0, report.errors
    assert set(report.latencies) == {"snapshot", "bars", "labels", "stats", "backtest"}
    assert report.requests > CLIENTS  # every client got answers, the server did not stall
    # job workers start on demand during the run; a leak keeps climbing, this levels off
    assert report.late_growth < 0.5, report.lines()[-1]
