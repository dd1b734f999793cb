"""The simulated network between nodes: per-direction loss, duplication, delay and cuts.

Rules:
- Pure bookkeeping: the simulator asks ``route`` what becomes of one payload
  (lost, or delivered after these delays) and schedules the deliveries itself.
  All randomness comes from the ``rng`` argument, drawn in the order of sends.
- Loss and duplication are per payload; each copy draws its own delay from the
  delay range, so random delays reorder. Faults apply to node links only;
  the operator's requests and answers never cross this network.
- A link is up while both nodes run and no two-way cut holds it; the
  simulator turns changes into PeerUp / PeerDown for both ends. A cut, a crash
  or a restart bumps the link's generation: what was in flight is lost, as a
  connection that closed loses it. A one-way cut silently loses one direction.
- A payload towards a link that is down is refused at the sender (counted),
  as the QUIC transport's ``send_nowait`` refuses it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from node.net.base import PeerStatus
from simulations.faults import FaultRates
from simulations.topology import Link


@dataclass
class NetworkCounters:
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    refused: int = 0  # link down at the sender
    cut: int = 0  # lost to a cut or a closed connection on the way
    delivered: int = 0


class SimNetwork:
    def __init__(
        self, nodes: int, links: list[Link], rates: FaultRates, rng: random.Random
    ) -> None:
        self.rng = rng
        self.loss = rates.loss
        self.duplicate = rates.duplicate
        self.delay_low_ms, self.delay_high_ms = rates.delay_ms
        self.alive = [True] * nodes
        self.down_holds: dict[Link, int] = {link: 0 for link in links}
        self.one_way_cuts: dict[tuple[int, int], int] = {}
        self.generation: dict[Link, int] = {link: 0 for link in links}
        self.up_since_ms: dict[Link, int] = {link: 0 for link in links}
        self.reconnects: dict[Link, int] = {link: 0 for link in links}
        for a, b in links:
            self.one_way_cuts[(a, b)] = 0
            self.one_way_cuts[(b, a)] = 0
        self.counters = NetworkCounters()

    @staticmethod
    def link_of(a: int, b: int) -> Link:
        return (a, b) if a < b else (b, a)

    def is_up(self, link: Link) -> bool:
        a, b = link
        return self.alive[a] and self.alive[b] and self.down_holds[link] == 0

    def route(self, sender: int, receiver: int) -> tuple[int, list[int]]:
        """(generation, delays of the copies that will arrive); no delays if lost."""
        counters = self.counters
        counters.sent += 1
        link = self.link_of(sender, receiver)
        if not self.is_up(link):
            counters.refused += 1
            return 0, []
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            counters.lost += 1
            return 0, []
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            copies = 2
            counters.duplicated += 1
        low, high = self.delay_low_ms, self.delay_high_ms
        delays = [rng.randint(low, high) if high > low else low for _ in range(copies)]
        return self.generation[link], delays

    def arrives(self, sender: int, receiver: int, generation: int) -> bool:
        """Whether a payload sent in ``generation`` reaches ``receiver`` now."""
        link = self.link_of(sender, receiver)
        if (
            generation != self.generation[link]
            or not self.is_up(link)
            or self.one_way_cuts[(sender, receiver)]
        ):
            self.counters.cut += 1
            return False
        self.counters.delivered += 1
        return True

    def close(self, link: Link) -> None:
        """The connection over ``link`` ended: what is in flight is lost."""
        self.generation[link] += 1

    def cut_one_way(self, sender: int, receiver: int, holds: int) -> None:
        self.one_way_cuts[(sender, receiver)] += holds
        assert self.one_way_cuts[(sender, receiver)] >= 0
        if holds > 0:
            self.close(self.link_of(sender, receiver))

    def stop_faults(self) -> None:
        self.loss = 0.0
        self.duplicate = 0.0

    def statuses(self, node: int, peers: list[int], keys: list[bytes]) -> list[PeerStatus]:
        """The transport's view of ``node``'s links, for the operator API."""
        result = []
        for peer in peers:
            link = self.link_of(node, peer)
            result.append(
                PeerStatus(
                    peer_key=keys[peer],
                    connected=self.is_up(link),
                    since_s=self.up_since_ms[link] / 1000,
                    queued_bytes=0,
                    dropped_payloads=0,
                    reconnects=self.reconnects[link],
                )
            )
        return result
