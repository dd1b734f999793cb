"""The payments desk: how the engine wires the gossip and payment cores.

Rules:
- The desk owns the gossip engine (route announcements), the routing graph and
  the payment core; the engine owns the log, the SNAP ledgers and the frames.
  It reaches them only through the callbacks it is given.
- Signing stays in the shell: the desk signs our route announcements (one per
  trusted peer and unit, a new seq every ROUTE_ANNOUNCE_INTERVAL_MS) before
  gossip publishes them. Gossip verifies every item before storing or
  forwarding it; stored route items feed the graph, expired ones leave it.
- The payment core's effects are carried out in order: a record is appended
  to the log (and kept for the snapshot) before anything after it can leave
  the node (the engine fsyncs before it sends the pass's frames);
  ProposeConditional / AcceptIncoming / RejectIncoming become SNAP actions;
  SendToPeer goes into the peer's frame. A SNAP refusal of our proposal is
  reported back as its rejection.
- Recovery (``recover``, once, in the first pass): every pending incoming
  conditional is fed again; an open outgoing ref whose SNAP proposal is final
  gets its final, one SNAP never recorded gets ``not-proposed``; then the
  customer desk ends holds and makes credits the log shows are due.
- Customers (``customers``, the cross-bank desk, when the engine has one):
  ``NotifyPayment`` of a payment with a ``hold_id`` settles or releases the
  payer's hold; ``NotifyReceived`` credits the payee's chain; ``payee_known``
  asks it about customer addresses.
- Retention (docs/PAYMENTS.md): the payment state forgets what ended long
  ago (the snapshot holds its ``snapshot_records()``). ``payment`` answers a
  forgotten id with what is remembered of it (``details`` "forgotten"), an id
  not remembered at all with ``not-found``.
- ``gossip_received`` counts, per item kind, what peers sent us (full items,
  HAVE entries, WANT names) and what gossip stored: the operator's ``status``
  shows them, so copies per delivery can be measured on real processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from node import snap
from node.api.protocol import ApiError
from node.config import NodeConfig
from node.crypto import NodeKey
from node.customer_payments import CustomerPayments
from node.gossip import (
    ActionPublish,
    GossipDigest,
    GossipEngine,
    GossipHave,
    GossipItem,
    GossipItems,
    GossipWant,
    NotifyRemoved,
    NotifyStored,
    ReceiveDigest,
    ReceiveHave,
    ReceiveItems,
    ReceiveWant,
)
from node.gossip import Effect as GossipEffect
from node.gossip import Input as GossipInput
from node.gossip import PeerConnected as GossipPeerConnected
from node.gossip import PolicyChanged as GossipPolicyChanged
from node.gossip import SendToPeer as GossipSend
from node.gossip import TimerTick as GossipTick
from node.limits import (
    AMOUNT_MAX,
    HASH_BYTES,
    MAX_FEE_PPM_DEFAULT,
    PAYMENT_DEADLINE_MS_DEFAULT,
    PAYMENT_FINAL_DELTA_MS,
    PAYMENT_WAITERS_MAX,
    PAYMENTS_LISTED_MAX,
    ROUTE_ANNOUNCE_INTERVAL_MS,
    ROUTE_ANNOUNCEMENT_LIFETIME_MS,
)
from node.payments.core import PaymentCore
from node.payments.events import (
    AcceptIncoming,
    ActionPay,
    Effect,
    IncomingConditional,
    IncomingFinal,
    Input,
    NotifyHeld,
    NotifyPayment,
    NotifyReceived,
    NotifyRefused,
    OutgoingFinal,
    PaymentStatus,
    PersistRecord,
    ProposeConditional,
    ReceiveInvoiceAnswer,
    ReceiveInvoiceRequest,
    RejectIncoming,
    SendToPeer,
    TimerTick,
)
from node.payments.messages import (
    ROUTE_KIND,
    InvoiceAnswer,
    InvoiceRequest,
    RouteAnnouncement,
    SignedAnnouncement,
    announcement_item,
    route_item_problem,
    signed_announcement_from_body,
)
from node.payments.routing import HopPolicy, RouteGraph
from node.payments.state import Outcome, Payment
from node.signatures import KIND_ROUTE_ANNOUNCEMENT
from node.state import NodeState, payment_log_record
from node.wire import PeerMessage

RunSnap = Callable[[bytes, snap.Input], list[snap.Effect]]
"""(peer key, input) -> the SNAP ledger's effects, its records appended, its messages queued."""
Send = Callable[[bytes, PeerMessage], None]
Append = Callable[[bytes], None]
Refuse = Callable[[str, str], None]
Answer = Callable[[bytes, int, Any], None]
"""(client key, request id, result): an answer sent once this pass is durable."""

