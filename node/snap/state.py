"""The state of one bilateral ledger, changed only by applying records.

Rules:
- ``apply`` is the only mutator. It checks every record against the state with
  assertions: a record that does not fit is a bug (ours, or a log corruption
  the storage layer failed to catch), and the process stops.
- Two lists of proposals, outgoing (ours) and incoming (the peer's), each
  numbered without gaps from its first msgId. A proposal is pending, then
  accepted or rejected, and never changes after that.
- Per unit, four sums (accepted_in, accepted_out, pending_in, pending_out);
  every balance derives from them (``Totals.balances``).
- The outbox holds our messages the peer has not acknowledged: the PROPOSE of
  an outgoing proposal until an ACK PROPOSE or a decision arrives, and the
  ACCEPT/REJECT of an incoming proposal until its ACK arrives. Which messages
  are in it follows from the records; when each was last sent is volatile (not
  in snapshots; after a restart every message is due at once).
- Compaction: a proposal is settled when it is final and nobody will
  legitimately repeat its messages: an outgoing one once decided (we ACK the
  decision; if that ACK is lost, the repeat gets a bare ACK), an incoming one
  once the peer has acknowledged our decision. The last ``settled_kept_max``
  settled proposals per list stay in the table for idempotent answers and
  contradiction checks; older ones are forgotten. So every msgId in
  [first, next) that is not in the table is settled and forgotten, and the
  table holds only pending, unacknowledged and recently settled proposals:
  snapshots do not grow with history.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields

from node.limits import EVIDENCE_PER_PEER_MAX
from node.payments.messages import Route
from node.signatures import sha256
from node.snap.events import Direction, ProposalStatus, ProposalView, Totals
from node.snap.records import (
    EvidenceKept,
    IncomingDecided,
    IncomingDecisionAcked,
    IncomingProposed,
    OutgoingDecided,
    OutgoingProposeAcked,
    OutgoingProposed,
    Record,
)
from node.wire import Accept, Propose, Reject, SnapMessage

OutboxKey = tuple[Direction, int]


@dataclass(slots=True)
class Proposal:
    msg_id: int
    amount: int
    unit: str
    condition: bytes | None
    expires_at_ms: int | None
    status: ProposalStatus = ProposalStatus.PENDING
    preimage: bytes | None = None
    reason: str | None = None
    late: bool = False
    acknowledged: bool = False
    route: Route = ()
    ref: int | None = None  # outgoing: the proposer's local name (ActionPropose.ref)

    def view(self, direction: Direction) -> ProposalView:
        return ProposalView(
            direction,
            self.msg_id,
            self.amount,
            self.unit,
            self.condition,
            self.expires_at_ms,
            self.status,
            self.preimage,
            self.reason,
            self.late,
            self.acknowledged,
            self.route,
            self.ref,
        )

    def to_propose(self) -> Propose:
        return Propose(
            self.msg_id, self.amount, self.unit, self.condition, self.expires_at_ms, self.route
        )

    def to_decision(self) -> Accept | Reject:
        assert self.status is not ProposalStatus.PENDING
        if self.status is ProposalStatus.ACCEPTED:
            return Accept(self.msg_id, self.preimage)
        assert self.reason is not None
        return Reject(self.msg_id, self.reason)


@dataclass(slots=True)
class ProposalList:
    """One direction's proposals: msgIds ``first_msg_id`` .. ``next_msg_id - 1``."""

    first_msg_id: int = 0
    next_msg_id: int = 0
    table: dict[int, Proposal] = field(default_factory=dict)  # in msgId order
    pending: dict[int, None] = field(default_factory=dict)  # in msgId order
    settled: deque[int] = field(default_factory=deque)  # kept settled msgIds, oldest first

    def is_empty(self) -> bool:
        return self.next_msg_id == self.first_msg_id

    def is_forgotten(self, msg_id: int) -> bool:
        used = self.first_msg_id <= msg_id < self.next_msg_id
        return used and msg_id not in self.table


@dataclass(slots=True)
class UnitSums:
    """The mutable counterpart of Totals, one per unit."""

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

    def freeze(self) -> Totals:
        return Totals(*(getattr(self, f.name) for f in fields(self)))

    def values(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(self)]


