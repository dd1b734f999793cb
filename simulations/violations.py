"""What an invariant violation is, and how it is reported.

Rules:
- A check that fails raises ``InvariantViolation`` holding a ``Violation``: the
  invariant's stable name, one line for people, the nodes involved and the
  simulated time. The simulator stops at the first one.
- The report adds the seed, the last events of the trace and the exact
  command that replays the run; ``render`` prints it for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Violation:
    invariant: str  # stable name: "agreement", "durability", "finality", ...
    message: str
    nodes: tuple[str, ...]
    time_ms: int


class InvariantViolation(Exception):
    """Raised by a check when an invariant does not hold; stops the run."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(f"{violation.invariant}: {violation.message}")
        self.violation = violation


@dataclass(frozen=True)
class ViolationReport:
    violation: Violation
    seed: int
    last_events: list[str]
    replay_command: str

    def summary(self) -> str:
        v = self.violation
        return (
            f"invariant {v.invariant!r} violated at t={v.time_ms / 1000:.3f}s "
            f"(seed {self.seed}, nodes {', '.join(v.nodes) or '-'}): {v.message}"
        )

    def render(self) -> str:
        lines = [
            "INVARIANT VIOLATION",
            f"  invariant: {self.violation.invariant}",
            f"  seed:      {self.seed}",
            f"  time:      {self.violation.time_ms / 1000:.3f} s (simulated)",
            f"  nodes:     {', '.join(self.violation.nodes) or '-'}",
            f"  what:      {self.violation.message}",
            "  last events:",
            *(f"    {line}" for line in self.last_events),
            f"  replay:    {self.replay_command}",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.violation.invariant,
            "message": self.violation.message,
            "nodes": list(self.violation.nodes),
            "time_s": self.violation.time_ms / 1000,
            "seed": self.seed,
            "last_events": self.last_events,
            "replay": self.replay_command,
        }
