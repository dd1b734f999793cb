"""How long a mesh takes to agree again after each heal or restart.

Rules:
- At a heal or restart, ``watch`` notes, for both directions of every link it
  touched, how many proposals the proposer had made durable. The mesh has
  converged once, for each of those directions, both sides hold every one of
  those proposals with the same outcome (a hashlock pending on both sides
  agrees: it may rightly wait for its expiry). ``poll`` checks; the time it
  took goes into the run's metrics.
- Read-only: it looks at the proposal books and never changes a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulations.books import Books
from simulations.metrics import Convergence, Metrics
from simulations.topology import Link


@dataclass
class _Watch:
    record: Convergence
    start_ms: int
    targets: list[tuple[int, int, int]]  # (proposer, decider, proposals made before)


class Convergences:
    def __init__(self, books: Books, metrics: Metrics) -> None:
        self.books = books
        self.metrics = metrics
        self.watches: list[_Watch] = []

    def watch(self, kind: str, label: str, links: list[Link], now_ms: int) -> None:
        targets = []
        for a, b in sorted(set(links)):
            for proposer, decider in ((a, b), (b, a)):
                count = self.books.book(proposer, decider).proposed_count()
                targets.append((proposer, decider, count))
        record = Convergence(now_ms / 1000, kind, label)
        self.metrics.convergences.append(record)
        self.watches.append(_Watch(record, now_ms, targets))

    def poll(self, now_ms: int) -> None:
        remaining = []
        for watch in self.watches:
            books = self.books
            if all(books.book(p, d).agrees_below(count) for p, d, count in watch.targets):
                watch.record.seconds = (now_ms - watch.start_ms) / 1000
            else:
                remaining.append(watch)
        self.watches = remaining
