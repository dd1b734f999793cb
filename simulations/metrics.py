"""What a run measured over simulated time, for the summary and the report's plots.

Rules:
- Samples are taken at a fixed simulated interval; spans record each fault
  (partition or crash) from its start to its end; a convergence records, for
  each heal or restart, how long until the two sides of every link it touched
  agree again on every proposal made before it (both hold it, with the same
  outcome; a hashlock pending on both sides agrees).
- Plain data: the simulator fills it, the report reads it; JSON-able as is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    time_s: float
    accepted: int  # proposals accepted so far, over the mesh
    rejected: int
    pending: int  # proposals pending at some node now
    unacked: int  # messages awaiting an ACK now
    offered: int  # transfers the operators started so far
    nodes_down: int
    links_down: int


@dataclass
class FaultSpan:
    kind: str  # "crash", "partition:link", "partition:split", "partition:one-way"
    start_s: float
    end_s: float | None
    nodes: list[str]
    detail: str


@dataclass
class Convergence:
    at_s: float  # when the heal or restart happened
    kind: str  # "heal" or "restart"
    label: str
    seconds: float | None = None  # None: it never converged before the run ended


@dataclass
class Metrics:
    samples: list[Sample] = field(default_factory=list)
    faults: list[FaultSpan] = field(default_factory=list)
    convergences: list[Convergence] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": [asdict(sample) for sample in self.samples],
            "faults": [asdict(span) for span in self.faults],
            "convergences": [asdict(item) for item in self.convergences],
        }