PAYMENT_MESSAGES = (
    GossipItems,
    GossipDigest,
    GossipHave,
    GossipWant,
    InvoiceRequest,
    InvoiceAnswer,
)


class GossipKind(Protocol):
    """Another desk's kind of gossip item, carried by the same engine as routes."""

    def item_problem(self, item: GossipItem) -> str | None: ...

    def policy_changes(self) -> int:
        """Grows whenever what ``item_problem`` declines may have changed."""
        ...

    def on_stored(self, item: GossipItem) -> None: ...

    def on_removed(self, item: GossipItem) -> None: ...


@dataclass(slots=True)
class GossipCounts:
    """What peers sent us of one item kind, and what gossip stored of it."""

    items: int = 0  # full items received, duplicates included
    have_entries: int = 0
    want_names: int = 0
    stored: int = 0  # new items and newer seqs stored (ours included)

    def to_dict(self) -> dict[str, int]:
        return {
            "items": self.items,
            "have_entries": self.have_entries,
            "want_names": self.want_names,
            "stored": self.stored,
        }


def max_fee_of(args: dict[str, Any]) -> int:
    """The operator's ``max_fee``, else 1 % of the amount rounded up (docs/PROTOCOL.md)."""
    if args.get("max_fee") is not None:
        max_fee: int = args["max_fee"]
        return max_fee
    return min(AMOUNT_MAX, -(-int(args["amount"]) * MAX_FEE_PPM_DEFAULT // 1_000_000))


class PaymentsDesk:
    def __init__(
        self,
        config: NodeConfig,
        key: NodeKey,
        state: NodeState,
        append: Append,
        refuse: Refuse,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self.config = config
        self.key = key
        self.state = state
        self.append = append
        self.refuse = refuse
        self.random_bytes = random_bytes
        self.names = {peer.public_key: peer.name for peer in config.peers}
        self.keys = {peer.name: peer.public_key for peer in config.peers}
        routing = config.routing
        policy = HopPolicy(routing.fee_base, routing.fee_ppm, routing.expiry_delta_ms)
        self.graph = RouteGraph(config.name, self.keys)
        self.core = PaymentCore(
            config.name,
            {name: policy for name in self.keys},
            self.graph,
            self.available_credit,
            self.payee_known,
            state.payments,
        )
        self.core.credited = self.credited
        self.gossip = GossipEngine(key.public_key, self.names, self._item_problem)
        self.gossip_kinds: dict[str, GossipKind] = {}
        self.gossip_received: dict[str, GossipCounts] = {}
        self.announced_ms: int | None = None
        self.recovered = False
        # ``pay`` requests (client key, request id) answered when their payment ends;
        # at most PAYMENT_WAITERS_MAX in all. Volatile: a restart drops the connections.
        self.waiters: dict[str, list[tuple[bytes, int]]] = {}
        self.waiting = 0
        self.answer: Answer = lambda client_key, request_id, result: None  # set per pass
        self.customers: CustomerPayments | None = None
        self.exchanges: Any = None  # the exchange desk (node.exchange_desk), when wired

    # --- callbacks of the payment core --------------------------------------------------

    def available_credit(self, peer: str, unit: str) -> int:
        """What ``peer`` would still accept from us: the credit it announced to us
        minus its current + receivable in our SNAP ledger."""
        announced = self.graph.edges.get((self.config.name, peer, unit))
        peer_key = self.keys.get(peer)
        if announced is None or peer_key is None:
            return 0
        balances = self.state.ledger(peer_key).balances().get(unit)
        if balances is None:
            return announced.credit
        theirs = balances.theirs
        return max(0, announced.credit - theirs.current - theirs.receivable)

    def credited(self, payer: str, payment_id: str) -> bool:
        """Did a payment ``payment_id`` of ``payer`` credit a customer of ours (ever)."""
        return self.customers is not None and self.customers.books.credited(payer, payment_id)

    def payee_known(self, payee: str, unit: str) -> bool:
        if self.customers is not None:
            return self.customers.payee_known(payee, unit)
        return payee == self.config.name

    # --- inputs --------------------------------------------------------------------------

    def on_peer_message(
        self, peer_key: bytes, message: PeerMessage, now_ms: int, run: RunSnap, send: Send
    ) -> None:
        peer = self.names[peer_key]
        self._count_received(message)
        if isinstance(message, GossipItems):
            self._gossip(ReceiveItems(peer_key, message.items), now_ms, send)
        elif isinstance(message, GossipDigest):
            self._gossip(ReceiveDigest(peer_key, message), now_ms, send)
        elif isinstance(message, GossipHave):
            self._gossip(ReceiveHave(peer_key, message), now_ms, send)
        elif isinstance(message, GossipWant):
            self._gossip(ReceiveWant(peer_key, message), now_ms, send)
        elif isinstance(message, InvoiceRequest):
            fresh = self.random_bytes(HASH_BYTES)
            self.feed(ReceiveInvoiceRequest(peer, message, fresh), now_ms, run, send)
        elif isinstance(message, InvoiceAnswer):
            self.feed(ReceiveInvoiceAnswer(peer, message), now_ms, run, send)

    def _count_received(self, message: PeerMessage) -> None:
        if isinstance(message, GossipItems):
            for item in message.items:
                self._counts(item.kind).items += 1
        elif isinstance(message, GossipHave):
            for name, _ in message.entries:
                self._counts(name[1]).have_entries += 1
        elif isinstance(message, GossipWant):
            for name in message.names:
                self._counts(name[1]).want_names += 1

    def _counts(self, kind: str) -> GossipCounts:
        if kind != ROUTE_KIND and kind not in self.gossip_kinds:
            kind = "other"  # a peer's made-up kinds share one row: the table stays small
        counts = self.gossip_received.get(kind)
        if counts is None:
            counts = self.gossip_received[kind] = GossipCounts()
        return counts

    def on_peer_up(self, peer_key: bytes, now_ms: int, send: Send) -> None:
        self._gossip(GossipPeerConnected(peer_key), now_ms, send)

    def on_snap_effects(
        self, peer_key: bytes, effects: list[snap.Effect], now_ms: int, run: RunSnap, send: Send
    ) -> None:
        """Report what a SNAP ledger decided about conditional transfers."""
        peer = self.names.get(peer_key)
        if peer is None:
            return
        for effect in effects:
            if isinstance(effect, snap.NotifyIncomingConditional):
                incoming = IncomingConditional(
                    peer,
                    effect.msg_id,
                    effect.amount,
                    effect.unit,
                    effect.condition,
                    effect.expires_at_ms,
                    effect.route,
                )
                self.feed(incoming, now_ms, run, send)
            elif isinstance(effect, snap.NotifyFinal):
                if effect.direction is snap.Direction.INCOMING:
                    final_in = IncomingFinal(peer, effect.msg_id, effect.accepted, effect.reason)
                    self.feed(final_in, now_ms, run, send)
                elif effect.ref is not None:
                    final = OutgoingFinal(
                        effect.ref, effect.accepted, effect.preimage, effect.reason
                    )
                    self.feed(final, now_ms, run, send)

    def tick(self, now_ms: int, run: RunSnap, send: Send) -> None:
        if not self.recovered:
            self.recover(now_ms, run, send)
            if self.customers is not None:
                self.customers.recover(now_ms)
        if self.announced_ms is None or now_ms - self.announced_ms >= ROUTE_ANNOUNCE_INTERVAL_MS:
            self._announce(now_ms, send)
        self._gossip(GossipTick(), now_ms, send)
        self.feed(TimerTick(), now_ms, run, send)

    def recover(self, now_ms: int, run: RunSnap, send: Send) -> None:
        """After a restart: tell the core what SNAP holds (docs/PAYMENTS.md, Recovery)."""
        self.recovered = True
        for peer_key, ledger in list(self.state.ledgers.items()):
            pending = [
                view
                for view in ledger.proposals(snap.Direction.INCOMING)
                if view.status is snap.ProposalStatus.PENDING and view.condition is not None
            ]
            for view in pending:
                assert view.condition is not None and view.expires_at_ms is not None
                notice = snap.NotifyIncomingConditional(
                    view.msg_id,
                    view.amount,
                    view.unit,
                    view.condition,
                    view.expires_at_ms,
                    view.route,
                )
                self.on_snap_effects(peer_key, [notice], now_ms, run, send)
        outgoing = {
            view.ref: view
            for ledger in self.state.ledgers.values()
            for view in ledger.proposals(snap.Direction.OUTGOING)
            if view.ref is not None
        }
        for ref in self.state.payments.open_refs():
            sent = outgoing.get(ref)
            if sent is None:
                self.feed(OutgoingFinal(ref, False, None, "not-proposed"), now_ms, run, send)
            elif sent.status is not snap.ProposalStatus.PENDING:
                accepted = sent.status is snap.ProposalStatus.ACCEPTED
                final = OutgoingFinal(ref, accepted, sent.preimage, sent.reason)
                self.feed(final, now_ms, run, send)

    # --- the payment core ----------------------------------------------------------------

    def feed(self, event: Input, now_ms: int, run: RunSnap, send: Send) -> list[Effect]:
        """Run ``event`` through the core; log its records, then carry out the rest.

        The core applied every record of this call before returning, so they are
        appended first, in order: carrying out the other effects can feed the core
        again from inside (a SNAP refusal, a decision's final), and the records of
        that call come after these in the log as they did in the state. Interleaved,
        a replay would apply them in another order (a later ref before an earlier)."""
        effects = self.core.handle(event, now_ms)
        for effect in effects:
            if isinstance(effect, PersistRecord):
                self.append(payment_log_record(effect.record))
        for effect in effects:
            if not isinstance(effect, PersistRecord):
                self._carry_out(effect, now_ms, run, send)
        return effects

    def _carry_out(self, effect: Effect, now_ms: int, run: RunSnap, send: Send) -> None:
        if isinstance(effect, ProposeConditional):
            self._propose(effect, now_ms, run, send)
        elif isinstance(effect, AcceptIncoming | RejectIncoming):
            accept = isinstance(effect, AcceptIncoming)
            decide = snap.ActionDecide(
                effect.msg_id,
                accept,
                effect.preimage if isinstance(effect, AcceptIncoming) else None,
                "" if isinstance(effect, AcceptIncoming) else effect.reason,
            )
            run(self.keys[effect.peer], decide)
        elif isinstance(effect, SendToPeer):
            send(self.keys[effect.peer], effect.message)
        elif isinstance(effect, NotifyPayment):
            if effect.status is not PaymentStatus.PENDING:
                self._answer_waiters(effect.payment_id)
            if self.customers is not None:
                self.customers.on_payment(effect, now_ms)
            if self.exchanges is not None:
                self.exchanges.on_payment(effect, now_ms)
        elif isinstance(effect, NotifyHeld):
            if self.exchanges is not None:
                self.exchanges.on_held(effect, now_ms)
        elif isinstance(effect, NotifyReceived):
            if self.customers is not None:
                self.customers.on_received(effect, now_ms)
        elif isinstance(effect, NotifyRefused):
            self.refuse(f"payment-{effect.reason}", effect.detail)

    def _propose(self, effect: ProposeConditional, now_ms: int, run: RunSnap, send: Send) -> None:
        action = snap.ActionPropose(
            effect.amount,
            effect.unit,
            effect.condition,
            effect.expires_at_ms,
            route=effect.route,
            ref=effect.ref,
        )
        for snap_effect in run(self.keys[effect.peer], action):
            if isinstance(snap_effect, snap.NotifyRefused):
                final = OutgoingFinal(effect.ref, False, None, snap_effect.reason)
                self.feed(final, now_ms, run, send)

    # --- gossip ----------------------------------------------------------------------------

    def _announce(self, now_ms: int, send: Send) -> None:
        self.announced_ms = now_ms
        routing = self.config.routing
        for peer in self.config.peers:
            for unit, credit in sorted(peer.limits.items()):
                announcement = RouteAnnouncement(
                    self.config.name,
                    self.key.public_key,
                    peer.name,
                    peer.public_key,
                    unit,
                    credit,
                    routing.fee_base,
                    routing.fee_ppm,
                    routing.expiry_delta_ms,
                    now_ms,  # seq: time keeps it rising across restarts
                    now_ms,
                    now_ms + ROUTE_ANNOUNCEMENT_LIFETIME_MS,
                )
                signature = self.key.sign(KIND_ROUTE_ANNOUNCEMENT, announcement.to_sign())
                item = announcement_item(SignedAnnouncement(announcement, signature))
                self._gossip(ActionPublish(item), now_ms, send)

    def _item_problem(self, item: GossipItem) -> str | None:
        if item.kind == ROUTE_KIND:
            return route_item_problem(item)
        kind = self.gossip_kinds.get(item.kind)
        return f"unknown kind {item.kind!r}" if kind is None else kind.item_problem(item)

    def publish(self, item: GossipItem, now_ms: int, send: Send) -> None:
        """Store and spread an item of ours that another desk signed."""
        self._gossip(ActionPublish(item), now_ms, send)

    def _gossip(self, event: GossipInput, now_ms: int, send: Send) -> None:
        changes = self._policy_changes()
        for effect in self.gossip.handle(event, now_ms):
            self._carry_out_gossip(effect, send)
        if self._policy_changes() != changes:  # an endorsement stored or gone
            self.gossip.handle(GossipPolicyChanged(), now_ms)  # no effects

    def _policy_changes(self) -> int:
        return sum(kind.policy_changes() for kind in self.gossip_kinds.values())

    def _carry_out_gossip(self, effect: GossipEffect, send: Send) -> None:
        if isinstance(effect, GossipSend):
            send(effect.peer, effect.message)
        elif isinstance(effect, NotifyStored | NotifyRemoved):
            if isinstance(effect, NotifyStored):
                self._counts(effect.item.kind).stored += 1
            if effect.item.kind != ROUTE_KIND:
                kind = self.gossip_kinds.get(effect.item.kind)
                if kind is not None and isinstance(effect, NotifyStored):
                    kind.on_stored(effect.item)
                elif kind is not None:
                    kind.on_removed(effect.item)
                return
            announcement = signed_announcement_from_body(effect.item.body).announcement
            if isinstance(effect, NotifyStored):
                self.graph.add(announcement)
            else:
                self.graph.remove(announcement)
        else:
            self.refuse(f"gossip-{effect.reason}", effect.detail)

    # --- the operator API ------------------------------------------------------------------

    def pay(
        self,
        args: dict[str, Any],
        now_ms: int,
        run: RunSnap,
        send: Send,
        waiter: tuple[bytes, int] | None = None,
    ) -> dict[str, Any] | None:
        """Start a payment (or find the one with that id). With ``wait`` and a
        ``waiter``, None: the answer goes to the waiter when the payment ends, once
        the pass that ended it is durable. Past PAYMENT_WAITERS_MAX waiting
        requests, the answer is the view now (pending) and the client polls."""
        payment_id = args.get("payment_id") or self.random_bytes(8).hex()
        to = args["to"]
        action = ActionPay(
            payment_id,
            to,
            to.partition("@")[2] or to,
            args["amount"],
            args["unit"],
            max_fee_of(args),
            now_ms + PAYMENT_DEADLINE_MS_DEFAULT,
            None,
        )
        for effect in self.feed(action, now_ms, run, send):
            if isinstance(effect, NotifyRefused):
                raise ApiError(effect.reason, effect.detail)
        view = self.payment(payment_id)
        wants = args.get("wait") and waiter is not None and view["status"] == "pending"
        if not wants or self.waiting >= PAYMENT_WAITERS_MAX:
            return view
        assert waiter is not None
        self.waiters.setdefault(payment_id, []).append(waiter)
        self.waiting += 1
        return None

    def _answer_waiters(self, payment_id: str) -> None:
        waiters = self.waiters.pop(payment_id, [])
        if waiters:
            self.waiting -= len(waiters)
            view = self.payment(payment_id)
            for client_key, request_id in waiters:
                self.answer(client_key, request_id, view)

    def payment(self, payment_id: str) -> dict[str, Any]:
        """A payment of ours: in full (``details`` "full"), or, once forgotten, what is
        remembered of it (``details`` "forgotten": outcome, fee, failure, proof)."""
        payment = self.state.payments.payments.get(payment_id)
        if payment is not None:
            return self._view(payment)
        outcome = self.state.payments.outcome(payment_id)
        if outcome is None:
            detail = (
                f"no payment {payment_id!r} (ended payments are remembered by id"
                f" up to the newest {self.state.payments.outcomes_kept_max:,})"
            )
            raise ApiError("not-found", detail)
        return self._outcome_view(payment_id, outcome)

    def payments(self) -> list[dict[str, Any]]:
        """The newest PAYMENTS_LISTED_MAX payments known in full, oldest first."""
        newest = islice(reversed(self.state.payments.payments.values()), PAYMENTS_LISTED_MAX)
        return [self._view(payment) for payment in reversed(list(newest))]

    @staticmethod
    def _outcome_view(payment_id: str, outcome: Outcome) -> dict[str, Any]:
        return {
            "payment_id": payment_id,
            "details": "forgotten",
            "to": None,
            "amount": None,
            "unit": None,
            "max_fee": None,
            "status": "succeeded" if outcome.succeeded else "failed",
            "fee": outcome.fee,
            "reason": outcome.reason,
            "failed_hop": outcome.failed_hop,
            "preimage": outcome.preimage,
            "condition": None,
            "parts": [],
        }

    def _view(self, payment: Payment) -> dict[str, Any]:
        state, started = self.state.payments, payment.started
        parts = [state.outgoing[ref] for ref in payment.parts]
        live = state.live_parts(payment)
        preimage = None
        if payment.condition is not None and str(payment.status) == "succeeded":
            preimage = state.preimages.get(payment.condition)
        return {
            "payment_id": started.payment_id,
            "details": "full",
            "to": started.payee,
            "amount": started.amount,
            "unit": started.unit,
            "max_fee": started.max_fee,
            "status": str(payment.status),
            "fee": sum(part.amount - state.delivered(part) for part in live),
            "reason": payment.reason,
            "failed_hop": payment.failed_hop,
            "preimage": preimage,
            "condition": payment.condition,
            "parts": [
                {
                    "state": "open"
                    if not part.closed
                    else ("accepted" if part.accepted else "rejected"),
                    "reason": part.reason,
                    "hops": [
                        {
                            "to": part.peer,
                            "amount": part.amount,
                            "expires_at_ms": part.expires_at_ms,
                        }
                    ]
                    + [
                        {"to": hop.domain, "amount": hop.amount, "expires_at_ms": hop.expires_at_ms}
                        for hop in part.route
                    ],
                }
                for part in parts
            ],
        }

    def route(self, args: dict[str, Any], now_ms: int) -> dict[str, Any]:
        to = args["to"]
        found = self.graph.find(
            to.partition("@")[2] or to,
            args["amount"],
            args["unit"],
            now_ms + PAYMENT_FINAL_DELTA_MS,
            max_fee_of(args),
            self.available_credit,
            frozenset(),
            now_ms,
        )
        if isinstance(found, str):
            raise ApiError(found, f"no path to {to} for {args['amount']} {args['unit']}")
        return {
            "to": to,
            "amount": args["amount"],
            "unit": args["unit"],
            "fee": sum(path.fee for path in found),
            "paths": [
                {
                    "fee": path.fee,
                    "hops": [
                        {
                            "to": hop.domain,
                            "amount": hop.amount,
                            "expires_in_ms": hop.expires_at_ms - now_ms,
                        }
                        for hop in path.hops
                    ],
                }
                for path in found
            ],
        }
