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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.payments.events import (
    IncomingClosed,
    IncomingOpened,
    InvoiceAbandoned,
    InvoiceCreated,
    InvoiceLearned,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PreimageLearned,
    Record,
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


@dataclass(slots=True)
class Invoice:
    created: InvoiceCreated
    parts: list[IncomingKey] = field(default_factory=list)
    paid: bool = False
    abandoned: bool = False
    held_notified: bool = field(default=False, compare=False)  # volatile: NotifyHeld sent


class PaymentState:
    def __init__(self) -> None:
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

    def apply(self, record: Record) -> None:
        if isinstance(record, PaymentStarted):
            assert record.payment_id not in self.payments
            payment = self.payments[record.payment_id] = Payment(record)
            self.pending_ids[record.payment_id] = None
            if record.condition is not None:
                payment.condition, payment.invoice_expires_ms = record.condition, record.deadline_ms
                self.payment_by_condition[record.condition] = record.payment_id
        elif isinstance(record, InvoiceLearned):
            payment = self.payments[record.payment_id]
            assert payment.condition is None
            payment.condition, payment.invoice_expires_ms = record.condition, record.expires_ms
            self.payment_by_condition[record.condition] = record.payment_id
        elif isinstance(record, PaymentEnded):
            payment = self.payments[record.payment_id]
            assert payment.status is PaymentStatus.PENDING
            payment.status = PaymentStatus.SUCCEEDED if record.succeeded else PaymentStatus.FAILED
            del self.pending_ids[record.payment_id]
            payment.reason, payment.failed_hop = record.reason, record.failed_hop
        elif isinstance(record, InvoiceCreated):
            assert record.condition not in self.invoices
            self.invoices[record.condition] = Invoice(record)
            self.invoice_by_request[(record.payer, record.payment_id)] = record.condition
            if record.preimage is not None:
                assert sha256(record.preimage) == record.condition
                self.preimages[record.condition] = record.preimage
        elif isinstance(record, InvoiceAbandoned):
            invoice = self.invoices[record.condition]
            assert not invoice.paid and not invoice.abandoned
            invoice.abandoned = True
        elif isinstance(record, PreimageLearned):
            assert sha256(record.preimage) == record.condition
            self.preimages[record.condition] = record.preimage
        else:
            self._apply_transfer(record)

    def _apply_transfer(
        self, record: OutgoingOpened | OutgoingClosed | IncomingOpened | IncomingClosed
    ) -> None:
        if isinstance(record, OutgoingOpened):
            assert record.ref == self.next_ref
            upstream = None
            if record.upstream_peer is not None and record.upstream_msg_id is not None:
                upstream = (record.upstream_peer, record.upstream_msg_id)
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
            self.next_ref += 1
            self.open_outgoing[record.ref] = None
            self.open_per_peer[record.peer] = self.open_per_peer.get(record.peer, 0) + 1
            if record.payment_id is not None:
                self.payments[record.payment_id].parts.append(record.ref)
        elif isinstance(record, OutgoingClosed):
            outgoing = self.outgoing[record.ref]
            self._close(outgoing, record.accepted, record.reason)
            del self.open_outgoing[record.ref]
            self.open_per_peer[outgoing.peer] -= 1
            if outgoing.payment_id is not None and not record.accepted:
                edge = failed_edge(record.reason)[1]
                if edge is not None:
                    self.payments[outgoing.payment_id].avoid.add(edge)
        elif isinstance(record, IncomingOpened):
            key = (record.peer, record.msg_id)
            assert key not in self.incoming
            self.incoming[key] = Incoming(
                record.peer,
                record.amount,
                record.unit,
                record.condition,
                record.expires_at_ms,
                downstream_ref=record.downstream_ref,
            )
            self.open_incoming[key] = None
            if record.downstream_ref is None:
                self.invoices[record.condition].parts.append(key)
        else:
            key = (record.peer, record.msg_id)
            incoming = self.incoming[key]
            self._close(incoming, record.accepted, record.reason)
            del self.open_incoming[key]
            invoice = self.invoices.get(incoming.condition)
            if record.accepted and incoming.downstream_ref is None and invoice is not None:
                invoice.paid = True

    @staticmethod
    def _close(transfer: Transfer, accepted: bool, reason: str | None) -> None:
        assert not transfer.closed
        transfer.closed, transfer.accepted, transfer.reason = True, accepted, reason

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
