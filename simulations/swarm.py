"""Swarm mode: many seeds, each with its own drawn fault rates, spread over the cores.

Rules:
- Seeds are independent runs; each draws its fault rates with ``draw_rates``
  (up to the maxima the user gave) and runs in a worker process, so a swarm
  uses every core. Results are gathered and reported in seed order, so the
  summary does not depend on which worker finished first.
- A worker sends back a small ``SeedOutcome`` (the run's summary and, if it
  failed, its violation report), never the run's metrics.
- The summary counts seeds run, faults injected, invariant violations and
  simulated hours, with the swarm's simulated node-seconds per wall second.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from node.logs import configure_logging
from simulations.faults import FaultRates, draw_rates
from simulations.options import SimulationOptions
from simulations.progress import Progress
from simulations.simulator import run_simulation


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    summary: dict[str, Any]
    violation_text: str | None  # the rendered violation report, if the seed failed

    @property
    def failed(self) -> bool:
        return self.violation_text is not None


def seed_options(base: SimulationOptions, maxima: FaultRates, seed: int) -> SimulationOptions:
    return replace(base, seed=seed, rates=draw_rates(seed, maxima))


def run_seed(options: SimulationOptions) -> SeedOutcome:
    """One seed of a swarm (runs in a worker process)."""
    configure_logging("warning", json_lines=True)
    result = run_simulation(options)
    text = result.violation.render() if result.violation is not None else None
    return SeedOutcome(options.seed, result.summary(), text)


def _worker_count(requested: int | None, seeds: int) -> int:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    return max(1, min(seeds, requested or available))


def run_swarm(
    base: SimulationOptions, maxima: FaultRates, seeds: list[int], workers: int | None
) -> tuple[list[SeedOutcome], float]:
    """Run every seed; returns the outcomes in seed order and the wall time."""
    started = time.perf_counter()
    progress = Progress(f"swarm of {len(seeds)} seeds", len(seeds))
    outcomes: list[SeedOutcome] = []
    count = _worker_count(workers, len(seeds))
    if count == 1:
        for seed in seeds:
            outcomes.append(run_seed(seed_options(base, maxima, seed)))
            progress.update(len(outcomes), _progress_detail(outcomes))
    else:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
            futures = [pool.submit(run_seed, seed_options(base, maxima, seed)) for seed in seeds]
            for future in as_completed(futures):
                outcomes.append(future.result())
                progress.update(len(outcomes), _progress_detail(outcomes))
    progress.update(len(outcomes), _progress_detail(outcomes), force=True)
    progress.finish()
    outcomes.sort(key=lambda outcome: outcome.seed)
    return outcomes, time.perf_counter() - started


def _progress_detail(outcomes: list[SeedOutcome]) -> str:
    failed = sum(1 for outcome in outcomes if outcome.failed)
    return f"{len(outcomes)} seeds, {failed} violations,"


def swarm_summary(
    base: SimulationOptions, outcomes: list[SeedOutcome], wall_s: float
) -> dict[str, Any]:
    simulated_s = sum(outcome.summary["simulated_s"] for outcome in outcomes)
    failures = [
        {
            "seed": outcome.seed,
            "invariant": outcome.summary["violation"]["invariant"],
            "time_s": outcome.summary["violation"]["time_s"],
            "replay": outcome.summary["replay"],
        }
        for outcome in outcomes
        if outcome.failed
    ]
    return {
        "seeds_run": len(outcomes),
        "nodes": base.nodes,
        "topology": str(base.topology),
        "faults_injected": sum(outcome.summary["faults_injected"] for outcome in outcomes),
        "crashes": sum(outcome.summary["crashes"] for outcome in outcomes),
        "partitions": sum(outcome.summary["partitions"] for outcome in outcomes),
        "transfers_acknowledged": sum(
            outcome.summary["transfers_acknowledged"] for outcome in outcomes
        ),
        "invariant_violations": len(failures),
        "simulated_hours": round(simulated_s / 3600, 3),
        "wall_s": round(wall_s, 2),
        "node_seconds_per_s": round(base.nodes * simulated_s / max(wall_s, 1e-9)),
        "failures": failures,
    }
