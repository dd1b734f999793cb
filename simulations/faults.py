"""The faults of a simulated run: per-link rates, and a seeded schedule of partitions and crashes.

Rules:
- ``FaultRates`` are what the user asked for (or what a swarm drew for one
  seed). ``plan_faults`` turns them into a ``FaultPlan``: when each partition
  starts and heals and which directed links it cuts, when each node crashes,
  how, and for how long. All randomness comes from the ``rng`` argument, so a
  seed fixes the plan.
- A partition is one of three kinds: ``link`` (one link cut both ways),
  ``split`` (a group of nodes cut from the rest, both ways: both sides see the
  link go down) and ``one-way`` (the same split, one direction only, silently:
  nobody is told, as with a real asymmetric fault until a timeout).
- A crash is ``now`` (at its instant, whatever the node is doing), ``in-sync``
  (inside the node's next fsync: the write may be torn) or ``in-snapshot``
  (inside its next snapshot write). Every fault ends by the end of the run:
  partitions heal and crashed nodes restart; then the run drains.
- ``draw_rates`` gives each seed of a swarm its own rates, from an RNG of its
  own, so the replay command of any seed is a plain ``simulate`` with the
  drawn rates spelled out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulations.limits import (
    CRASH_DOWN_MS_MAX,
    CRASH_DOWN_MS_MIN,
    PARTITION_MS_MAX,
    PARTITION_MS_MIN,
    PARTITION_SHARE_OF_RUN,
)
from simulations.topology import Link

PARTITION_KINDS = ("link", "split", "one-way")
CRASH_KINDS = ("now", "in-sync", "in-snapshot")


@dataclass(frozen=True)
class FaultRates:
    loss: float
    duplicate: float
    delay_ms: tuple[int, int]
    partitions: int
    crashes: int


@dataclass(frozen=True)
class Partition:
    start_ms: int
    end_ms: int
    kind: str  # one of PARTITION_KINDS
    cut: tuple[tuple[int, int], ...]  # directed (sender, receiver) pairs that lose everything

    @property
    def both_ways(self) -> bool:
        return self.kind != "one-way"


@dataclass(frozen=True)
class Crash:
    at_ms: int
    node: int
    kind: str  # one of CRASH_KINDS
    down_ms: int


@dataclass(frozen=True)
class FaultPlan:
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]


def draw_rates(seed: int, maxima: FaultRates) -> FaultRates:
    """The fault rates of one seed of a swarm, each drawn up to ``maxima``, from an RNG of
    their own (so the seed's run itself draws exactly what a plain replay draws)."""
    rng = random.Random(f"ledgermesh-swarm-rates/{seed}")
    low_max, high_max = maxima.delay_ms
    low = rng.randint(0, low_max)
    return FaultRates(
        loss=round(rng.uniform(0.0, maxima.loss), 3),
        duplicate=round(rng.uniform(0.0, maxima.duplicate), 3),
        delay_ms=(low, rng.randint(low, max(low, high_max))),
        partitions=rng.randint(0, maxima.partitions),
        crashes=rng.randint(0, maxima.crashes),
    )


def plan_faults(
    rates: FaultRates, nodes: int, links: list[Link], duration_ms: int, rng: random.Random
) -> FaultPlan:
    partitions = tuple(
        sorted(
            (_partition(nodes, links, duration_ms, rng) for _ in range(rates.partitions)),
            key=lambda p: (p.start_ms, p.end_ms),
        )
    )
    crashes = tuple(
        sorted(
            (_crash(nodes, duration_ms, rng) for _ in range(rates.crashes)),
            key=lambda c: (c.at_ms, c.node),
        )
    )
    return FaultPlan(partitions, crashes)


def _partition(nodes: int, links: list[Link], duration_ms: int, rng: random.Random) -> Partition:
    longest = max(
        PARTITION_MS_MIN, min(PARTITION_MS_MAX, int(duration_ms * PARTITION_SHARE_OF_RUN))
    )
    length = rng.randint(PARTITION_MS_MIN, longest)
    start = rng.randint(0, max(0, duration_ms - length))
    end = min(duration_ms, start + length)
    kind = rng.choice(PARTITION_KINDS)
    if kind == "link":
        a, b = rng.choice(links)
        return Partition(start, end, kind, ((a, b), (b, a)))
    group = set(rng.sample(range(nodes), rng.randint(1, max(1, nodes // 2))))
    crossing = [(a, b) if a in group else (b, a) for a, b in links if (a in group) != (b in group)]
    if kind == "split":
        cut = [pair for a, b in crossing for pair in ((a, b), (b, a))]
    else:
        outwards = rng.random() < 0.5
        cut = [(a, b) if outwards else (b, a) for a, b in crossing]
    return Partition(start, end, kind, tuple(sorted(cut)))


def _crash(nodes: int, duration_ms: int, rng: random.Random) -> Crash:
    longest = max(CRASH_DOWN_MS_MIN, min(CRASH_DOWN_MS_MAX, duration_ms // 5))
    return Crash(
        at_ms=rng.randint(0, max(0, duration_ms - 1)),
        node=rng.randrange(nodes),
        kind=rng.choice(CRASH_KINDS),
        down_ms=rng.randint(CRASH_DOWN_MS_MIN, longest),
    )
