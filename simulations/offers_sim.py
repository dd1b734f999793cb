"""The offers workload inside a simulated run: its requests, its clock, its checks.

Rules:
- The simulator owns the loop; this glue schedules the workload's arrivals
  (offers, takes, cancellations), carries requests to nodes and answers back
  (with the operator's latency, like the operator's own), sends a node's
  unanswered setup again when it restarts, and checks every node's Books
  every OFFER_CHECK_INTERVAL_MS.
- The drain waits for every exchange to end on both sides (and every
  exchange hold to be settled or released), up to OFFERS_RESOLVE_BOUND_MS
  after faults stop. Then the end checks run (``offers_check``), and the run
  goes on until every live offer is in every book it should be in, or fails
  the spread invariant OFFER_SPREAD_BOUND_MS later.
- A customer's request travels from its own key, as a real client's would
  over its own connection; a request to a crashed node goes unanswered.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from node.net.base import Received
from simulations.limits import (
    OFFER_CHECK_INTERVAL_MS,
    OFFER_SPREAD_BOUND_MS,
    OFFER_SPREAD_MARGIN_MS,
    OFFER_SPREAD_POLL_MS,
    OPERATOR_LATENCY_MS,
    TRUST_HOPS_MAX,
)
from simulations.offers_check import (
    check_atomicity,
    check_books,
    check_no_overfill,
    open_exchanges,
    spread_problems,
)
from simulations.offers_workload import ClientRequest, MadeOffer, OffersWorkload, hops_within
from simulations.options import OPERATOR_KEY
from simulations.specs import OffersSpec
from simulations.topology import neighbours
from simulations.violations import InvariantViolation, Violation

if TYPE_CHECKING:
    from simulations.simulator import Simulation

CANCEL_AFTER_MS_MIN = 1_000


class OffersRun:
    def __init__(self, sim: Simulation, spec: OffersSpec, rng: random.Random) -> None:
        self.sim = sim
        count = sim.options.nodes
        adjacency = neighbours(sim.links, count)
        self.workload = OffersWorkload(spec, sim.names, adjacency, OPERATOR_KEY.public_key, rng)
        self.reach = [sorted(hops_within(adjacency, i, TRUST_HOPS_MAX)) for i in range(count)]
        self.outcomes: dict[str, int] = {}
        self.spread_ms = -1

    # --- arrivals ------------------------------------------------------------------------

    def schedule_start(self) -> None:
        sim = self.sim
        for handler, delay in (
            (self._offer_arrival, self.workload.next_offer_in_ms()),
            (self._take_arrival, self.workload.next_take_in_ms()),
        ):
            if delay is not None:
                sim.at(delay, handler)
        sim.at(OFFER_CHECK_INTERVAL_MS, self._check_books)

    def _offer_arrival(self, _: None) -> None:
        workload = self.workload
        if workload.stopped:
            return
        self._send(workload.new_offer(self.sim.now_ms))
        delay = workload.next_offer_in_ms()
        assert delay is not None
        self.sim.at(self.sim.now_ms + delay, self._offer_arrival)

    def _take_arrival(self, _: None) -> None:
        workload = self.workload
        if workload.stopped:
            return
        self._send(workload.new_take(self.sim.now_ms))
        delay = workload.next_take_in_ms()
        assert delay is not None
        self.sim.at(self.sim.now_ms + delay, self._take_arrival)

    def _cancel(self, made: MadeOffer) -> None:
        self._send(self.workload.cancel(made, self.sim.now_ms))

    # --- requests and answers ---------------------------------------------------------------

    def _send(self, request: ClientRequest | None) -> None:
        if request is None:
            return
        sim = self.sim
        sim.trace.add(sim.now_ms, "request", sim.operator_index, request.node, request.request_id)
        if not sim.nodes[request.node].alive:
            self.workload.unanswered(request)
            return
        sim.at(sim.now_ms + OPERATOR_LATENCY_MS, self._arrives, request)

    def _arrives(self, request: ClientRequest) -> None:
        node = self.sim.nodes[request.node]
        if not node.alive:
            self.workload.unanswered(request)
            return
        node.inbox.append(Received(request.client_key, request.payload))
        self.sim._wake(node)

    def node_started(self, index: int) -> None:
        for request in self.workload.node_started(index):
            self._send(request)

    def answered(self, payload: bytes) -> None:
        now_ms = self.sim.now_ms
        follow_up, to_cancel = self.workload.answered(payload, now_ms)
        self._send(follow_up)
        if to_cancel is not None:
            latest = max(CANCEL_AFTER_MS_MIN, (to_cancel.expires_ms - now_ms) // 2)
            delay = self.workload.rng.randint(CANCEL_AFTER_MS_MIN, latest)
            self.sim.at(now_ms + delay, self._cancel, to_cancel)

    # --- checks -------------------------------------------------------------------------------

    def _check_books(self, _: None) -> None:
        sim = self.sim
        for node in sim.nodes:
            if node.alive:
                check_books(node, sim.now_ms)
        sim.at(sim.now_ms + OFFER_CHECK_INTERVAL_MS, self._check_books)

    def quiet(self) -> bool:
        """Every node up, every exchange ended, every request of the workload answered."""
        nodes = self.sim.nodes
        if self.workload.waiting or not all(node.alive for node in nodes):
            return False
        return not open_exchanges(nodes)

    def unresolved(self) -> list[str]:
        if not all(node.alive for node in self.sim.nodes):
            return [f"{node.name} down" for node in self.sim.nodes if not node.alive]
        return open_exchanges(self.sim.nodes)[:8] or ["offers requests unanswered"]

    def final_checks(self) -> None:
        sim = self.sim
        for node in sim.nodes:
            check_books(node, sim.now_ms)
        check_no_overfill(sim.nodes, sim.now_ms)
        self.outcomes = check_atomicity(sim.nodes, sim.now_ms)
        self._await_spread()

    def _await_spread(self) -> None:
        sim = self.sim
        started_ms = sim.now_ms
        deadline_ms = started_ms + OFFER_SPREAD_BOUND_MS
        while True:
            problems = spread_problems(sim.nodes, self.reach, sim.now_ms, OFFER_SPREAD_MARGIN_MS)
            if not problems:
                self.spread_ms = sim.now_ms - started_ms
                return
            if sim.now_ms >= deadline_ms:
                names = tuple(sorted({line.split(":")[0] for line in problems[:8]}))
                message = (
                    f"{OFFER_SPREAD_BOUND_MS / 1000:g} s after the drain, {len(problems)} "
                    f"book entries wrong: " + "; ".join(problems[:4])
                )
                raise InvariantViolation(Violation("spread", message, names, sim.now_ms))
            sim._run_until(sim.now_ms + OFFER_SPREAD_POLL_MS)

    def counters(self) -> dict[str, Any]:
        counters = self.workload.counters
        return {
            "offers_made": counters.offers_made,
            "offers_refused": counters.offers_refused,
            "offer_cancels": counters.cancels_done,
            "offer_cancels_refused": counters.cancels_refused,
            "takes_tried": counters.takes_tried,
            "takes_unseen": counters.takes_unseen,
            "takes_sent": counters.takes_sent,
            "takes_same_bank": counters.takes_same_bank,
            "takes_refused": counters.takes_refused,
            "offer_requests_unanswered": counters.unanswered,
            "offer_setup_refused": counters.setup_refused,
            **self.outcomes,
            "offers_spread_ms_after_drain": self.spread_ms,
        }
