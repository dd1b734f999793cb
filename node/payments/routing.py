"""The routing graph and path finding.

Rules:
- Nodes are validator domains. An edge S -> T in a unit means S can propose to
  T: T extends credit to S. So T's announcement about S gives the edge S -> T:
  its capacity (T's credit to S) and T's policy for forwarding what arrives
  over it (fee base + ppm of the amount T passes on, expiry delta). T charges
  nothing when it is the payee.
- Our own edges (to our trusted peers) use the exact credit available towards
  the peer, which the shell reads from the SNAP ledger; the peer's policy
  comes from its announcement about us (without one, it can only be the payee).
  Other edges use the announced credit, lowered by what failures taught: after
  a failure of ``amount`` the estimate drops below it and climbs back to the
  announced credit with half-life PAYMENT_FAILURE_HALF_LIFE_MS.
- Path finding runs backwards from the payee, where the amount is known, adding
  each forwarder's fee: the cheapest path by total fee, then by hops, within
  PAYMENT_HOPS_MAX transfers, every edge carrying its amount. When no single
  path carries the amount, it is split greedily over at most PAYMENT_PARTS_MAX
  paths, each part as large as its path carries.
- Expiries are added backwards too: the payee's transfer expires at the final
  expiry the caller gives; every transfer before a forwarder expires that
  forwarder's delta later.
- Pure: no I/O, time is ``now_ms``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

from node.limits import (
    PAYMENT_FAILURE_HALF_LIFE_MS,
    PAYMENT_FAILURES_REMEMBERED_MAX,
    PAYMENT_HOPS_MAX,
    PAYMENT_PARTS_MAX,
)
from node.payments.messages import Route, RouteAnnouncement, RouteHop

EdgeName = tuple[str, str, str]  # (source domain, target domain, unit)
Capacity = Callable[[str, str], int]  # (source, target) -> what the edge carries now

NO_ROUTE = "no-route"
INSUFFICIENT_CREDIT = "insufficient-credit"
FEE_TOO_HIGH = "fee-too-high"


@dataclass(frozen=True, slots=True)
class HopPolicy:
    """How a validator forwards what arrives over one edge."""

    fee_base: int
    fee_ppm: int
    expiry_delta_ms: int

    def fee(self, amount_forwarded: int) -> int:
        return self.fee_base + -(-amount_forwarded * self.fee_ppm // 1_000_000)


@dataclass(frozen=True, slots=True)
class Path:
    """The transfers of one part: ``hops[0]`` is our proposal to the first peer,
    ``hops[-1]`` the one the payee receives."""

    hops: tuple[RouteHop, ...]

    @property
    def fee(self) -> int:
        return self.hops[0].amount - self.hops[-1].amount

    @property
    def amount(self) -> int:
        return self.hops[-1].amount

    def route_after_first(self) -> Route:
        return self.hops[1:]


@dataclass(slots=True)
class _Announced:
    credit: int
    policy: HopPolicy


@dataclass(slots=True)
class _Failure:
    amount: int
    at_ms: int


class RouteGraph:
    """What one validator knows of the trust graph. See the module's rules."""

    def __init__(self, own_domain: str, own_peers: Iterable[str]) -> None:
        self.own_domain = own_domain
        self.own_peers = frozenset(own_peers)
        self.edges: dict[EdgeName, _Announced] = {}
        self.incoming: dict[tuple[str, str], set[str]] = {}  # (target, unit) -> sources
        self.failures: dict[EdgeName, _Failure] = {}

    def add(self, announcement: RouteAnnouncement) -> None:
        """A verified announcement was stored (gossip NotifyStored)."""
        a = announcement
        policy = HopPolicy(a.fee_base, a.fee_ppm, a.expiry_delta_ms)
        self.edges[(a.peer_domain, a.origin_domain, a.unit)] = _Announced(a.credit, policy)
        self.incoming.setdefault((a.origin_domain, a.unit), set()).add(a.peer_domain)

    def remove(self, announcement: RouteAnnouncement) -> None:
        """An announcement expired (gossip NotifyRemoved)."""
        a = announcement
        self.edges.pop((a.peer_domain, a.origin_domain, a.unit), None)
        self.incoming.get((a.origin_domain, a.unit), set()).discard(a.peer_domain)

    def learn_failure(self, edge: EdgeName, amount: int, now_ms: int) -> None:
        """``edge`` could not carry ``amount`` (or failed in another way: amount 1)."""
        if edge not in self.failures and len(self.failures) >= PAYMENT_FAILURES_REMEMBERED_MAX:
            oldest = min(self.failures, key=lambda name: self.failures[name].at_ms)
            del self.failures[oldest]
        self.failures[edge] = _Failure(amount, now_ms)

    def estimate(self, edge: EdgeName, now_ms: int) -> int:
        """The credit we expect ``edge`` (not ours) to carry."""
        announced = self.edges.get(edge)
        if announced is None:
            return 0
        failure = self.failures.get(edge)
        if failure is None or failure.amount > announced.credit:
            return announced.credit
        bound = failure.amount - 1
        faded = 1 - 0.5 ** (max(0, now_ms - failure.at_ms) / PAYMENT_FAILURE_HALF_LIFE_MS)
        return bound + int((announced.credit - bound) * faded)

    def policy(self, edge: EdgeName) -> HopPolicy | None:
        announced = self.edges.get(edge)
        return None if announced is None else announced.policy

    # --- path finding ----------------------------------------------------------------

    def find(
        self,
        payee: str,
        amount: int,
        unit: str,
        final_expires_at_ms: int,
        max_fee: int,
        own_capacity: Capacity,
        avoid: frozenset[tuple[str, str]],
        now_ms: int,
    ) -> tuple[Path, ...] | str:
        """Paths whose parts add up to ``amount``, or why there are none
        (``no-route``, ``insufficient-credit``, ``fee-too-high``). ``own_capacity``
        gives (our peer, unit) -> exact available credit; ``avoid`` edges are not used."""

        def capacity(source: str, target: str) -> int:
            if (source, target) in avoid:
                return 0
            if source == self.own_domain:
                return own_capacity(target, unit) if target in self.own_peers else 0
            return self.estimate((source, target, unit), now_ms)

        single = self._cheapest(payee, amount, unit, capacity)
        if single is not None:
            paths: tuple[Path, ...] = (self._path(single, amount, unit, final_expires_at_ms),)
        else:
            if self._cheapest(payee, 1, unit, capacity) is None:
                return NO_ROUTE
            split = self._split(payee, amount, unit, final_expires_at_ms, capacity)
            if split is None:
                return INSUFFICIENT_CREDIT
            paths = split
        if sum(path.fee for path in paths) > max_fee:
            return FEE_TOO_HIGH
        return paths

    def _cheapest(
        self, payee: str, amount: int, unit: str, capacity: Capacity
    ) -> tuple[str, ...] | None:
        """The domains of the cheapest path (ours first), by amount we send, then hops."""
        if payee == self.own_domain:
            return None
        queue: list[tuple[int, int, str, tuple[str, ...]]] = []
        for source in sorted(self._sources(payee, unit)):
            if capacity(source, payee) >= amount:
                heapq.heappush(queue, (amount, 1, source, (source, payee)))
        fewest_hops: dict[str, int] = {}
        while queue:
            sent, hops, node, suffix = heapq.heappop(queue)
            if node == self.own_domain:
                return suffix
            if fewest_hops.get(node, PAYMENT_HOPS_MAX + 1) <= hops or hops >= PAYMENT_HOPS_MAX:
                continue
            fewest_hops[node] = hops
            for source in sorted(self._sources(node, unit) - set(suffix)):
                policy = self.policy((source, node, unit))
                if policy is None:
                    continue
                carried = sent + policy.fee(sent)
                if capacity(source, node) >= carried:
                    heapq.heappush(queue, (carried, hops + 1, source, (source, *suffix)))
        return None

    def _sources(self, target: str, unit: str) -> set[str]:
        sources = set(self.incoming.get((target, unit), set()))
        if target in self.own_peers:
            sources.add(self.own_domain)
        return sources

    def _amounts(self, domains: tuple[str, ...], amount: int, unit: str) -> list[int]:
        """The amount of each transfer along ``domains``, computed back from the payee's."""
        amounts = [amount]
        for index in range(len(domains) - 2, 0, -1):
            policy = self.policy((domains[index - 1], domains[index], unit))
            assert policy is not None, "a forwarder on a found path has a policy"
            amounts.append(amounts[-1] + policy.fee(amounts[-1]))
        return amounts[::-1]

    def _path(
        self, domains: tuple[str, ...], amount: int, unit: str, final_expires_at_ms: int
    ) -> Path:
        amounts = self._amounts(domains, amount, unit)
        expiries = [final_expires_at_ms]
        for index in range(len(domains) - 2, 0, -1):
            policy = self.policy((domains[index - 1], domains[index], unit))
            assert policy is not None
            expiries.append(expiries[-1] + policy.expiry_delta_ms)
        expiries.reverse()
        hops = zip(domains[1:], amounts, expiries, strict=True)
        return Path(tuple(RouteHop(domain, sent, expires) for domain, sent, expires in hops))

    def _split(
        self, payee: str, amount: int, unit: str, final_expires_at_ms: int, capacity: Capacity
    ) -> tuple[Path, ...] | None:
        used: dict[tuple[str, str], int] = {}

        def residual(source: str, target: str) -> int:
            return capacity(source, target) - used.get((source, target), 0)

        paths: list[Path] = []
        remaining = amount
        while remaining > 0 and len(paths) < PAYMENT_PARTS_MAX:
            domains = self._cheapest(payee, 1, unit, residual)
            if domains is None:
                return None
            part = self._largest_part(domains, remaining, unit, residual)
            path = self._path(domains, part, unit, final_expires_at_ms)
            for hop_index, hop in enumerate(path.hops):
                edge = (domains[hop_index], hop.domain)
                used[edge] = used.get(edge, 0) + hop.amount
            paths.append(path)
            remaining -= part
        return tuple(paths) if remaining == 0 else None

    def _largest_part(
        self, domains: tuple[str, ...], most: int, unit: str, residual: Capacity
    ) -> int:
        """The largest amount (1..most) every edge of ``domains`` carries, fees included."""

        def fits(part: int) -> bool:
            amounts = self._amounts(domains, part, unit)
            edges = pairwise(domains)
            return all(residual(s, t) >= sent for (s, t), sent in zip(edges, amounts, strict=True))

        low, high = 1, most
        while low < high:
            middle = (low + high + 1) // 2
            if fits(middle):
                low = middle
            else:
                high = middle - 1
        return low
