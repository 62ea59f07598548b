"""Regime jobs as plain functions: the scheduled refit and the first run `regimelab up` makes."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import psycopg
import redis

from api.domain.regimes.jobs import refit_regimes_job
from api.domain.regimes.schemas import RefitParams
from api.domain.regimes.services import ensure_regime_run
from api.lib.jobs import JOBS, JobContext, JobEnv, load_jobs
from engine.io.cache import version_key
from engine.settings import Settings

if TYPE_CHECKING:
    from tests.integration.conftest import Ingest


def _regimes_version(settings: Settings) -> int:
    assert settings.redis_url is not None
    with redis.Redis.from_url(settings.redis_url) as client:
        value = client.get(version_key(settings.cache_prefix, "regimes"))
    return int(value) if isinstance(value, bytes) else 0


def test_both_jobs_are_registered_and_the_refit_is_scheduled() -> None:
    load_jobs()

    assert JOBS["regimes.fit"].schedule is None
    assert JOBS["regimes.refit"].schedule == "30 22 * * 1-5"


def test_refit_fits_the_watchlist_symbols_with_bars_and_notes_the_rest(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    assert settings.database_url is not None
    ctx = JobContext(0, JobEnv(settings, settings.database_url, settings.redis_url))
    nothing = refit_regimes_job(ctx, RefitParams(symbols=["NOPE"]))
    assert nothing["run_id"] is None and nothing["missing"] == ["NOPE"]

    ingest("synthetic", "1", n_days=300)
    version = _regimes_version(settings)
    summary = refit_regimes_job(ctx, RefitParams(symbols=["SYN0000", "NOPE"], n_states=2))

    assert summary["symbols"] == ["SYN0000"] and summary["missing"] == ["NOPE"]
    assert summary["model"] == settings.regime_model and summary["failures"] == {}
    row = db.execute(
        "SELECT model, n_states, symbols, status::text FROM regime_runs WHERE id = %s",
        (summary["run_id"],),
    ).fetchone()
    assert row == (settings.regime_model, 2, ["SYN0000"], "succeeded")
    assert _regimes_version(settings) == version + 1


def test_ensure_regime_run_fits_once(
    settings: Settings, db: psycopg.Connection, ingest: Ingest
) -> None:
    assert settings.database_url is not None
    watchlist = dataclasses.replace(
        settings, watchlist=("SYN0000", "SYN0001", "NOPE"), regime_states=2
    )
    assert ensure_regime_run(watchlist, settings.database_url, settings.redis_url) is None

    ingest("synthetic", "2", n_days=300)
    run_id = ensure_regime_run(watchlist, settings.database_url, settings.redis_url)

    assert run_id is not None
    assert ensure_regime_run(watchlist, settings.database_url, settings.redis_url) is None
    row = db.execute(
        "SELECT model, n_states, symbols FROM regime_runs WHERE id = %s", (run_id,)
    ).fetchone()
    assert row == ("hmm", 2, ["SYN0000", "SYN0001"])
