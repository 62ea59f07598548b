"""Parameter sweeps over many symbols: one vectorized pass per chunk of symbols, chunks
fanned out over a process pool, or over a Ray cluster when `RAY_ADDRESS` is set.

Each chunk evaluates the whole grid for its symbols in one `run_backtest` call (shared
indicators computed once); chunks are independent, so the same function runs in a local
spawned process or as a Ray task, and the results concatenate into one tidy frame:
(parameters x symbol) rows of metrics. A shared-cash portfolio couples its symbols, so
it runs as a single chunk.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import polars as pl

from engine.backtest.engine import BacktestResult, run_backtest
from engine.backtest.spec import BacktestSpec
from engine.schema import SYMBOL

__all__ = ["Executor", "SweepResult", "chunk_symbols", "resolve_executor", "run_sweep"]

Executor = Literal["auto", "local", "pool", "ray"]
Progress = Callable[[int, int, str], None]


@dataclass(slots=True)
class SweepResult:
    """Tidy results of a sweep and where it ran."""

    metrics: pl.DataFrame
    regime_metrics: pl.DataFrame | None
    executor: str
    chunks: int


def chunk_symbols(symbols: Sequence[str], size: int) -> list[list[str]]:
    """`symbols` in consecutive chunks of at most `size`."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def resolve_executor(executor: Executor, ray_address: str | None = None) -> str:
    """auto: Ray when an address is configured (argument or RAY_ADDRESS), else a pool."""
    address = ray_address or os.environ.get("RAY_ADDRESS")
    if executor == "auto":
        return "ray" if address else "pool"
    return executor


def _run_chunk(
    bars: pl.DataFrame, spec_json: bytes, regimes: pl.DataFrame | None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    spec = msgspec.json.decode(spec_json, type=BacktestSpec)
    result = run_backtest(bars, spec, regimes, keep_equity=False, keep_trades=False)
    return result.metrics, result.regime_metrics


def _chunk_inputs(
    bars: pl.DataFrame,
    spec: BacktestSpec,
    regimes: pl.DataFrame | None,
    chunk: list[str],
) -> tuple[pl.DataFrame, bytes, pl.DataFrame | None]:
    keep = [*chunk, *([spec.benchmark] if spec.benchmark else [])]
    if spec.regimes is not None and spec.regimes.reference:
        keep.append(spec.regimes.reference)
    part_spec = msgspec.structs.replace(spec, symbols=tuple(chunk))
    part_regimes = None if regimes is None else regimes.filter(pl.col(SYMBOL).is_in(keep))
    return bars.filter(pl.col(SYMBOL).is_in(keep)), part_spec.encode(), part_regimes


def _ray_map(
    inputs: list[tuple[pl.DataFrame, bytes, pl.DataFrame | None]],
    address: str | None,
    progress: Progress | None,
) -> list[tuple[pl.DataFrame, pl.DataFrame | None]]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    task = ray.remote(_run_chunk)
    pending = {task.remote(*args): i for i, args in enumerate(inputs)}
    results: list[Any] = [None] * len(inputs)
    done = 0
    waiting = list(pending)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            results[pending[ref]] = ray.get(ref)
            done += 1
            if progress is not None:
                progress(done, len(inputs), "ray")
    return results


def run_sweep(
    bars: pl.DataFrame,
    spec: BacktestSpec,
    regimes: pl.DataFrame | None = None,
    *,
    executor: Executor = "auto",
    workers: int | None = None,
    chunk_size: int | None = None,
    ray_address: str | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Every grid parameter set on every symbol of `spec`; see the module docstring.

    `chunk_size` defaults to an even split over the workers (at least 25 symbols a chunk,
    so each chunk still amortizes its fixed costs). `executor="local"` runs in-process.
    """
    kind = resolve_executor(executor, ray_address)
    workers = max(1, workers or os.cpu_count() or 1)
    symbols = list(spec.symbols)
    if spec.portfolio is not None:
        chunks = [symbols]
    else:
        size = chunk_size or max(25, -(-len(symbols) // (workers * 2)))
        chunks = chunk_symbols(symbols, size)
    if len(chunks) == 1 and kind == "pool":
        kind = "local"
    inputs = [_chunk_inputs(bars, spec, regimes, chunk) for chunk in chunks]
    results: list[tuple[pl.DataFrame, pl.DataFrame | None]]
    if kind == "local":
        results = []
        for i, args in enumerate(inputs):
            results.append(_run_chunk(*args))
            if progress is not None:
                progress(i + 1, len(inputs), "local")
    elif kind == "pool":
        context = multiprocessing.get_context("spawn")  # forking a Polars process can deadlock
        results = [None] * len(inputs)  # type: ignore[list-item]
        with ProcessPoolExecutor(min(workers, len(inputs)), mp_context=context) as pool:
            futures = {pool.submit(_run_chunk, *args): i for i, args in enumerate(inputs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, len(inputs), "pool")
    elif kind == "ray":
        results = _ray_map(inputs, ray_address, progress)
    else:
        raise ValueError(f"unknown executor {executor!r}: auto, local, pool or ray")
    metrics = pl.concat([m for m, _ in results], how="vertical_relaxed")
    regime_parts = [r for _, r in results if r is not None]
    by_regime = pl.concat(regime_parts, how="vertical_relaxed") if regime_parts else None
    return SweepResult(metrics=metrics, regime_metrics=by_regime, executor=kind, chunks=len(chunks))


def as_backtest_result(spec: BacktestSpec, sweep: SweepResult) -> BacktestResult:
    """A sweep's tidy frames in the shape a single run returns (no curves or trades)."""
    params = spec.param_sets()
    return BacktestResult(
        spec=spec,
        params=params,
        keys=[f"p{i}" for i in range(len(params))],
        metrics=sweep.metrics,
        regime_metrics=sweep.regime_metrics,
    )
