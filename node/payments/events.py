"""Inputs, effects and records of the payment core.

Rules:
- Inputs: ``Action*`` (the node or a customer wants something; ``ActionInvoice``,
  ``ActionExpect``, ``ActionReveal``, ``ActionAbandon`` and a preset condition in
  ``ActionPay`` are the exchange's, see docs/PAYMENTS.md "Preset conditions"),
  ``Receive*`` (invoice messages from a peer), ``Incoming*``/``Outgoing*``
  (what the SNAP ledgers report about conditional transfers), ``TimerTick``.
- Effects, in the order the shell must carry them out: ``PersistRecord`` (make
  it durable before anything after it leaves the node), ``ProposeConditional``,
  ``AcceptIncoming``, ``RejectIncoming`` (fed to the SNAP ledger of that peer),
  ``SendToPeer`` (invoice messages), ``Notify*`` (``NotifyHeld``: an
  expectation's parts add up; the shell may ignore repeats).
- Records are the only state changes of the core; replaying them rebuilds it.
  ``OutcomesRemembered`` and ``RefsReserved`` are written only into snapshots
  (``PaymentState.snapshot_records``): what retention kept of a forgotten past.
- A rejection reason on the wire is ``code@source>target``: the failure code
  and the SNAP edge that failed, so the payer learns which edge to avoid.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from node.limits import PAYMENT_EXPIRY_MS_MAX
from node.payments.messages import InvoiceMessage, Route, RouteHop

# The longest time a payment may give its payee's transfer (ActionPay.final_delta_ms):
# half of the longest expiry, so the other leg of an exchange fits before it.
FINAL_DELTA_MS_MAX = PAYMENT_EXPIRY_MS_MAX // 2


class Failure(enum.StrEnum):
    """Why a payment, or one of its transfers, failed."""

    NO_ROUTE = "no-route"
    INSUFFICIENT_CREDIT = "insufficient-credit"
    FEE_TOO_HIGH = "fee-too-high"  # the route costs more than max_fee
    FEE_TOO_LOW = "fee-too-low"  # a forwarder was offered less than its fee
    EXPIRY_TOO_SHORT = "expiry-too-short"
    EXPIRY_TOO_FAR = "expiry-too-far"
    TOO_MANY_PENDING = "too-many-pending"
    WRONG_PREIMAGE = "wrong-preimage"
    UNKNOWN_PAYEE = "unknown-payee"
    UNKNOWN_INVOICE = "unknown-invoice"
    WRONG_UNIT = "wrong-unit"
    AMOUNT_MISMATCH = "amount-mismatch"  # parts add up to more than the invoice
    ALREADY_PAID = "already-paid"
    TIMEOUT = "timeout"
    NOT_PROPOSED = "not-proposed"  # recovery: SNAP never recorded the proposal
    REJECTED = "rejected"  # a SNAP rejection with no payment code (credit-limit...)
    ABANDONED = "abandoned"  # the payee's validator gave the invoice up (ActionAbandon)


# Failures the payer does not retry over another path: the payee said no.
FINAL_FAILURES = frozenset(
    {
        Failure.UNKNOWN_PAYEE,
        Failure.UNKNOWN_INVOICE,
        Failure.WRONG_UNIT,
        Failure.AMOUNT_MISMATCH,
        Failure.ALREADY_PAID,
        Failure.TIMEOUT,
        Failure.ABANDONED,
    }
)


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionPay:
    """Pay ``amount`` to ``payee`` (an address at ``payee_domain``, or that domain).
    The shell has put the payer's funds on hold ``hold_id``. Idempotent by id.

    ``condition``: preset (an exchange's leg): no invoice request, parts are
    proposed at once and tried until the deadline. ``final_delta_ms``: how long
    the payee's transfer is given (default PAYMENT_FINAL_DELTA_MS, at most
    PAYMENT_EXPIRY_MS_MAX // 2). ``latest_expiry_ms``: no part whose first
    transfer expires later is proposed (``expiry-too-far`` if no path fits)."""

    payment_id: str
    payee: str
    payee_domain: str
    amount: int
    unit: str
    max_fee: int
    deadline_ms: int
    hold_id: str | None
    condition: bytes | None = None
    final_delta_ms: int | None = None
    latest_expiry_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ActionInvoice:
    """Make an invoice without an invoice request: the shell drew ``preimage`` (an
    exchange's taker). Idempotent by (payer, payment_id); refused if ``condition``
    is not sha256(preimage) or is another invoice's."""

    condition: bytes
    preimage: bytes
    payer: str
    payment_id: str
    payee: str
    amount: int
    unit: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ActionExpect:
    """An invoice whose preimage we do not know (an exchange's maker): parts are
    checked and held like an invoice's; when they add up, ``NotifyHeld``; they are
    accepted once the preimage is learned (PreimageLearned, ActionReveal)."""

    condition: bytes
    payer: str
    payment_id: str
    payee: str
    amount: int
    unit: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ActionReveal:
    """The shell learned the preimage of an invoice's condition another way."""

    condition: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class ActionAbandon:
    """Give up the invoice of ``condition``: reject what it holds (``abandoned``)
    and every later part. Refused once the invoice is paid, and for an expectation
    while a payment of ours with that condition is pending or succeeded."""

    condition: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class ReceiveInvoiceRequest:
    """An invoice request from ``peer``. ``fresh_preimage``: 32 random bytes the
    shell drew, used only if this node is the payee and makes a new invoice."""

    peer: str
    message: InvoiceMessage
    fresh_preimage: bytes


@dataclass(frozen=True, slots=True)
class ReceiveInvoiceAnswer:
    peer: str
    message: InvoiceMessage


@dataclass(frozen=True, slots=True)
class IncomingConditional:
    """A conditional PROPOSE from ``peer`` that the SNAP ledger recorded and holds pending."""

    peer: str
    msg_id: int
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    route: Route


@dataclass(frozen=True, slots=True)
class IncomingFinal:
    """The SNAP ledger decided an incoming conditional on its own (e.g. expired)."""

    peer: str
    msg_id: int
    accepted: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class OutgoingFinal:
    """The peer decided our ProposeConditional ``ref`` (SNAP NotifyFinal, outgoing)."""

    ref: int
    accepted: bool
    preimage: bytes | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class TimerTick:
    """Time passed: repeat invoice requests, retry, give up, release held parts."""


Input = (
    ActionPay
    | ActionInvoice
    | ActionExpect
    | ActionReveal
    | ActionAbandon
    | ReceiveInvoiceRequest
    | ReceiveInvoiceAnswer
    | IncomingConditional
    | IncomingFinal
    | OutgoingFinal
    | TimerTick
)


# --- effects ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProposeConditional:
    """SNAP ActionPropose to ``peer``, carrying ``route`` in the PROPOSE and ``ref``
    in the proposal (SNAP echoes it in NotifyFinal, and ignores a second ``ref``)."""

    peer: str
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    route: Route
    ref: int


@dataclass(frozen=True, slots=True)
class AcceptIncoming:
    """SNAP ActionDecide(accept) of ``peer``'s proposal ``msg_id`` with ``preimage``."""

    peer: str
    msg_id: int
    preimage: bytes


@dataclass(frozen=True, slots=True)
class RejectIncoming:
    peer: str
    msg_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class SendToPeer:
    peer: str
    message: InvoiceMessage


@dataclass(frozen=True, slots=True)
class NotifyPayment:
    """Where a payment of ours stands. ``failed_hop``: the edge "source>target"."""

    payment_id: str
    status: PaymentStatus
    paths: tuple[tuple[RouteHop, ...], ...]
    fee: int
    failed_hop: str | None
    reason: str | None
    preimage: bytes | None
    hold_id: str | None


@dataclass(frozen=True, slots=True)
class NotifyReceived:
    """The payee side: an invoice was paid in full; credit ``payee``."""

    payer: str
    payment_id: str
    payee: str
    amount: int
    unit: str


@dataclass(frozen=True, slots=True)
class NotifyHeld:
    """An expectation's held parts add up to its amount: the payer cannot take
    them back before ``min_expires_at_ms`` (the earliest expiry among them).
    Emitted each time they come to add up, and once by the first tick after a
    restart while still undecided; the shell ignores repeats."""

    condition: bytes
    payment_id: str
    payer: str
    min_expires_at_ms: int


@dataclass(frozen=True, slots=True)
class NotifyRefused:
    reason: str
    detail: str


# --- records ------------------------------------------------------------------------------

OutcomeEntry = tuple[str, bool, str | None, str | None, int, bytes | None, str | None]
"""(payment_id, succeeded, reason, failed_hop, fee, preimage, hold_id) of a forgotten payment."""


@dataclass(frozen=True, slots=True)
class PaymentStarted:
    """With ``condition`` (preset) the payment has its condition from the start
    and the invoice's expiry is the deadline. The three last fields are absent
    from the log when None."""

    payment_id: str
    payee: str
    payee_domain: str
    amount: int
    unit: str
    max_fee: int
    deadline_ms: int
    hold_id: str | None
    condition: bytes | None = None
    final_delta_ms: int | None = None
    latest_expiry_ms: int | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLearned:
    payment_id: str
    condition: bytes
    expires_ms: int


@dataclass(frozen=True, slots=True)
class PaymentEnded:
    payment_id: str
    succeeded: bool
    reason: str | None
    failed_hop: str | None


@dataclass(frozen=True, slots=True)
class InvoiceCreated:
    """``preimage`` None: an expectation (ActionExpect); its preimage, once
    learned, is a PreimageLearned of the condition."""

    condition: bytes
    preimage: bytes | None
    payer: str
    payment_id: str
    payee: str
    amount: int
    unit: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class InvoiceAbandoned:
    """ActionAbandon: the invoice refuses every part from now on."""

    condition: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class InvoiceExpired:
    """The clock passed the invoice's expiry with nothing held: it has ended
    unpaid (the tick records it; from then on it may be forgotten)."""

    condition: bytes


@dataclass(frozen=True, slots=True)
class OutcomesRemembered:
    """Snapshot only: what is kept of ended payments whose details were forgotten,
    oldest first. Each entry is (payment_id, succeeded, reason, failed_hop, fee,
    preimage, hold_id); the preimage (the proof) only for a success."""

    entries: tuple[OutcomeEntry, ...]


@dataclass(frozen=True, slots=True)
class RefsReserved:
    """Snapshot only: outgoing refs below ``next_ref`` were used (some by
    transfers since forgotten) and are never given again."""

    next_ref: int


@dataclass(frozen=True, slots=True)
class PreimageLearned:
    """Written before anything that depends on it: a crash never loses a preimage."""

    condition: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class OutgoingOpened:
    """We proposed (``payment_id``: as payer; ``upstream_*``: forwarding)."""

    ref: int
    peer: str
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    route: Route
    payment_id: str | None
    upstream_peer: str | None
    upstream_msg_id: int | None


@dataclass(frozen=True, slots=True)
class OutgoingClosed:
    ref: int
    accepted: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class IncomingOpened:
    """We took on a conditional: to forward (``downstream_ref``) or as payee (None)."""

    peer: str
    msg_id: int
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    downstream_ref: int | None


@dataclass(frozen=True, slots=True)
class IncomingClosed:
    peer: str
    msg_id: int
    accepted: bool
    reason: str | None


Record = (
    PaymentStarted
    | InvoiceLearned
    | PaymentEnded
    | InvoiceCreated
    | InvoiceAbandoned
    | InvoiceExpired
    | OutcomesRemembered
    | RefsReserved
    | PreimageLearned
    | OutgoingOpened
    | OutgoingClosed
    | IncomingOpened
    | IncomingClosed
)


@dataclass(frozen=True, slots=True)
class PersistRecord:
    record: Record


Effect = (
    PersistRecord
    | ProposeConditional
    | AcceptIncoming
    | RejectIncoming
    | SendToPeer
    | NotifyPayment
    | NotifyReceived
    | NotifyHeld
    | NotifyRefused
)
