"""What a simulated run is asked to do, and what it gives back.

Rules:
- ``SimulationOptions`` fix a run completely: with the same options and the
  same code, the run and its trace digest are the same. ``replay_command``
  spells every option out (a swarm seed's drawn rates too), so printing it is
  enough to replay any run.
- Simulated nodes' keys are derived from their index: seeded, and the same in
  every run, so a swarm derives them once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from node.signatures import NodeKey, sha256
from simulations.faults import FaultRates
from simulations.metrics import Metrics
from simulations.specs import AnyWorkloadSpec, TopologySpec
from simulations.violations import ViolationReport


@dataclass(frozen=True)
class SimulationOptions:
    seed: int
    nodes: int
    topology: TopologySpec
    duration_ms: int
    rates: FaultRates
    workload: AnyWorkloadSpec

    def replay_command(self) -> str:
        """The command line that runs exactly this simulation again."""
        rates = self.rates
        low, high = rates.delay_ms
        return (
            f"ledgermesh simulate --nodes {self.nodes} --topology {self.topology} "
            f"--seed {self.seed} --duration {_seconds(self.duration_ms)} "
            f"--loss {rates.loss!r} --duplicate {rates.duplicate!r} --delay {low}..{high}ms "
            f"--partitions {rates.partitions} --crashes {rates.crashes} "
            f"--workload {self.workload}"
        )


def _seconds(duration_ms: int) -> str:
    return f"{duration_ms // 1000}" if duration_ms % 1000 == 0 else f"{duration_ms}ms"


@dataclass
class SimulationResult:
    options: SimulationOptions
    digest: str
    events: int
    simulated_ms: int
    wall_s: float
    counters: dict[str, int]
    metrics: Metrics
    violation: ViolationReport | None = None

    @property
    def node_seconds_per_s(self) -> float:
        return self.options.nodes * self.simulated_ms / 1000 / max(self.wall_s, 1e-9)

    def summary(self) -> dict[str, Any]:
        return {
            "seed": self.options.seed,
            "nodes": self.options.nodes,
            "topology": str(self.options.topology),
            "digest": self.digest,
            "events": self.events,
            "simulated_s": round(self.simulated_ms / 1000, 3),
            "wall_s": round(self.wall_s, 3),
            "node_seconds_per_s": round(self.node_seconds_per_s),
            **self.counters,
            "violation": self.violation.to_json() if self.violation else None,
            "replay": self.options.replay_command(),
        }


class SimulatedKey(NodeKey):
    """A node key whose public half is derived once (``NodeKey`` derives it on every use)."""

    @functools.cached_property
    def public_key(self) -> bytes:
        return NodeKey(self.seed).public_key


def node_key(index: int) -> NodeKey:
    """Simulated nodes' keys: fixed per index, so every run (and every seed) can share them."""
    return SimulatedKey(sha256(f"ledgermesh-sim/node/{index}".encode()))


OPERATOR_KEY = SimulatedKey(sha256(b"ledgermesh-sim/operator"))
