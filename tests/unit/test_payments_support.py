"""A mesh of payment cores over real SNAP BilateralLedgers (no tests here).

The harness plays the shell: it feeds the payment core's effects into the SNAP
ledgers, carries SNAP messages between nodes (lossy when asked), and reports
SNAP's outcomes back. It emulates the two SNAP additions the lead will make:
the ``route`` of a PROPOSE (a side table keyed by sender, receiver, msgId) and
the ``ref`` of our proposals (keyed by peer and msgId). Both count as durable.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from node import snap
from node.payments.core import PaymentCore
from node.payments.events import (
    AcceptIncoming,
    ActionPay,
    Effect,
    IncomingConditional,
    IncomingFinal,
    Input,
    NotifyPayment,
    OutgoingFinal,
    PersistRecord,
    ProposeConditional,
    ReceiveInvoiceAnswer,
    ReceiveInvoiceRequest,
    Record,
    RejectIncoming,
    SendToPeer,
    TimerTick,
)
from node.payments.messages import InvoiceAnswer, InvoiceRequest, Route, RouteAnnouncement
from node.payments.routing import HopPolicy, RouteGraph
from node.signatures import sha256
from node.snap import Direction
from node.wire import Propose, SnapMessage

NOW_MS = 1_800_000_000_000
USD = "1E-2 USD"
POLICY = HopPolicy(fee_base=2, fee_ppm=1_000, expiry_delta_ms=20_000)
KEY = bytes(32)


def domain(name: str) -> str:
    return f"{name}.test"


@dataclass
class Node:
    name: str
    peers: dict[str, int]  # peer domain -> credit we extend to it
    core: PaymentCore
    ledgers: dict[str, snap.BilateralLedger]
    records: list[Record] = field(default_factory=list)
    snap_records: dict[str, list[snap.Record]] = field(default_factory=dict)
    refs: dict[tuple[str, int], int] = field(default_factory=dict)  # (peer, msgId) -> ref
    notices: list[NotifyPayment] = field(default_factory=list)
    received: list[Effect] = field(default_factory=list)


class Mesh:
    """Validators named by letter; ``links``: (a, b, credit each extends to the other)."""

    def __init__(self, links: list[tuple[str, str, int]], seed: int = 0, loss: float = 0.0) -> None:
        self.now_ms = NOW_MS
        self.rng = random.Random(seed)
        self.loss = loss
        self.links = links
        self.routes: dict[tuple[str, str, int], Route] = {}
        self.wire: deque[tuple[str, str, object]] = deque()
        self.nodes: dict[str, Node] = {}
        names = sorted({n for a, b, _ in links for n in (a, b)})
        for name in names:
            self.nodes[domain(name)] = self._new_node(name)
        self.preimages = 0

    # --- building -----------------------------------------------------------------

    def _credit(self, name: str) -> dict[str, int]:
        out = {}
        for a, b, credit in self.links:
            if name in (a, b):
                out[domain(b if name == a else a)] = credit
        return out

    def _graph(self, name: str) -> RouteGraph:
        graph = RouteGraph(domain(name), self._credit(name))
        for a, b, credit in self.links:
            for origin, peer in ((a, b), (b, a)):
                graph.add(
                    RouteAnnouncement(
                        domain(origin),
                        KEY,
                        domain(peer),
                        KEY,
                        USD,
                        credit,
                        POLICY.fee_base,
                        POLICY.fee_ppm,
                        POLICY.expiry_delta_ms,
                        1,
                        NOW_MS,
                        NOW_MS + 3_600_000,
                    )
                )
        return graph

    def _new_node(self, name: str, old: Node | None = None) -> Node:
        own = domain(name)
        credit = self._credit(name)
        ledgers = {peer: snap.BilateralLedger({USD: limit}) for peer, limit in credit.items()}

        def available(peer: str, unit: str) -> int:
            theirs = ledgers[peer].balances()[USD].theirs
            return self.nodes[peer].peers[own] - theirs.current - theirs.receivable

        core = PaymentCore(
            own, {peer: POLICY for peer in credit}, self._graph(name), available, payee_known
        )
        node = Node(name, credit, core, ledgers)
        if old is not None:  # a restart: rebuild from the records
            node.records, node.snap_records, node.refs = old.records, old.snap_records, old.refs
            node.notices = old.notices
            for record in old.records:
                core.apply(record)
            for peer, records in old.snap_records.items():
                for snap_record in records:
                    ledgers[peer].apply(snap_record)
        return node

    def crash(self, name: str) -> None:
        """Kill and restart ``name``: rebuild its cores from their records, then
        recover as the integration contract says."""
        own = domain(name)
        node = self.nodes[own] = self._new_node(name, self.nodes[own])
        for peer, ledger in node.ledgers.items():
            for view in ledger.proposals(Direction.INCOMING):
                if view.status is snap.ProposalStatus.PENDING and view.condition is not None:
                    self._feed_incoming(node, peer, view.msg_id)
            self._snap(node, peer, snap.PeerConnected())
        open_refs = set(node.core.state.open_refs())
        for (peer, msg_id), ref in node.refs.items():
            outgoing = node.ledgers[peer].proposal(Direction.OUTGOING, msg_id)
            if (
                ref in open_refs
                and outgoing is not None
                and outgoing.status is not snap.ProposalStatus.PENDING
            ):
                accepted = outgoing.status is snap.ProposalStatus.ACCEPTED
                self.feed(node, OutgoingFinal(ref, accepted, outgoing.preimage, outgoing.reason))

    # --- the shell ---------------------------------------------------------------------

    def feed(self, node: Node, event: Input) -> None:
        for effect in node.core.handle(event, self.now_ms):
            self._carry_out(node, effect)

    def _carry_out(self, node: Node, effect: Effect) -> None:
        own = domain(node.name)
        if isinstance(effect, PersistRecord):
            node.records.append(effect.record)
        elif isinstance(effect, ProposeConditional):
            ledger = node.ledgers[effect.peer]
            msg_id = ledger.next_msg_id(Direction.OUTGOING)
            node.refs[(effect.peer, msg_id)] = effect.ref
            self.routes[(own, effect.peer, msg_id)] = effect.route
            action = snap.ActionPropose(
                effect.amount, effect.unit, effect.condition, effect.expires_at_ms
            )
            self._snap(node, effect.peer, action)
        elif isinstance(effect, AcceptIncoming):
            decide = snap.ActionDecide(effect.msg_id, True, effect.preimage, "")
            self._snap(node, effect.peer, decide)
        elif isinstance(effect, RejectIncoming):
            decide = snap.ActionDecide(effect.msg_id, False, None, effect.reason)
            self._snap(node, effect.peer, decide)
        elif isinstance(effect, SendToPeer):
            self._send(own, effect.peer, effect.message)
        elif isinstance(effect, NotifyPayment):
            node.notices.append(effect)
        else:
            node.received.append(effect)

    def _snap(self, node: Node, peer: str, event: snap.Input) -> None:
        ledger = node.ledgers[peer]
        for effect in ledger.handle(event, self.now_ms):
            if isinstance(effect, snap.PersistRecord):
                node.snap_records.setdefault(peer, []).append(effect.record)
            elif isinstance(effect, snap.SendMessages):
                for message in effect.messages:
                    self._send(domain(node.name), peer, message)
            elif isinstance(effect, snap.NotifyFinal):
                if effect.direction is Direction.OUTGOING:
                    ref = node.refs[(peer, effect.msg_id)]
                    final = OutgoingFinal(ref, effect.accepted, effect.preimage, effect.reason)
                    self.feed(node, final)
                else:
                    final_in = IncomingFinal(peer, effect.msg_id, effect.accepted, effect.reason)
                    self.feed(node, final_in)
        if isinstance(event, snap.ReceiveMessages):
            for message in event.messages:  # a conditional SNAP holds pending: ours to decide
                view = ledger.proposal(Direction.INCOMING, message.msg_id)
                if (
                    isinstance(message, Propose)
                    and view is not None
                    and view.condition is not None
                    and view.status is snap.ProposalStatus.PENDING
                ):
                    self._feed_incoming(node, peer, message.msg_id)

    def _feed_incoming(self, node: Node, peer: str, msg_id: int) -> None:
        view = node.ledgers[peer].proposal(Direction.INCOMING, msg_id)
        assert view is not None and view.condition is not None and view.expires_at_ms is not None
        route = self.routes[(peer, domain(node.name), msg_id)]
        event = IncomingConditional(
            peer, msg_id, view.amount, view.unit, view.condition, view.expires_at_ms, route
        )
        self.feed(node, event)

    def _send(self, sender: str, receiver: str, message: object) -> None:
        self.wire.append((sender, receiver, message))

    def deliver(self, lossy: bool = False) -> None:
        while self.wire:
            self.deliver_one(lossy)

    def deliver_one(self, lossy: bool = False) -> None:
        sender, receiver, message = self.wire.popleft()
        if lossy and self.rng.random() < self.loss:
            return
        if True:
            node = self.nodes[receiver]
            if isinstance(message, InvoiceAnswer):
                self.feed(node, ReceiveInvoiceAnswer(sender, message))
            elif isinstance(message, InvoiceRequest):
                self.preimages += 1
                fresh = sha256(b"preimage %d %s" % (self.preimages, receiver.encode()))
                self.feed(node, ReceiveInvoiceRequest(sender, message, fresh))
            else:
                snap_message: SnapMessage = message  # type: ignore[assignment]
                self._snap(node, sender, snap.ReceiveMessages((snap_message,), b"frame"))

    def tick(self, step_ms: int = 1_000, lossy: bool = False) -> None:
        self.now_ms += step_ms
        for node in self.nodes.values():
            self.feed(node, TimerTick())
            for peer in node.ledgers:
                self._snap(node, peer, snap.TimerTick())
        self.deliver(lossy)

    # --- driving and looking -------------------------------------------------------------

    def pay(
        self,
        payer: str,
        payee: str,
        amount: int,
        payment_id: str = "p1",
        max_fee: int = 1_000,
        deadline_ms: int = 120_000,
    ) -> None:
        node = self.nodes[domain(payer)]
        action = ActionPay(
            payment_id,
            domain(payee),
            domain(payee),
            amount,
            USD,
            max_fee,
            self.now_ms + deadline_ms,
            f"hold-{payment_id}",
        )
        self.feed(node, action)

    def settle(self, ticks: int = 400) -> None:
        self.deliver()
        for _ in range(ticks):
            self.tick()

    def last(self, payer: str) -> NotifyPayment:
        return self.nodes[domain(payer)].notices[-1]

    def net(self, name: str) -> int:
        """What ``name`` gained over all its bilateral ledgers (final balances)."""
        node = self.nodes[domain(name)]
        return sum(ledger.balances()[USD].ours.current for ledger in node.ledgers.values())

    def pending(self) -> int:
        ledgers = [ledger for node in self.nodes.values() for ledger in node.ledgers.values()]
        return sum(ledger.pending_count() for ledger in ledgers)


def payee_known(payee: str, unit: str) -> bool:
    return not payee.startswith("nobody")
