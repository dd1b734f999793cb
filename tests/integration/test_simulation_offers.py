"""Exchange offers under the deterministic simulator: faults, crashes, the offers invariants.

Customers of every node make, cancel and take offers (same-bank and across
validators) while links lose, duplicate and reorder payloads, partitions cut
the mesh and nodes crash with torn writes. At the end every exchange must have
settled both legs or neither, no offer is filled beyond its amount, every
node's Books conserve every asset, and every live offer is in every book its
validator's trust reaches.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from simulations.faults import FaultRates
from simulations.options import SimulationOptions
from simulations.simulator import run_simulation
from simulations.specs import parse_topology, parse_workload
from simulations.swarm import run_swarm

RATES = FaultRates(loss=0.15, duplicate=0.05, delay_ms=(5, 150), partitions=2, crashes=4)


def options(seed: int, *, nodes: int = 10, duration_ms: int = 40_000) -> SimulationOptions:
    return SimulationOptions(
        seed=seed,
        nodes=nodes,
        topology=parse_topology("random:degree=4"),
        duration_ms=duration_ms,
        rates=RATES,
        workload=parse_workload("offers:rate=3,takes=4"),
    )


def test_offers_under_faults_replay_to_the_same_digest_and_hold_every_invariant() -> None:
    """Same seed in another interpreter with another hash seed: the same run, byte for byte."""
    first = run_simulation(options(11))
    assert first.violation is None, first.violation.render()
    script = (
        "import json\n"
        "from tests.integration.test_simulation_offers import options\n"
        "from simulations.simulator import run_simulation\n"
        "result = run_simulation(options(11))\n"
        "print(json.dumps([result.digest, result.counters]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "54321", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert json.loads(completed.stdout) == [first.digest, first.counters]
    counters = first.counters
    assert counters["crashes"] > 0 and counters["payloads_lost"] > 0
    assert counters["offers_made"] > 50
    assert counters["offer_cancels"] + counters["offer_cancels_refused"] > 0
    assert counters["takes_same_bank"] > 0
    assert counters["exchanges_settled"] > 10
    assert counters["offers_spread_ms_after_drain"] >= 0
    other = run_simulation(options(12))
    assert other.violation is None, other.violation.render()
    assert other.digest != first.digest


def test_a_short_offers_swarm_finds_no_violation() -> None:
    base = options(0, nodes=8, duration_ms=30_000)
    maxima = FaultRates(loss=0.3, duplicate=0.2, delay_ms=(0, 300), partitions=3, crashes=5)
    outcomes, _ = run_swarm(base, maxima, list(range(1, 9)), 2)
    failed = [outcome.violation_text for outcome in outcomes if outcome.failed]
    assert not failed, failed[0]
    assert sum(outcome.summary["exchanges_settled"] for outcome in outcomes) > 50