class LedgerState:
    """Everything a bilateral ledger knows, rebuilt exactly by replaying records."""

    def __init__(self, *, first_msg_id_free: bool, settled_kept_max: int) -> None:
        assert settled_kept_max > 0
        self.first_msg_id_free = first_msg_id_free
        self.settled_kept_max = settled_kept_max
        self.lists = {Direction.OUTGOING: ProposalList(), Direction.INCOMING: ProposalList()}
        self.sums: dict[str, UnitSums] = {}
        self.evidence: list[EvidenceKept] = []
        # Derived from the above (rebuilt after a snapshot), except the send times.
        self.outbox: OrderedDict[OutboxKey, int | None] = OrderedDict()
        self.incoming_pending_by_condition: dict[bytes, dict[int, None]] = {}
        self.incoming_expiries: list[tuple[int, int]] = []  # heap of (expires_at_ms, msg_id)
        self.outgoing_pending_by_ref: dict[int, int] = {}  # ref -> msgId

    # --- queries ---------------------------------------------------------------------

    def find(self, direction: Direction, msg_id: int) -> Proposal | None:
        return self.lists[direction].table.get(msg_id)

    def pending_count(self, direction: Direction) -> int:
        return len(self.lists[direction].pending)

    def unit_sums(self, unit: str) -> UnitSums:
        return self.sums.get(unit) or UnitSums()

    def message_for(self, key: OutboxKey) -> SnapMessage:
        direction, msg_id = key
        proposal = self.lists[direction].table[msg_id]
        if direction is Direction.OUTGOING:
            return proposal.to_propose()
        return proposal.to_decision()

    def take_expired(self, now_ms: int) -> list[int]:
        """The pending incoming proposals whose expiry has come, in expiry order. They
        leave the expiry heap: the caller must decide every one of them."""
        table = self.lists[Direction.INCOMING].table
        expired = []
        while self.incoming_expiries and self.incoming_expiries[0][0] <= now_ms:
            _, msg_id = heapq.heappop(self.incoming_expiries)
            proposal = table.get(msg_id)
            if proposal is not None and proposal.status is ProposalStatus.PENDING:
                expired.append(msg_id)
        return expired

    def mark_sent(self, key: OutboxKey, now_ms: int) -> None:
        """Volatile: the outbox stays ordered by last send, never-sent first."""
        self.outbox[key] = now_ms
        self.outbox.move_to_end(key)

    # --- the only mutator ----------------------------------------------------------

    def apply(self, record: Record) -> None:
        if isinstance(record, OutgoingProposed):
            self._add(Direction.OUTGOING, record)
        elif isinstance(record, IncomingProposed):
            self._add(Direction.INCOMING, record)
        elif isinstance(record, OutgoingDecided):
            self._decide(Direction.OUTGOING, record)
        elif isinstance(record, IncomingDecided):
            self._decide(Direction.INCOMING, record)
        elif isinstance(record, OutgoingProposeAcked):
            self._propose_acked(record.msg_id)
        elif isinstance(record, IncomingDecisionAcked):
            self._decision_acked(record.msg_id)
        else:
            assert isinstance(record, EvidenceKept)
            assert len(self.evidence) < EVIDENCE_PER_PEER_MAX, "evidence is bounded by the caller"
            self.evidence.append(record)

    def _add(self, direction: Direction, record: OutgoingProposed | IncomingProposed) -> None:
        proposals = self.lists[direction]
        if proposals.is_empty() and self.first_msg_id_free:
            proposals.first_msg_id = proposals.next_msg_id = record.msg_id
        assert record.msg_id == proposals.next_msg_id, "msgIds are gapless"
        proposals.next_msg_id += 1
        proposal = Proposal(
            record.msg_id,
            record.amount,
            record.unit,
            record.condition,
            record.expires_at_ms,
            route=record.route,
            ref=record.ref if isinstance(record, OutgoingProposed) else None,
        )
        self.index_proposal(direction, proposal)
        sums = self.sums.setdefault(record.unit, UnitSums())
        if direction is Direction.OUTGOING:
            sums.pending_out += record.amount
            sums.pending_out_count += 1
        else:
            sums.pending_in += record.amount
            sums.pending_in_count += 1

    def index_proposal(self, direction: Direction, proposal: Proposal) -> None:
        """Index a proposal in the table and the derived structures."""
        msg_id = proposal.msg_id
        self.lists[direction].table[msg_id] = proposal
        if proposal.status is ProposalStatus.PENDING:
            self.lists[direction].pending[msg_id] = None
            if direction is Direction.OUTGOING and not proposal.acknowledged:
                self._outbox_add((direction, msg_id))
            if direction is Direction.OUTGOING and proposal.ref is not None:
                self.outgoing_pending_by_ref[proposal.ref] = msg_id
            if direction is Direction.INCOMING and proposal.condition is not None:
                assert proposal.expires_at_ms is not None
                by_condition = self.incoming_pending_by_condition
                by_condition.setdefault(proposal.condition, {})[msg_id] = None
                heapq.heappush(self.incoming_expiries, (proposal.expires_at_ms, msg_id))
        elif direction is Direction.INCOMING and not proposal.acknowledged:
            self._outbox_add((direction, msg_id))

    def _outbox_add(self, key: OutboxKey) -> None:
        self.outbox[key] = None
        self.outbox.move_to_end(key, last=False)

    def _decide(self, direction: Direction, record: OutgoingDecided | IncomingDecided) -> None:
        proposals = self.lists[direction]
        msg_id, accepted, preimage = record.msg_id, record.accepted, record.preimage
        proposal = proposals.table.get(msg_id)
        assert proposal is not None, f"a decision of unknown {direction} msgId {msg_id}"
        assert proposal.status is ProposalStatus.PENDING, "a final proposal never changes"
        if accepted and proposal.condition is not None:
            assert preimage is not None and sha256(preimage) == proposal.condition
        else:
            assert preimage is None, "only a conditional acceptance carries a preimage"
        assert accepted == (record.reason is None), "a rejection, and only it, has a reason"
        proposal.status = ProposalStatus.ACCEPTED if accepted else ProposalStatus.REJECTED
        proposal.preimage, proposal.reason = preimage, record.reason
        proposal.late = isinstance(record, OutgoingDecided) and record.late
        del proposals.pending[msg_id]
        sums = self.sums[proposal.unit]
        if direction is Direction.OUTGOING:
            self._count_outgoing_final(sums, proposal.amount, accepted)
            proposal.acknowledged = True  # a decision acknowledges our PROPOSE
            if proposal.ref is not None:
                del self.outgoing_pending_by_ref[proposal.ref]
            self.outbox.pop((direction, msg_id), None)
            self._settle(direction, msg_id)
        else:
            self._count_incoming_final(sums, proposal.amount, accepted)
            if proposal.condition is not None:
                waiting = self.incoming_pending_by_condition[proposal.condition]
                del waiting[msg_id]
                if not waiting:
                    del self.incoming_pending_by_condition[proposal.condition]
                self._trim_expiries()
            self._outbox_add((direction, msg_id))

    def _trim_expiries(self) -> None:
        """Decided proposals leave the expiry heap lazily; rebuild it when they dominate,
        so it stays within twice the pending proposals (amortized constant time)."""
        pending = self.lists[Direction.INCOMING].pending
        if len(self.incoming_expiries) <= 2 * len(pending) + 64:
            return
        table = self.lists[Direction.INCOMING].table
        self.incoming_expiries = [
            (expires_at_ms, msg_id)
            for msg_id in pending
            if (expires_at_ms := table[msg_id].expires_at_ms) is not None
        ]
        heapq.heapify(self.incoming_expiries)

    @staticmethod
    def _count_outgoing_final(sums: UnitSums, amount: int, accepted: bool) -> None:
        sums.pending_out -= amount
        sums.pending_out_count -= 1
        if accepted:
            sums.accepted_out += amount
            sums.accepted_out_count += 1
        else:
            sums.rejected_out_count += 1

    @staticmethod
    def _count_incoming_final(sums: UnitSums, amount: int, accepted: bool) -> None:
        sums.pending_in -= amount
        sums.pending_in_count -= 1
        if accepted:
            sums.accepted_in += amount
            sums.accepted_in_count += 1
        else:
            sums.rejected_in_count += 1

    def _propose_acked(self, msg_id: int) -> None:
        proposal = self.lists[Direction.OUTGOING].table.get(msg_id)
        assert (
            proposal is not None
            and proposal.status is ProposalStatus.PENDING
            and not proposal.acknowledged
        )
        proposal.acknowledged = True
        del self.outbox[(Direction.OUTGOING, msg_id)]

    def _decision_acked(self, msg_id: int) -> None:
        proposal = self.lists[Direction.INCOMING].table.get(msg_id)
        assert (
            proposal is not None
            and proposal.status is not ProposalStatus.PENDING
            and not proposal.acknowledged
        )
        proposal.acknowledged = True
        del self.outbox[(Direction.INCOMING, msg_id)]
        self._settle(Direction.INCOMING, msg_id)

    def _settle(self, direction: Direction, msg_id: int) -> None:
        proposals = self.lists[direction]
        proposals.settled.append(msg_id)
        while len(proposals.settled) > self.settled_kept_max:
            del proposals.table[proposals.settled.popleft()]
