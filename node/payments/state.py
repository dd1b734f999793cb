"""The state of the payment core, changed only by applying records.

Rules:
- ``apply`` is the only mutator; a record that does not fit the state is a bug
  (an assertion). Replaying the records of a run rebuilds its state exactly.
- Payments (ours, as payer) by id; invoices (ours, as payee) by condition;
  outgoing conditionals by ``ref`` (numbered from 0 in order); incoming ones by
  (peer, msgId); preimages by condition.
- An invoice's preimage is ``preimages[condition]``: from its InvoiceCreated,
  or, for an expectation (created without one), from a later PreimageLearned.
- A payment with a preset condition has it from PaymentStarted; its invoice
  expiry is its deadline.
- What a payment avoids (edges that failed it) follows from its closed parts.
- What is still open (payments pending, transfers not closed) is indexed as
  well, in the order it was opened, so the clock's work and the per-peer cap
  cost what is open, not the node's whole history.
- Retention (docs/PAYMENTS.md, "Retention"). What is open is never dropped.
  What has ended is kept in full, newest first, up to ``ended_kept_max`` of
  each kind, then forgotten oldest-ended first: a payment of ours when it has
  ended (PaymentEnded, no part open), an invoice when paid, abandoned or
  expired (InvoiceExpired) with no part held, a forwarded pair when both its
  transfers are closed. A forgotten payment of ours leaves an ``Outcome``
  (outcome, fee, hold, and the preimage of a success), kept up to
  ``outcomes_kept_max``, oldest dropped first: the same id is then answered,
  never paid twice. Forgetting happens inside ``apply`` and depends only on
  the records (the order in which things ended), never on a clock, so the
  same records give the same state with or without a snapshot between them.
- Every record that built what is retained is kept (``journal``, in log
  order); ``snapshot_records`` is the outcomes, that journal with each retained
  preimage after every record owning its condition, and the next ref:
  applied to an empty state they rebuild this one, under lower bounds too.
- A preimage is kept while something retained has its condition.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.limits import (
    PAYMENT_OUTCOMES_KEPT_MAX,
    PAYMENT_OUTCOMES_PER_RECORD_MAX,
    PAYMENTS_ENDED_KEPT_MAX,
)
from node.payments.events import (
    IncomingClosed,
    IncomingOpened,
    InvoiceAbandoned,
    InvoiceCreated,
    InvoiceExpired,
    InvoiceLearned,
    OutcomeEntry,
    OutcomesRemembered,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PreimageLearned,
    Record,
    RefsReserved,
)
from node.payments.messages import Route
from node.signatures import sha256

IncomingKey = tuple[str, int]


def failed_edge(reason: str | None) -> tuple[str, tuple[str, str] | None]:
    """``code@source>target`` -> (code, (source, target)); anything else -> (text, None)."""
    if reason is None:
        return "", None
    code, _, edge = reason.partition("@")
    source, _, target = edge.partition(">")
    return code, ((source, target) if source and target else None)


@dataclass(slots=True)
class Transfer:
    """A conditional transfer we proposed (outgoing) or received (incoming)."""

    peer: str
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    closed: bool = False
    accepted: bool = False
    reason: str | None = None


@dataclass(slots=True)
class Outgoing(Transfer):
    route: Route = ()
    payment_id: str | None = None
    upstream: IncomingKey | None = None


@dataclass(slots=True)
class Incoming(Transfer):
    downstream_ref: int | None = None
    # A forwarded one: the journal's numbers of the pair's records (retention).
    seqs: list[int] = field(default_factory=list, compare=False)


@dataclass(slots=True)
class Payment:
    started: PaymentStarted
    condition: bytes | None = None
    invoice_expires_ms: int = 0
    status: PaymentStatus = PaymentStatus.PENDING
    reason: str | None = None
    failed_hop: str | None = None
    parts: list[int] = field(default_factory=list)
    avoid: set[tuple[str, str]] = field(default_factory=set)
    request_sent_ms: int | None = None  # volatile: when we last asked for the invoice
    seqs: list[int] = field(default_factory=list, compare=False)  # its records, parts' too


@dataclass(slots=True)
class Invoice:
    created: InvoiceCreated
    parts: list[IncomingKey] = field(default_factory=list)
    paid: bool = False
    abandoned: bool = False
    expired: bool = False  # InvoiceExpired: ended unpaid
    open_parts: int = 0  # parts not closed
    seqs: list[int] = field(default_factory=list, compare=False)  # its records, parts' too
    held_notified: bool = field(default=False, compare=False)  # volatile: NotifyHeld sent


@dataclass(frozen=True, slots=True)
class Outcome:
    """What is remembered of an ended payment of ours once its details are forgotten."""

    succeeded: bool
    reason: str | None
    failed_hop: str | None
    fee: int
    preimage: bytes | None  # a success's proof
    hold_id: str | None

    def entry(self, payment_id: str) -> OutcomeEntry:
        return (
            payment_id,
            self.succeeded,
            self.reason,
            self.failed_hop,
            self.fee,
            self.preimage,
            self.hold_id,
        )


def _invoice_ended(invoice: Invoice) -> bool:
    """Paid, abandoned or expired, with no part still held."""
    return not invoice.open_parts and (invoice.paid or invoice.abandoned or invoice.expired)


def _owned_condition(record: Record) -> bytes | None:
    """The condition ``record`` makes an item own, if it does (see ``_own``)."""
    if isinstance(record, PaymentStarted | InvoiceLearned | InvoiceCreated):
        return record.condition
    if isinstance(record, IncomingOpened) and record.downstream_ref is not None:
        return record.condition  # a forward; an invoice's part is owned by its invoice
    return None


class PaymentState:
    def __init__(
        self,
        ended_kept_max: int = PAYMENTS_ENDED_KEPT_MAX,
        outcomes_kept_max: int = PAYMENT_OUTCOMES_KEPT_MAX,
    ) -> None:
        """The bounds are the limits' unless a test asks for small ones; a log must
        be replayed with the bounds it was written with to give the same state."""
        assert 0 < ended_kept_max < outcomes_kept_max
        self.ended_kept_max = ended_kept_max
        self.outcomes_kept_max = outcomes_kept_max
        self.payments: dict[str, Payment] = {}
        self.invoices: dict[bytes, Invoice] = {}
        self.invoice_by_request: dict[tuple[str, str], bytes] = {}
        self.outgoing: dict[int, Outgoing] = {}
        self.incoming: dict[IncomingKey, Incoming] = {}
        self.preimages: dict[bytes, bytes] = {}
        self.payment_by_condition: dict[bytes, str] = {}  # the latest payment with it
        self.next_ref = 0
        # What is open, oldest first (dicts as ordered sets): derived, rebuilt by replay.
        self.pending_ids: dict[str, None] = {}
        self.open_incoming: dict[IncomingKey, None] = {}
        self.open_outgoing: dict[int, None] = {}
        self.open_per_peer: dict[str, int] = {}  # outgoing transfers not closed, by peer
        # Retention: what has ended, oldest first; what is left of forgotten payments.
        self.ended_payments: deque[str] = deque()
        # Payments of ours that ended while an invoice with their condition was open
        # (an exchange's two legs): they count as ended when it ends.
        self.ending_after_invoice: dict[bytes, list[str]] = {}
        self.ended_invoices: deque[bytes] = deque()
        self.ended_forwards: deque[IncomingKey] = deque()
        self.outcomes: dict[str, Outcome] = {}
        self.outcome_order: deque[str] = deque()
        self.journal: dict[int, Record] = {}  # the records of what is retained, by number
        self.next_seq = 0
        self.condition_owners: dict[bytes, int] = {}  # retained payments, invoices, forwards
        self.payments_with: dict[bytes, int] = {}  # retained payments of ours, by condition
        # Invoices by expiry (a heap; entries of ended ones are skipped): the clock's
        # work to find expired invoices costs what expires. Derived, rebuilt by replay.
        self.invoice_expiries: list[tuple[int, bytes]] = []
        self.expired_holding: dict[bytes, None] = {}  # volatile: expired, parts still held
        # One applier per record type (``apply`` dispatches on the type, not a chain of tests).
        self._appliers: dict[type, Callable[[Any], None]] = {
            PaymentStarted: self._payment_started,
            InvoiceLearned: self._invoice_learned,
            PaymentEnded: self._payment_ended,
            InvoiceCreated: self._invoice_created,
            InvoiceAbandoned: self._invoice_ended_unpaid,
            InvoiceExpired: self._invoice_ended_unpaid,
            PreimageLearned: self._preimage_learned,
            OutcomesRemembered: self._outcomes_remembered,
            RefsReserved: self._refs_reserved,
            OutgoingOpened: self._outgoing_opened,
            OutgoingClosed: self._outgoing_closed,
            IncomingOpened: self._incoming_opened,
            IncomingClosed: self._incoming_closed,
        }

    def apply(self, record: Record) -> None:
        self._appliers[type(record)](record)

    def _payment_started(self, record: PaymentStarted) -> None:
        assert record.payment_id not in self.payments
        assert record.payment_id not in self.outcomes
        payment = self.payments[record.payment_id] = Payment(record)
        self._journal(record, payment.seqs)
        self.pending_ids[record.payment_id] = None
        if record.condition is not None:
            payment.condition, payment.invoice_expires_ms = record.condition, record.deadline_ms
            self._own_payment_condition(record.condition, record.payment_id)

    def _invoice_learned(self, record: InvoiceLearned) -> None:
        payment = self.payments[record.payment_id]
        assert payment.condition is None
        self._journal(record, payment.seqs)
        payment.condition, payment.invoice_expires_ms = record.condition, record.expires_ms
        self._own_payment_condition(record.condition, record.payment_id)

    def _payment_ended(self, record: PaymentEnded) -> None:
        payment = self.payments[record.payment_id]
        assert payment.status is PaymentStatus.PENDING
        self._journal(record, payment.seqs)
        payment.status = PaymentStatus.SUCCEEDED if record.succeeded else PaymentStatus.FAILED
        del self.pending_ids[record.payment_id]
        payment.reason, payment.failed_hop = record.reason, record.failed_hop
        self._payment_maybe_ended(payment)

    def _invoice_created(self, record: InvoiceCreated) -> None:
        assert record.condition not in self.invoices
        invoice = self.invoices[record.condition] = Invoice(record)
        self._journal(record, invoice.seqs)
        self.invoice_by_request[(record.payer, record.payment_id)] = record.condition
        self._own(record.condition)
        heapq.heappush(self.invoice_expiries, (record.expires_ms, record.condition))
        if record.preimage is not None:
            assert sha256(record.preimage) == record.condition
            self.preimages[record.condition] = record.preimage

    def _invoice_ended_unpaid(self, record: InvoiceAbandoned | InvoiceExpired) -> None:
        invoice = self.invoices[record.condition]
        assert not invoice.paid and not invoice.abandoned and not invoice.expired
        self._journal(record, invoice.seqs)
        if isinstance(record, InvoiceAbandoned):
            invoice.abandoned = True
        else:
            assert invoice.open_parts == 0
            invoice.expired = True
        self._invoice_maybe_ended(invoice)

    def _preimage_learned(self, record: PreimageLearned) -> None:
        assert sha256(record.preimage) == record.condition
        if record.condition in self.condition_owners:  # else nothing retained needs it
            self.preimages[record.condition] = record.preimage

    def _outcomes_remembered(self, record: OutcomesRemembered) -> None:
        for payment_id, succeeded, reason, hop, fee, preimage, hold_id in record.entries:
            assert payment_id not in self.payments and payment_id not in self.outcomes
            self._remember(payment_id, Outcome(succeeded, reason, hop, fee, preimage, hold_id))

    def _refs_reserved(self, record: RefsReserved) -> None:
        self.next_ref = max(self.next_ref, record.next_ref)

    def _outgoing_opened(self, record: OutgoingOpened) -> None:
        upstream = None
        if record.upstream_peer is not None and record.upstream_msg_id is not None:
            upstream = (record.upstream_peer, record.upstream_msg_id)
        # Refs of forgotten transfers are not in snapshots; a forward's was taken by
        # its IncomingOpened, just before.
        assert record.ref >= self.next_ref or (
            upstream is not None and self.incoming[upstream].downstream_ref == record.ref
        )
        self.outgoing[record.ref] = Outgoing(
            record.peer,
            record.amount,
            record.unit,
            record.condition,
            record.expires_at_ms,
            route=record.route,
            payment_id=record.payment_id,
            upstream=upstream,
        )
        self.next_ref = max(self.next_ref, record.ref + 1)
        self.open_outgoing[record.ref] = None
        self.open_per_peer[record.peer] = self.open_per_peer.get(record.peer, 0) + 1
        if record.payment_id is not None:
            payment = self.payments[record.payment_id]
            payment.parts.append(record.ref)
            self._journal(record, payment.seqs)
        else:
            assert upstream is not None
            self._journal(record, self.incoming[upstream].seqs)

    def _outgoing_closed(self, record: OutgoingClosed) -> None:
        outgoing = self.outgoing[record.ref]
        self._close(outgoing, record.accepted, record.reason)
        del self.open_outgoing[record.ref]
        self.open_per_peer[outgoing.peer] -= 1
        if not self.open_per_peer[outgoing.peer]:
            del self.open_per_peer[outgoing.peer]
        if outgoing.payment_id is not None:
            payment = self.payments[outgoing.payment_id]
            self._journal(record, payment.seqs)
            edge = None if record.accepted else failed_edge(record.reason)[1]
            if edge is not None:
                payment.avoid.add(edge)
            self._payment_maybe_ended(payment)
        else:
            assert outgoing.upstream is not None
            self._journal(record, self.incoming[outgoing.upstream].seqs)
            self._forward_maybe_ended(outgoing.upstream)

    def _incoming_opened(self, record: IncomingOpened) -> None:
        key = (record.peer, record.msg_id)
        assert key not in self.incoming
        incoming = self.incoming[key] = Incoming(
            record.peer,
            record.amount,
            record.unit,
            record.condition,
            record.expires_at_ms,
            downstream_ref=record.downstream_ref,
        )
        self.open_incoming[key] = None
        if record.downstream_ref is None:
            invoice = self.invoices[record.condition]
            invoice.parts.append(key)
            invoice.open_parts += 1
            self._journal(record, invoice.seqs)
        else:
            self._journal(record, incoming.seqs)
            self._own(record.condition)
            # The forward's downstream ref is taken even if a torn tail lost its
            # OutgoingOpened: never given to another transfer after a restart.
            self.next_ref = max(self.next_ref, record.downstream_ref + 1)

    def _incoming_closed(self, record: IncomingClosed) -> None:
        key = (record.peer, record.msg_id)
        incoming = self.incoming[key]
        self._close(incoming, record.accepted, record.reason)
        del self.open_incoming[key]
        if incoming.downstream_ref is None:
            invoice = self.invoices[incoming.condition]
            self._journal(record, invoice.seqs)
            invoice.open_parts -= 1
            if record.accepted:
                invoice.paid = True
            self._invoice_maybe_ended(invoice)
        else:
            self._journal(record, incoming.seqs)
            self._forward_maybe_ended(key)

    @staticmethod
    def _close(transfer: Transfer, accepted: bool, reason: str | None) -> None:
        assert not transfer.closed
        transfer.closed, transfer.accepted, transfer.reason = True, accepted, reason

    # --- retention ---------------------------------------------------------------------

    def _journal(self, record: Record, seqs: list[int]) -> None:
        self.journal[self.next_seq] = record
        seqs.append(self.next_seq)
        self.next_seq += 1

    def _own(self, condition: bytes) -> None:
        self.condition_owners[condition] = self.condition_owners.get(condition, 0) + 1

    def _own_payment_condition(self, condition: bytes, payment_id: str) -> None:
        self._own(condition)
        self.payments_with[condition] = self.payments_with.get(condition, 0) + 1
        self.payment_by_condition[condition] = payment_id

    def _disown(self, condition: bytes) -> None:
        owners = self.condition_owners[condition] - 1
        if owners:
            self.condition_owners[condition] = owners
        else:
            del self.condition_owners[condition]
            self.preimages.pop(condition, None)

    def _payment_maybe_ended(self, payment: Payment) -> None:
        if payment.status is PaymentStatus.PENDING or self.open_parts(payment):
            return
        condition = payment.condition
        invoice = None if condition is None else self.invoices.get(condition)
        if condition is not None and invoice is not None and not _invoice_ended(invoice):
            # An exchange's leg B: the desk reads it while leg A (this invoice) is
            # open, so it counts as ended only once leg A has ended too.
            self.ending_after_invoice.setdefault(condition, []).append(payment.started.payment_id)
            return
        self._count_ended(payment.started.payment_id)

    def _count_ended(self, payment_id: str) -> None:
        self.ended_payments.append(payment_id)
        while len(self.ended_payments) > self.ended_kept_max:
            self._forget_payment(self.ended_payments.popleft())

    def _invoice_maybe_ended(self, invoice: Invoice) -> None:
        if not _invoice_ended(invoice):
            return
        for payment_id in self.ending_after_invoice.pop(invoice.created.condition, []):
            self._count_ended(payment_id)
        # Abandoned, then its held parts closed one by one: ended at the last one only.
        self.ended_invoices.append(invoice.created.condition)
        while len(self.ended_invoices) > self.ended_kept_max:
            self._forget_invoice(self.ended_invoices.popleft())

    def _forward_maybe_ended(self, key: IncomingKey) -> None:
        incoming = self.incoming[key]
        assert incoming.downstream_ref is not None
        outgoing = self.outgoing.get(incoming.downstream_ref)
        if not incoming.closed or outgoing is None or not outgoing.closed:
            return
        self.ended_forwards.append(key)
        while len(self.ended_forwards) > self.ended_kept_max:
            self._forget_forward(self.ended_forwards.popleft())

    def _drop_journal(self, seqs: list[int]) -> None:
        for seq in seqs:
            del self.journal[seq]

    def _forget_payment(self, payment_id: str) -> None:
        payment = self.payments[payment_id]
        live = self.live_parts(payment)
        fee = sum(part.amount - self.delivered(part) for part in live)
        succeeded = payment.status is PaymentStatus.SUCCEEDED
        preimage = None
        if succeeded and payment.condition is not None:
            preimage = self.preimages.get(payment.condition)
        assert succeeded == (preimage is not None), "a success's proof is kept while it is"
        hold_id = payment.started.hold_id
        outcome = Outcome(succeeded, payment.reason, payment.failed_hop, fee, preimage, hold_id)
        del self.payments[payment_id]
        for ref in payment.parts:
            del self.outgoing[ref]
        self._drop_journal(payment.seqs)
        condition = payment.condition
        if condition is not None:
            left = self.payments_with[condition] - 1
            if left:
                self.payments_with[condition] = left
                if self.payment_by_condition.get(condition) == payment_id:
                    # Rare (two payments of ours with one condition): the latest retained.
                    latest = next(
                        other.started.payment_id
                        for other in reversed(self.payments.values())
                        if other.condition == condition
                    )
                    self.payment_by_condition[condition] = latest
            else:
                del self.payments_with[condition]
                del self.payment_by_condition[condition]
            self._disown(condition)
        self._remember(payment_id, outcome)

    def _remember(self, payment_id: str, outcome: Outcome) -> None:
        self.outcomes[payment_id] = outcome
        self.outcome_order.append(payment_id)
        while len(self.outcome_order) > self.outcomes_kept_max:
            del self.outcomes[self.outcome_order.popleft()]

    def _forget_invoice(self, condition: bytes) -> None:
        invoice = self.invoices.pop(condition)
        for key in invoice.parts:
            del self.incoming[key]
        self._drop_journal(invoice.seqs)
        request = (invoice.created.payer, invoice.created.payment_id)
        if self.invoice_by_request.get(request) == condition:
            del self.invoice_by_request[request]
        self._disown(condition)

    def _forget_forward(self, key: IncomingKey) -> None:
        incoming = self.incoming.pop(key)
        assert incoming.downstream_ref is not None
        self.outgoing.pop(incoming.downstream_ref, None)
        self._drop_journal(incoming.seqs)
        self._disown(incoming.condition)

    def snapshot_records(self) -> list[Record]:
        """Records that rebuild this state from an empty one (module rules): the
        remembered outcomes, the journal, the retained preimages, the next ref."""
        entries = [self.outcomes[payment_id].entry(payment_id) for payment_id in self.outcome_order]
        step = PAYMENT_OUTCOMES_PER_RECORD_MAX
        records: list[Record] = [
            OutcomesRemembered(tuple(entries[start : start + step]))
            for start in range(0, len(entries), step)
        ]
        # Each retained preimage right after every record that makes something own its
        # condition, not once at the end: replayed by a node built with lower retention
        # bounds (an upgrade), the journal forgets items as it goes, a forgotten success
        # needs its proof by then, and forgetting a condition's last owner drops its
        # preimage, so a later owner of the same condition must be given it again.
        told: set[bytes] = set()
        for record in self.journal.values():
            records.append(record)
            condition = _owned_condition(record)
            if condition is not None and condition in self.preimages:
                records.append(PreimageLearned(condition, self.preimages[condition]))
                told.add(condition)
        assert told == self.preimages.keys(), "a retained preimage's condition has an owner"
        records.append(RefsReserved(self.next_ref))
        return records

    def outcome(self, payment_id: str) -> Outcome | None:
        """What is remembered of a forgotten payment of ours (None: never known, or
        ended before the newest ``outcomes_kept_max``, or still known in full)."""
        return self.outcomes.get(payment_id)

    def known(self, payment_id: str) -> bool:
        """A payment of ours with this id is known in full or by its outcome."""
        return payment_id in self.payments or payment_id in self.outcomes

    def expired_invoices(self, now_ms: int, limit: int) -> list[Invoice]:
        """Invoices past their expiry, neither paid nor abandoned nor expired yet, with
        no part held (one still holding parts is looked at again on later ticks):
        at most ``limit``, for the clock to record InvoiceExpired."""
        found: list[Invoice] = []
        for condition in list(self.expired_holding):
            if len(found) >= limit:
                return found
            invoice = self.invoices.get(condition)
            if invoice is None or invoice.paid or invoice.abandoned or invoice.expired:
                del self.expired_holding[condition]
            elif not invoice.open_parts:
                del self.expired_holding[condition]
                found.append(invoice)
        heap = self.invoice_expiries
        while heap and heap[0][0] <= now_ms and len(found) < limit:
            expiry, condition = heapq.heappop(heap)
            invoice = self.invoices.get(condition)
            if invoice is None or invoice.paid or invoice.abandoned or invoice.expired:
                continue
            if invoice.created.expires_ms != expiry:
                continue  # a forgotten invoice's entry: a new one with its condition is not due
            if invoice.open_parts:
                self.expired_holding[condition] = None
            else:
                found.append(invoice)
        return found

    # --- derived ---------------------------------------------------------------------

    def open_parts(self, payment: Payment) -> list[Outgoing]:
        return [self.outgoing[r] for r in payment.parts if not self.outgoing[r].closed]

    def live_parts(self, payment: Payment) -> list[Outgoing]:
        """Parts open or accepted: what the payee has or may yet get."""
        parts = [self.outgoing[r] for r in payment.parts]
        return [part for part in parts if not part.closed or part.accepted]

    def delivered(self, part: Outgoing) -> int:
        """What the payee receives of this part."""
        return part.route[-1].amount if part.route else part.amount

    def held_parts(self, invoice: Invoice) -> list[IncomingKey]:
        """The invoice's parts still open (held, undecided)."""
        return [key for key in invoice.parts if not self.incoming[key].closed]

    def held(self, invoice: Invoice) -> int:
        return sum(self.incoming[key].amount for key in self.held_parts(invoice))

    def payment_with(self, condition: bytes) -> Payment | None:
        """A payment of ours (an exchange's other leg) with ``condition``, if any."""
        payment_id = self.payment_by_condition.get(condition)
        return None if payment_id is None else self.payments[payment_id]

    def claimable(self, invoice: Invoice) -> bool:
        """An expectation whose preimage may come back to us: our payment with its
        condition has not failed. What it holds is then ours to claim, not to drop."""
        payment = self.payment_with(invoice.created.condition)
        pending = payment is not None and payment.status is not PaymentStatus.FAILED
        return invoice.created.preimage is None and pending

    def open_towards(self, peer: str) -> int:
        return self.open_per_peer.get(peer, 0)

    def open_refs(self) -> list[int]:
        """Outgoing transfers still open: after a restart the shell reports any that
        SNAP decided, or never recorded (OutgoingFinal ``not-proposed``)."""
        return list(self.open_outgoing)

    def pending_payments(self) -> list[Payment]:
        """Our payments not ended yet, oldest first."""
        return [self.payments[payment_id] for payment_id in self.pending_ids]

    def open_incoming_items(self) -> list[tuple[IncomingKey, Incoming]]:
        """Incoming transfers not closed yet, oldest first."""
        return [(key, self.incoming[key]) for key in self.open_incoming]
