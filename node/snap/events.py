"""Inputs, effects and read-only views of a SNAP bilateral ledger.

Rules:
- Inputs are what happens to a ledger: ``Receive*`` (messages from the peer),
  ``Action*`` (the operator or the node decides something), ``Timer*`` and
  ``PeerConnected`` (time passes, the link comes back).
- Effects are what the shell must do: ``Persist*`` (make a record durable before
  any ``Send*`` of the same call is released), ``Send*`` (messages to the peer),
  ``Notify*`` (refusals for counters and logs, answers to actions).
- Everything here is a frozen dataclass; reason codes are stable strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from node.payments.messages import Route
from node.snap.records import Record
from node.wire import SnapMessage


class Direction(enum.StrEnum):
    """Whose proposal: ``OUTGOING`` we proposed, ``INCOMING`` the peer proposed."""

    OUTGOING = "outgoing"
    INCOMING = "incoming"


class ProposalStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Refusal(enum.StrEnum):
    """Why an input was refused. The state is untouched by a refusal."""

    # from the peer
    OUT_OF_ORDER = "out-of-order"  # a PROPOSE beyond the next msgId; the peer repeats the gap
    CONTRADICTION = "contradiction"  # a repeat with other content; evidence is kept
    STALE = "stale"  # a PROPOSE for a settled proposal we have forgotten
    UNKNOWN_MSGID = "unknown-msgid"  # a msgId that was never used
    WRONG_PREIMAGE = "wrong-preimage"  # missing, or its SHA-256 is not the condition
    UNEXPECTED_PREIMAGE = "unexpected-preimage"  # a preimage for an unconditional proposal
    UNEXPECTED_ACK = "unexpected-ack"  # an ACK of a message we did not send
    OUTBOX_FULL = "outbox-full"  # too many of our messages await an ACK; repeat later
    # from the operator (or a transcript)
    BAD_AMOUNT = "bad-amount"
    BAD_UNIT = "bad-unit"
    UNKNOWN_UNIT = "unknown-unit"
    BAD_CONDITION = "bad-condition"
    BAD_PREIMAGE = "bad-preimage"
    BAD_REASON = "bad-reason"
    BAD_MSG_ID = "bad-msg-id"
    EXPIRED = "expired"
    EXPIRY_TOO_FAR = "expiry-too-far"
    TOO_MANY_PENDING = "too-many-pending"
    NOT_PENDING = "not-pending"


class RejectReason(enum.StrEnum):
    """The ``reason`` of a REJECT the node sends on its own."""

    UNKNOWN_UNIT = "unknown-unit"
    CREDIT_LIMIT = "credit-limit"
    EXPIRED = "expired"
    EXPIRY_TOO_FAR = "expiry-too-far"
    TOO_MANY_PENDING = "too-many-pending"


# --- inputs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiveMessages:
    """Messages from the peer, in one frame whose signature the shell has verified."""

    messages: tuple[SnapMessage, ...]
    frame_raw: bytes


@dataclass(frozen=True, slots=True)
class ActionPropose:
    """Propose a transfer to the peer. ``msg_id`` None takes the next one.

    ``route`` (payments, only with a condition) goes into the PROPOSE. ``ref`` is
    local, never on the wire: the caller's name for the proposal, kept in its
    record and echoed in its NotifyFinal; a ``ref`` already pending is a no-op
    answered with its msgId."""

    amount: int
    unit: str
    condition: bytes | None
    expires_at_ms: int | None
    msg_id: int | None = None
    route: Route = ()
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class ActionDecide:
    """Accept or reject a pending incoming proposal by hand."""

    msg_id: int
    accept: bool
    preimage: bytes | None
    reason: str


@dataclass(frozen=True, slots=True)
class ActionLearnPreimage:
    """The node now holds this preimage: accept the pending proposals it unlocks."""

    preimage: bytes


@dataclass(frozen=True, slots=True)
class TimerTick:
    """Time has passed: reject what expired, repeat what is due."""


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """The link is (re)established: repeat every unacknowledged message now."""


Input = (
    ReceiveMessages | ActionPropose | ActionDecide | ActionLearnPreimage | TimerTick | PeerConnected
)


# --- effects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """Make ``record`` durable before releasing any SendMessages of the same call."""

    record: Record


@dataclass(frozen=True, slots=True)
class SendMessages:
    """Send these to the peer; the shell splits them into frames below the size limit."""

    messages: tuple[SnapMessage, ...]


@dataclass(frozen=True, slots=True)
class NotifyRefused:
    """An input was refused; ``message`` is the peer's message as JSON, if any."""

    reason: str
    detail: str
    message: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class NotifyProposed:
    """The answer to an ActionPropose: the msgId our proposal got."""

    msg_id: int


@dataclass(frozen=True, slots=True)
class NotifyFinal:
    """A proposal became final (accepted or rejected). ``ref``: the ActionPropose's."""

    direction: Direction
    msg_id: int
    accepted: bool
    preimage: bytes | None
    reason: str | None
    ref: int | None = None


@dataclass(frozen=True, slots=True)
class NotifyIncomingConditional:
    """A conditional PROPOSE of the peer was recorded and left pending: someone
    (the payment core, the operator) must decide it before it expires."""

    msg_id: int
    amount: int
    unit: str
    condition: bytes
    expires_at_ms: int
    route: Route


Effect = (
    PersistRecord
    | SendMessages
    | NotifyRefused
    | NotifyProposed
    | NotifyFinal
    | NotifyIncomingConditional
)


# --- views -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartyBalance:
    current: int
    payable: int
    receivable: int


@dataclass(frozen=True, slots=True)
class Balances:
    """One unit's balances, as SNAP defines them, for us and for the peer."""

    ours: PartyBalance
    theirs: PartyBalance


@dataclass(frozen=True, slots=True)
class Totals:
    """One unit's sums over every proposal ever made, and how many there were."""

    accepted_in: int = 0
    accepted_out: int = 0
    pending_in: int = 0
    pending_out: int = 0
    accepted_in_count: int = 0
    accepted_out_count: int = 0
    rejected_in_count: int = 0
    rejected_out_count: int = 0
    pending_in_count: int = 0
    pending_out_count: int = 0

    def balances(self) -> Balances:
        ours = PartyBalance(
            current=self.accepted_in - self.accepted_out - self.pending_out,
            payable=self.pending_out,
            receivable=self.pending_in,
        )
        theirs = PartyBalance(
            current=self.accepted_out - self.accepted_in - self.pending_in,
            payable=self.pending_in,
            receivable=self.pending_out,
        )
        return Balances(ours, theirs)


@dataclass(frozen=True, slots=True)
class ProposalView:
    """A proposal as the ledger holds it. ``acknowledged`` is, for an outgoing
    proposal, that the peer has our PROPOSE; for an incoming one, that the peer
    has our decision."""

    direction: Direction
    msg_id: int
    amount: int
    unit: str
    condition: bytes | None
    expires_at_ms: int | None
    status: ProposalStatus
    preimage: bytes | None
    reason: str | None
    late: bool
    acknowledged: bool
    route: Route = ()
    ref: int | None = None
