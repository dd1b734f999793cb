"""The node's engine: every decision of the shell, without trio, sockets or threads.

Rules:
- One pass decides a batch of events (frames from peers, operator requests,
  link changes, the clock's tick): it runs them through the cores and appends
  the records they produce. What the pass decided (frames to peers, answers to
  the operator) is held back until the caller has made those records durable;
  ``outgoing`` asserts it. That is the durability rule of DESIGN.md section 5.
- Frames are signed here, once per frame of many messages; the cores only
  verify and decide.
- Bad input from the network or the operator is counted by reason and
  answered with a refusal; it never stops the node.
- The trio runtime (``node.runtime``) and the simulator drive the same engine,
  so a simulated mesh runs exactly the code a real node runs.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from node import wire
from node.accounts import AccountsDesk
from node.api.protocol import (
    CUSTOMER_OPERATIONS,
    OFFER_OPERATIONS,
    ApiError,
    Request,
    decode_request,
    encode_error,
    encode_result,
    request_id_of,
)
from node.config import NodeConfig
from node.crypto import NodeKey
from node.customer_payments import CustomerPayments
from node.exchange_desk import EXCHANGE_MESSAGES, ExchangeDesk
from node.exchange_state import exchange_log_record
from node.federation import Effect as FederationEffect
from node.held_acks import HeldAcks
from node.limits import (
    HASH_BYTES,
    SNAPSHOT_BYTES_MAX,
    SNAPSHOT_BYTES_PER_RECORD,
    SNAPSHOT_EVERY_RECORDS,
)
from node.net.base import PeerDown, PeerStatus, PeerUp, Received, TransportEvent
from node.offers_desk import OffersDesk
from node.payments.events import Effect as PaymentEffect
from node.payments.events import Input as PaymentInput
from node.payments_desk import PAYMENT_MESSAGES, PaymentsDesk
from node.snap.events import (
    ActionLearnPreimage,
    ActionPropose,
    Direction,
    Effect,
    Input,
    NotifyFinal,
    NotifyProposed,
    NotifyRefused,
    PeerConnected,
    PersistRecord,
    ReceiveMessages,
    SendMessages,
    TimerTick,
)
from node.state import Invoice, NodeIdentity, NodeState, invoice_log_record, snap_log_record
from node.storage.log import AppendLog

log = structlog.get_logger()

FEDERATION_TYPES = (wire.Resolve, wire.Resolved)
SNAP_TYPES = (wire.Propose, wire.Accept, wire.Reject, wire.Ack)
_LATER = object()  # an answer sent when it is known (federation over the mesh)


@dataclass
class Decisions:
    """What one pass decided, held back until its records are durable."""

    outbox: defaultdict[bytes, list[wire.PeerMessage]]
    replies: list[tuple[bytes, bytes]]


PaymentCallbacks = tuple[
    Callable[[bytes, Input], list[Effect]], Callable[[bytes, wire.PeerMessage], None]
]
"""(run an input through a peer's SNAP core, queue a message to a peer) for one pass."""


def identity_of(config: NodeConfig) -> NodeIdentity:
    return NodeIdentity(config.name, config.public_key, config.daily_limits)


def recover_state(log_: AppendLog, config: NodeConfig) -> tuple[NodeState, int]:
    """Rebuild the state: the latest snapshot, then every record after it."""
    peer_units = {peer.public_key: peer.limits for peer in config.peers}
    snapshot = log_.load_snapshot()
    if snapshot is None:
        state, start_lsn = NodeState(peer_units, identity_of(config)), 0
    else:
        start_lsn, data = snapshot
        state = NodeState.from_snapshot(data, peer_units, identity_of(config))
    replayed = 0
    for _lsn, payload in log_.records(start_lsn):
        state.apply_log_record(payload)
        replayed += 1
    return state, replayed


class NodeEngine:
    """One node's decisions, without trio: events in, records appended, messages out.

    The caller (the trio runtime, or a simulator) loops: ``decide`` a batch of
    events, ``sync`` if ``sync_due``, then send ``outgoing`` -- never before the
    sync -- and ``write_snapshot`` when ``snapshot_due`` (after a sync). A
    caller may leave a pass with nothing to send unsynced for a while (the
    runtime does, SYNC_DEFER_MS_MAX); the next ``outgoing`` still needs a sync.
    """

    def __init__(
        self,
        config: NodeConfig,
        key: NodeKey,
        log_: AppendLog,
        state: NodeState,
        *,
        started_ms: int,
        link_statuses: Callable[[], list[PeerStatus]],
        link_clock_s: Callable[[], float],
        random_bytes: Callable[[int], bytes] = os.urandom,
        recovery: dict[str, Any] | None = None,
    ) -> None:
        """``link_statuses`` and ``link_clock_s`` come from the transport (its view of
        the links, on its clock); ``random_bytes`` makes preimages (seeded in a
        simulation)."""
        assert key.public_key == config.public_key
        self.config = config
        self.key = key
        self.log = log_
        self.state = state
        self.link_statuses = link_statuses
        self.link_clock_s = link_clock_s
        self.random_bytes = random_bytes
        self.recovery = recovery or {}
        self.peer_names = {peer.public_key: peer.name for peer in config.peers}
        self.refusals: Counter[str] = Counter()
        self.started_ms = started_ms
        self.records_since_snapshot = 0
        self.snapshot_every_records = SNAPSHOT_EVERY_RECORDS
        self.snapshots_skipped = 0
        self.snapshot_lsn: int | None = self.recovery.get("snapshot_lsn")
        self.accounts = AccountsDesk(
            state,
            key,
            self._append,
            self._refuse,
            {peer.name: peer.public_key for peer in config.peers},
        )
        self.payments = PaymentsDesk(
            config,
            key,
            state,
            self._append,
            lambda reason, detail: self._refuse(reason, detail),
            random_bytes,
        )
        self.customer_payments = CustomerPayments(
            config,
            key,
            state.books,
            state.payments,
            self.accounts.run_books,
            self.payments.payment,
        )
        self.payments.customers = self.customer_payments
        self.offers = OffersDesk(
            config,
            key,
            state.books,
            self.accounts.run_books,
            state.exchange.cancels,
            self._log_exchange,
        )
        self.payments.gossip_kinds.update(dict.fromkeys(OffersDesk.KINDS, self.offers))
        self.offers.refuse = self._refuse
        self.offers.gossip_items_of_ours = lambda: self.payments.gossip.per_origin.get(
            key.public_key, 0
        )
        self.exchanges = ExchangeDesk(
            config,
            key,
            state.books,
            state.exchange,
            self.accounts.run_books,
            self._log_exchange,
            self.offers,
            self.payments,
            self.customer_payments,
            random_bytes,
        )
        self.offers.exchanges = self.exchanges
        self.payments.exchanges = self.exchanges
        self.peer_keys = {peer.name: peer.public_key for peer in config.peers}
        self._callbacks: tuple[Decisions, int, PaymentCallbacks] | None = None
        self.held_acks = HeldAcks()

    def _log_exchange(self, record: dict[str, Any]) -> None:
        self._append(exchange_log_record(record))
        self.state.exchange.apply(record)

    def _append(self, payload: bytes) -> None:
        self.log.append(payload)
        self.records_since_snapshot += 1

    def knows_key(self, key: bytes) -> bool:
        """May this key connect: a trusted peer, the operator or a registered customer."""
        return (
            key in self.peer_names
            or key == self.config.operator_key
            or key in self.accounts.customers
        )

    def _customer_request(self, key: bytes) -> bool:
        """Is what this key sends a customer's request (as ``_on_event`` decides)."""
        return (
            key not in self.peer_names
            and key != self.config.operator_key
            and key in self.accounts.customers
        )

    # --- one pass ------------------------------------------------------------

    def decide(self, events: Sequence[TransportEvent], now_ms: int, *, tick: bool) -> Decisions:
        """Run events (and the clock's tick) through the cores; append their records."""
        current = Decisions(defaultdict(list), [])
        run, send = self._payment_callbacks(now_ms, current)
        self.offers.publish = lambda item, at_ms: self.payments.publish(item, at_ms, send)
        self.offers.resync = lambda at_ms: self._resync_gossip(at_ms, send)
        self.offers.now_ms = now_ms
        self.exchanges.feed = lambda event: self.payments.feed(event, now_ms, run, send)
        self.exchanges.send = lambda peer, message: send(self.peer_keys[peer], message)

        def answer(client_key: bytes, request_id: int, result: Any) -> None:
            current.replies.append((client_key, encode_result(request_id, result)))

        self.payments.answer = answer  # a waiting `pay`, when its payment ends in this pass
        self.customer_payments.answer = answer  # a waiting `transfer_status`, likewise
        checker = self.accounts.checker
        if checker is not None:
            self.accounts.send_ahead(
                event.payload
                for event in events
                if isinstance(event, Received) and self._customer_request(event.peer_key)
            )
        for event in events:
            self._on_event(event, now_ms, current)
        if checker is not None:
            checker.forget()
        if tick:
            for peer_key, ledger in list(self.state.ledgers.items()):
                if ledger.tick_due(now_ms):
                    self._run_core(peer_key, TimerTick(), now_ms, current)
            self._settle_federation(self.accounts.tick(now_ms), current)
            self.payments.tick(now_ms, *self._payment_callbacks(now_ms, current))
            self.offers.tick(now_ms)
            self.exchanges.tick(now_ms)
        self.held_acks.apply(current.outbox, now_ms)
        self._callbacks = None  # the pass's decisions are the caller's now
        self.customer_payments.answer = None  # likewise: an answer belongs to a pass
        return current

    def _resync_gossip(self, now_ms: int, send: Callable[[bytes, wire.PeerMessage], None]) -> None:
        """An anti-entropy walk with every connected peer, as when its link comes up."""
        for status in self.link_statuses():
            if status.connected and status.peer_key in self.peer_names:
                self.payments.on_peer_up(status.peer_key, now_ms, send)

    def _payment_callbacks(self, now_ms: int, current: Decisions) -> PaymentCallbacks:
        """How the payments desk reaches the SNAP ledgers and the frames of this pass.
        Made once per pass and time (every core run asks for them)."""
        made = self._callbacks
        if made is not None and made[0] is current and made[1] == now_ms:
            return made[2]

        def run(peer_key: bytes, event: Input) -> list[Effect]:
            return self._run_core(peer_key, event, now_ms, current)

        def send(peer_key: bytes, message: wire.PeerMessage) -> None:
            current.outbox[peer_key].append(message)

        self._callbacks = (current, now_ms, (run, send))
        return run, send

    @property
    def sync_due(self) -> bool:
        return self.log.next_lsn > self.log.durable_lsn

    def sync(self) -> None:
        """Make every appended record durable. An fsync error is fatal by design."""
        self.log.sync()

    def outgoing(self, decisions: Decisions) -> list[tuple[bytes, bytes]]:
        """What a pass lets out, signed: frames to peers and answers to clients.

        Only call once the pass's records are durable."""
        assert not self.sync_due, "nothing leaves before its record is durable"
        payloads: list[tuple[bytes, bytes]] = []
        for peer_key, messages in decisions.outbox.items():
            for group in wire.split_into_frames(messages):
                payloads.append((peer_key, wire.encode_frame(self.key, peer_key, group)))
        payloads.extend(decisions.replies)
        return payloads

    def snapshot_due(self, *, force: bool = False) -> bool:
        return self.records_since_snapshot >= (1 if force else self.snapshot_every_records)

    def write_snapshot(self) -> None:
        """Write the state as of every durable record (blocking disk I/O).

        The next one is due after more records the bigger this one was, so
        snapshots cost each record at most SNAPSHOT_BYTES_PER_RECORD bytes of
        writing however long the chains grow (every SNAPSHOT_EVERY_RECORDS at
        least). One above SNAPSHOT_BYTES_MAX is not written: the node goes on,
        keeping every log segment since the last snapshot, and says so.
        """
        assert not self.sync_due
        lsn, data = self.log.next_lsn, self.state.to_snapshot()
        self.records_since_snapshot = 0
        self.snapshot_every_records = max(
            SNAPSHOT_EVERY_RECORDS, len(data) // SNAPSHOT_BYTES_PER_RECORD
        )
        if len(data) > SNAPSHOT_BYTES_MAX:
            self.snapshots_skipped += 1
            log.warning(
                "snapshot skipped: larger than the limit; the log since the last one is kept",
                bytes=len(data),
                limit=SNAPSHOT_BYTES_MAX,
                skipped=self.snapshots_skipped,
            )
            return
        self.log.write_snapshot(lsn, data)
        self.snapshot_lsn = lsn
        log.info("snapshot written", lsn=lsn, bytes=len(data))

    # --- inputs --------------------------------------------------------------

    def _on_event(self, event: TransportEvent, now_ms: int, current: Decisions) -> None:
        if isinstance(event, PeerUp):
            if event.peer_key in self.peer_names:
                log.info("peer up", peer=self.peer_names[event.peer_key])
                self._run_core(event.peer_key, PeerConnected(), now_ms, current)
                _, send = self._payment_callbacks(now_ms, current)
                self.payments.on_peer_up(event.peer_key, now_ms, send)
        elif isinstance(event, PeerDown):
            if event.peer_key in self.peer_names:
                log.info("peer down", peer=self.peer_names[event.peer_key])
        elif event.peer_key in self.peer_names:
            self._on_frame(event, now_ms, current)
        elif event.peer_key == self.config.operator_key:
            self._on_request(event, now_ms, current, operator=True)
        elif event.peer_key in self.accounts.customers:
            self._on_request(event, now_ms, current, operator=False)
        else:
            self._refuse("unknown-key", "a key that is neither a peer, the operator nor a customer")

    def _on_frame(self, event: Received, now_ms: int, current: Decisions) -> None:
        try:
            frame = wire.decode_frame(event.payload)
        except wire.DecodeError as error:
            self._refuse(f"frame-{error.reason}", error.detail, peer=event.peer_key)
            return
        if frame.sender != event.peer_key or frame.receiver != self.key.public_key:
            self._refuse("frame-misaddressed", "frame not from this link or not for us")
            return
        snap_messages = tuple(m for m in frame.messages if isinstance(m, SNAP_TYPES))
        if snap_messages:
            received = ReceiveMessages(snap_messages, frame.raw)
            self._run_core(event.peer_key, received, now_ms, current)
        for message in frame.messages:
            if isinstance(message, FEDERATION_TYPES):
                effects = self.accounts.on_peer_message(event.peer_key, message, now_ms)
                self._settle_federation(effects, current)
            elif isinstance(message, PAYMENT_MESSAGES):
                run, send = self._payment_callbacks(now_ms, current)
                self.payments.on_peer_message(event.peer_key, message, now_ms, run, send)
            elif isinstance(message, EXCHANGE_MESSAGES):
                self.exchanges.on_message(self.peer_names[event.peer_key], message, now_ms)

    def _settle_federation(self, effects: list[FederationEffect], current: Decisions) -> None:
        def send(peer_key: bytes, message: wire.Resolve | wire.Resolved) -> None:
            current.outbox[peer_key].append(message)

        def reply(client: bytes, request_id: int, result: Any, error: ApiError | None) -> None:
            if error is None:
                current.replies.append((client, encode_result(request_id, result)))
            else:
                current.replies.append(
                    (client, encode_error(request_id, error.code, error.message))
                )

        self.accounts.settle(effects, send, reply)

    def _run_core(
        self, peer_key: bytes, event: Input, now_ms: int, current: Decisions
    ) -> list[Effect]:
        effects = self.state.handle(peer_key, event, now_ms)
        for effect in effects:
            if isinstance(effect, PersistRecord):
                self.log.append(snap_log_record(peer_key, effect.record))
                self.records_since_snapshot += 1
            elif isinstance(effect, SendMessages):
                current.outbox[peer_key].extend(effect.messages)
            elif isinstance(effect, NotifyRefused):
                self._refuse(effect.reason, effect.detail, peer=peer_key)
            elif isinstance(effect, NotifyFinal):
                log.debug(
                    "transfer final",
                    peer=self.peer_names.get(peer_key),
                    direction=str(effect.direction),
                    msg_id=effect.msg_id,
                    accepted=effect.accepted,
                    reason=effect.reason,
                )
        run, send = self._payment_callbacks(now_ms, current)
        self.payments.on_snap_effects(peer_key, effects, now_ms, run, send)
        return effects

    def _refuse(self, reason: str, detail: str, *, peer: bytes | None = None) -> None:
        self.refusals[reason] += 1
        log.debug("refused", reason=reason, detail=detail, peer=self.peer_names.get(peer or b""))

    # --- the operator API ------------------------------------------------------

    def _on_request(
        self, event: Received, now_ms: int, current: Decisions, *, operator: bool
    ) -> None:
        try:
            request = decode_request(event.payload)
            if not operator and request.op not in CUSTOMER_OPERATIONS:
                raise ApiError("forbidden", f"{request.op} needs the operator key")
        except ApiError as error:
            self._refuse(f"api-{error.code}", error.message)
            request_id = request_id_of(event.payload) or 0
            current.replies.append(
                (event.peer_key, encode_error(request_id, error.code, error.message))
            )
            return
        try:
            if operator:
                result = self._serve(request, now_ms, current)
            else:
                result = self._serve_customer(event.peer_key, request, now_ms, current)
            if result is _LATER:
                return
            reply = encode_result(request.request_id, result)
        except ApiError as error:
            reply = encode_error(request.request_id, error.code, error.message)
        current.replies.append((event.peer_key, reply))

    def _peer_key(self, name: str) -> bytes:
        peer = self.config.peer_by_name(name)
        if peer is None:
            known = ", ".join(self.peer_names.values()) or "none"
            raise ApiError("unknown-peer", f"no trusted peer {name!r} (trusted: {known})")
        return peer.public_key

    def _serve(self, request: Request, now_ms: int, current: Decisions) -> Any:
        args = request.args
        if request.op == "status":
            return self._status(now_ms)
        if request.op == "peers":
            return self._peers()
        if request.op == "balances":
            return self._balances(args.get("peer"))
        if request.op == "pay" and args.get("to") is not None:
            run, send = self._payment_callbacks(now_ms, current)
            waiter = (self.config.operator_key, request.request_id)
            view = self.payments.pay(args, now_ms, run, send, waiter)
            return _LATER if view is None else view
        if request.op == "pay":
            return self._pay(args, now_ms, current)
        if request.op == "payment":
            return self.payments.payment(args["payment_id"])
        if request.op == "payments":
            return self.payments.payments()
        if request.op == "route":
            return self.payments.route(args, now_ms)
        if request.op == "pay_batch":
            return self._pay_batch(args, now_ms, current)
        if request.op == "invoice":
            return self._invoice(args["amount"], args["unit"], now_ms, current)
        if request.op == "transfer":
            return self._transfer(args["peer"], args["direction"], args["msg_id"])
        if request.op in ("asset_info", "offer", "offers_search", "offers_changes"):
            return self._serve_offers(b"", "", request, now_ms, current)
        if request.op in OFFER_OPERATIONS:
            raise ApiError("customers-only", f"{request.op} is signed by a customer's key")
        return self._serve_accounts(self.config.operator_key, request, now_ms, current)

    def _serve_accounts(
        self, client_key: bytes, request: Request, now_ms: int, current: Decisions
    ) -> Any:
        """The operator's customer-ledger and federation requests."""
        args, accounts = request.args, self.accounts
        if request.op == "user_register":
            return accounts.register(args, now_ms)
        if request.op == "user_freeze":
            return accounts.freeze(args, now_ms)
        if request.op == "users":
            return accounts.users()
        if request.op == "asset_define":
            return accounts.define_asset(args, now_ms)
        if request.op == "assets":
            return accounts.assets()
        if request.op in ("deposit", "withdraw"):
            return accounts.issue(args, now_ms, deposit=request.op == "deposit")
        if request.op == "account":
            if args.get("address") is None:
                raise ApiError("bad-request", "account needs an address for the operator")
            return accounts.account(args["address"])
        if request.op == "resolve":
            return self._resolve(client_key, request, now_ms, current)
        raise ApiError("unknown-op", f"{request.op} is not served here")

    def _serve_customer(
        self, client_key: bytes, request: Request, now_ms: int, current: Decisions
    ) -> Any:
        """A customer's requests: the connection's key is the customer."""
        address = self.accounts.customer_address(client_key)
        if request.op == "account":
            return self.accounts.account(address)
        if request.op == "assets":
            return self.accounts.assets()
        if request.op == "ledger_transfer":
            return self.accounts.transfer(client_key, request.args, now_ms)
        if request.op == "ledger_transfers":
            return self.accounts.transfers(client_key, request.args["instructions"], now_ms)
        if request.op == "chain_pull":
            return self.accounts.chain_pull(address, request.args.get("from_seq") or 0)
        if request.op == "cross_transfer":
            run, send = self._payment_callbacks(now_ms, current)

            def feed(event: PaymentInput) -> list[PaymentEffect]:
                return self.payments.feed(event, now_ms, run, send)

            return self.customer_payments.submit(client_key, address, request.args, now_ms, feed)
        if request.op == "transfer_status":
            payment_id = request.args["payment_id"]
            if not request.args.get("wait"):
                return self.customer_payments.status(address, payment_id)
            status = self.customer_payments.wait_for_end(
                client_key, request.request_id, address, payment_id
            )
            return _LATER if status is None else status
        if request.op in OFFER_OPERATIONS:
            return self._serve_offers(client_key, address, request, now_ms, current)
        assert request.op == "resolve"
        return self._resolve(client_key, request, now_ms, current)

    def _serve_offers(
        self, client_key: bytes, address: str, request: Request, now_ms: int, current: Decisions
    ) -> Any:
        """Offers: making, cancelling and taking them (customers), finding them (anyone)."""
        args, offers = request.args, self.offers
        if request.op == "asset_info":
            return offers.asset_info(args["uai"])
        if request.op == "offer":
            return offers.offer_view(args["offer_id"], now_ms)
        if request.op == "offers_search":
            return offers.search(args, now_ms)
        if request.op == "offers_changes":
            return offers.changes(args, now_ms)
        if request.op == "offer_create":
            return offers.create(client_key, address, args, now_ms)
        if request.op == "offer_cancel":
            return offers.cancel(client_key, address, args, now_ms)
        if request.op == "offer_take":
            return offers.take(client_key, address, args, now_ms)
        assert request.op == "take_status"
        return offers.take_status(address, args["take_id"])

    def _resolve(self, client_key: bytes, request: Request, now_ms: int, current: Decisions) -> Any:
        req_id = int.from_bytes(self.random_bytes(8), "big") >> 1
        effects, _ = self.accounts.resolve(
            client_key, request.request_id, request.args["address"], req_id, now_ms
        )
        self._settle_federation(effects, current)
        return _LATER

    def _pay(self, args: dict[str, Any], now_ms: int, current: Decisions) -> dict[str, Any]:
        peer_key = self._peer_key(args["peer"])
        propose = ActionPropose(
            args["amount"], args["unit"], args.get("condition"), args.get("expires_at_ms")
        )
        for effect in self._run_core(peer_key, propose, now_ms, current):
            if isinstance(effect, NotifyRefused):
                raise ApiError(effect.reason, effect.detail)
            if isinstance(effect, NotifyProposed):
                return {
                    "peer": args["peer"],
                    "msg_id": effect.msg_id,
                    "amount": args["amount"],
                    "unit": args["unit"],
                    "state": "pending",
                }
        raise AssertionError("ActionPropose answers with NotifyProposed or NotifyRefused")

    def _pay_batch(self, args: dict[str, Any], now_ms: int, current: Decisions) -> dict[str, Any]:
        """Many unconditional transfers to one peer in one request (bulk settlement).

        Each is decided on its own: the answer lists a msgId or a refusal per amount.
        """
        peer_key = self._peer_key(args["peer"])
        outcomes: list[dict[str, Any]] = []
        for amount in args["amounts"]:
            propose = ActionPropose(amount, args["unit"], None, None)
            for effect in self._run_core(peer_key, propose, now_ms, current):
                if isinstance(effect, NotifyRefused):
                    outcomes.append({"amount": amount, "refused": effect.reason})
                elif isinstance(effect, NotifyProposed):
                    outcomes.append({"amount": amount, "msg_id": effect.msg_id})
        return {"peer": args["peer"], "unit": args["unit"], "transfers": outcomes}

    def _invoice(self, amount: int, unit: str, now_ms: int, current: Decisions) -> dict[str, Any]:
        invoice = Invoice(self.random_bytes(HASH_BYTES), amount, unit, now_ms)
        self.log.append(invoice_log_record(invoice))
        self.records_since_snapshot += 1
        self.state.add_invoice(invoice)
        for peer_key in list(self.state.ledgers):
            self._run_core(peer_key, ActionLearnPreimage(invoice.preimage), now_ms, current)
        return {"condition": invoice.condition, "amount": amount, "unit": unit}

    def _transfer(self, peer_name: str, direction: str, msg_id: int) -> dict[str, Any]:
        peer_key = self._peer_key(peer_name)
        side = Direction.OUTGOING if direction == "out" else Direction.INCOMING
        view = self.state.ledger(peer_key).proposal(side, msg_id)
        if view is None:
            raise ApiError("not-found", f"no {direction} transfer {msg_id} with {peer_name}")
        return {
            "peer": peer_name,
            "direction": direction,
            "msg_id": msg_id,
            "state": str(view.status),
            "amount": view.amount,
            "unit": view.unit,
            "condition": view.condition,
            "expires_at_ms": view.expires_at_ms,
            "preimage": view.preimage,
            "reason": view.reason,
            "late": view.late,
            "acknowledged": view.acknowledged,
        }

    def _balances(self, peer_name: str | None) -> list[dict[str, Any]]:
        keys = [self._peer_key(peer_name)] if peer_name is not None else list(self.state.ledgers)
        rows = []
        for peer_key in keys:
            ledger = self.state.ledger(peer_key)
            totals = ledger.totals()
            for unit, balances in sorted(ledger.balances().items()):
                unit_totals = totals[unit]
                rows.append(
                    {
                        "peer": self.peer_names.get(peer_key, peer_key.hex()),
                        "unit": unit,
                        "ours": asdict(balances.ours),
                        "theirs": asdict(balances.theirs),
                        "accepted_in": unit_totals.accepted_in,
                        "accepted_out": unit_totals.accepted_out,
                        "accepted_count": unit_totals.accepted_in_count
                        + unit_totals.accepted_out_count,
                        "rejected_count": unit_totals.rejected_in_count
                        + unit_totals.rejected_out_count,
                    }
                )
        return rows

    def _peers(self) -> list[dict[str, Any]]:
        statuses = {status.peer_key: status for status in self.link_statuses()}
        now_s = self.link_clock_s()
        rows = []
        for peer in self.config.peers:
            status = statuses.get(peer.public_key)
            ledger = self.state.ledger(peer.public_key)
            connected = status is not None and status.connected
            since = status.since_s if status is not None else None
            rows.append(
                {
                    "name": peer.name,
                    "public_key": peer.public_key.hex(),
                    "address": f"{peer.address[0]}:{peer.address[1]}" if peer.address else None,
                    "connected": connected,
                    "for_s": round(now_s - since, 1) if since is not None else None,
                    "unacked": ledger.unacked_count(),
                    "pending": ledger.pending_count(),
                    "queued_bytes": status.queued_bytes if status is not None else 0,
                    "dropped": status.dropped_payloads if status is not None else 0,
                    "reconnects": status.reconnects if status is not None else 0,
                }
            )
        return rows

    def _status(self, now_ms: int) -> dict[str, Any]:
        peers = self._peers()
        accepted = 0
        for ledger in self.state.ledgers.values():
            for totals in ledger.totals().values():
                accepted += totals.accepted_in_count + totals.accepted_out_count
        return {
            "name": self.config.name,
            "public_key": self.config.public_key.hex(),
            "uptime_s": round((now_ms - self.started_ms) / 1000, 1),
            "peers": len(peers),
            "peers_connected": sum(1 for peer in peers if peer["connected"]),
            "pending": sum(ledger.pending_count() for ledger in self.state.ledgers.values()),
            "unacked": sum(ledger.unacked_count() for ledger in self.state.ledgers.values()),
            "accepted": accepted,
            "invoices": len(self.state.invoices),
            "log": {
                "next_lsn": self.log.next_lsn,
                "durable_lsn": self.log.durable_lsn,
                "snapshot_lsn": self.snapshot_lsn,
                "snapshot_every_records": self.snapshot_every_records,
                "snapshots_skipped": self.snapshots_skipped,
                **self.recovery,
            },
            "refusals": dict(self.refusals),
            "gossip_received": {
                kind: counts.to_dict() for kind, counts in self.payments.gossip_received.items()
            },
            "signature_checker": None
            if (checker := self.accounts.checker) is None
            else {"running": not checker.broken, "batches_checked": checker.batches_checked},
        }
