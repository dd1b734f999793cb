"""The SNAP bilateral ledger with one trusted peer, seen from our side.

Theory of operation:
- One ledger per trusted peer covers every unit. It holds two append-only lists
  of proposals: outgoing (ours, msgIds we assign: 0, 1, 2, ...) and incoming
  (the peer's, each msgId exactly the next expected). A proposal is pending,
  then accepted or rejected, and never changes after that.
- Balances follow the SNAP table, proposer P and decider D. PROPOSE:
  P.current -= amount, P.payable += amount, D.receivable += amount. ACCEPT:
  D.current += amount, P.payable -= amount, D.receivable -= amount. REJECT:
  P.current += amount, P.payable -= amount, D.receivable -= amount. So four
  sums per unit (accepted_in, accepted_out, pending_in, pending_out) give all
  six balances (``Totals.balances``).
- A sender repeats PROPOSE/ACCEPT/REJECT with identical content until the ACK
  for it; a decision also acknowledges the PROPOSE it answers. A repeat gets
  the same answer as the first time, and never a second effect.
- State changes only by ``apply(record)``. ``handle`` decides (credit limit,
  preimage, expiry) once, live, emits the records of its decisions and
  applies them; recovery applies the same records and never re-decides.
- ``handle`` returns effects in order: every PersistRecord comes before the one
  SendMessages of the call, and the shell makes the records durable before it
  releases the messages. Refused input yields NotifyRefused and no record
  (except EvidenceKept for a contradiction or a late ACCEPT).
- An incoming PROPOSE with the next msgId is recorded, then decided at once:
  rejected for an unknown unit, a credit limit (our current + receivable +
  amount above the limit we extend), an expiry passed or too far ahead, or too
  many pending; else accepted when unconditional, or conditional with a
  preimage we hold (``preimage_lookup``); else it waits (ACK PROPOSE) for
  ActionLearnPreimage, ActionDecide or its expiry. Nothing is accepted at or
  after its expiresAt.
- A conditional PROPOSE may carry a ``route`` (a multi-hop payment: the hops
  after the decider). It is part of the proposal's content: kept in the
  records, the snapshot and ``to_propose()``, so a repeat must carry the same
  route or it is a contradiction. A routed conditional is never accepted by
  the ledger itself (neither through ``preimage_lookup`` nor
  ActionLearnPreimage): it is announced by NotifyIncomingConditional when it
  is recorded and left pending, and only ActionDecide (the payment core) or
  its expiry decides it. An unrouted pending conditional is announced the
  same way.
- ActionPropose may carry a ``ref``, the proposer's local name for the
  transfer (the payment core's outgoing ref); it never goes on the wire. It
  is kept in the outgoing proposal and echoed in that proposal's NotifyFinal;
  an ActionPropose whose ref is already held pending is a no-op answered with
  NotifyProposed of the held msgId (a replayed effect never proposes twice).
- An ACCEPT of ours is applied even when it arrives after expiresAt plus the
  allowed clock skew (the decider decides), but marked ``late`` and kept as
  evidence for an out-of-band dispute.
- The preimages the node holds are looked up through ``preimage_lookup``
  (condition -> preimage or None), called only while deciding a new PROPOSE;
  the preimage it gives is recorded, so replay never calls it again.
- Retransmission: the time each unacknowledged message was last sent is
  volatile; TimerTick repeats those sent RETRANSMIT_INTERVAL_MS ago or more (at
  most RETRANSMIT_BATCH_MAX per tick), PeerConnected repeats all of them.
- Pure: time is the ``now_ms`` argument; no I/O, no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from node.limits import (
    AMOUNT_MAX,
    CLOCK_SKEW_MS_MAX,
    EVIDENCE_PER_PEER_MAX,
    EXPIRY_IN_FUTURE_MS_MAX,
    FINAL_PROPOSALS_KEPT_PER_DIRECTION_MAX,
    FRAME_BYTES_MAX,
    HASH_BYTES,
    OUTBOX_MESSAGES_PER_PEER_MAX,
    PENDING_PROPOSALS_PER_PEER_MAX,
    REASON_LENGTH_MAX,
    RETRANSMIT_BATCH_MAX,
    RETRANSMIT_INTERVAL_MS,
)
from node.signatures import sha256
from node.snap.events import (
    ActionDecide,
    ActionLearnPreimage,
    ActionPropose,
    Balances,
    Direction,
    Effect,
    Input,
    NotifyFinal,
    NotifyIncomingConditional,
    NotifyProposed,
    NotifyRefused,
    PeerConnected,
    PersistRecord,
    ProposalStatus,
    ProposalView,
    ReceiveMessages,
    Refusal,
    RejectReason,
    SendMessages,
    TimerTick,
    Totals,
)
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
from node.snap.snapshot import state_from_snapshot, state_to_snapshot
from node.snap.state import LedgerState, OutboxKey, Proposal
from node.wire import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    Accept,
    Ack,
    MsgType,
    Propose,
    Reject,
    SnapMessage,
    snap_to_json,
    valid_unit,
)

PreimageLookup = Callable[[bytes], bytes | None]
"""condition -> the preimage the node holds for it, or None. Must be pure."""

_RefusalDetail = tuple[Refusal, str]


def _checked_units(units: Mapping[str, int | None]) -> dict[str, int | None]:
    """The config layer validates units and limits; here they are facts."""
    for unit, limit in units.items():
        assert valid_unit(unit), f"unit {unit!r}"
        assert limit is None or (type(limit) is int and limit >= 0), f"limit of {unit!r}"
    return dict(units)


def _outbox_key(message: SnapMessage) -> OutboxKey | None:
    if isinstance(message, Propose):
        return (Direction.OUTGOING, message.msg_id)
    if isinstance(message, Accept | Reject):
        return (Direction.INCOMING, message.msg_id)
    return None


def _decision_kind(proposal: Proposal) -> MsgType | None:
    """The message type of our decision on an incoming proposal, None while pending."""
    if proposal.status is ProposalStatus.PENDING:
        return None
    return MsgType.ACCEPT if proposal.status is ProposalStatus.ACCEPTED else MsgType.REJECT


def _preimage_problem(proposal: Proposal, preimage: bytes | None) -> _RefusalDetail | None:
    if proposal.condition is None:
        if preimage is not None:
            return Refusal.UNEXPECTED_PREIMAGE, f"msgId {proposal.msg_id} is unconditional"
        return None
    if type(preimage) is not bytes or len(preimage) != HASH_BYTES:
        return Refusal.WRONG_PREIMAGE, f"a preimage is {HASH_BYTES} bytes"
    if sha256(preimage) != proposal.condition:
        return Refusal.WRONG_PREIMAGE, f"not the preimage of msgId {proposal.msg_id}'s condition"
    return None


class _Pass:
    """The effects of one call of ``handle``: records (applied at once) and
    notifications in order, then the messages to send, deduplicated, last."""

    def __init__(self, state: LedgerState, now_ms: int) -> None:
        self.state = state
        self.now_ms = now_ms
        self.effects: list[Effect] = []
        self.sends: dict[SnapMessage, None] = {}

    def record(self, record: Record) -> None:
        self.state.apply(record)
        self.effects.append(PersistRecord(record))

    def send(self, message: SnapMessage) -> None:
        self.sends[message] = None
        key = _outbox_key(message)
        if key is not None and key in self.state.outbox:
            self.state.mark_sent(key, self.now_ms)

    def notify(self, effect: NotifyFinal | NotifyProposed | NotifyIncomingConditional) -> None:
        self.effects.append(effect)

    def refuse(self, refusal: _RefusalDetail, message: SnapMessage | None = None) -> None:
        reason, detail = refusal
        as_json = None if message is None else snap_to_json(message)
        self.effects.append(NotifyRefused(str(reason), detail, as_json))

    def finish(self) -> list[Effect]:
        if self.sends:
            self.effects.append(SendMessages(tuple(self.sends)))
        return self.effects


class BilateralLedger:
    """The bilateral ledger with one peer. See the module's rules."""

    def __init__(
        self,
        units: Mapping[str, int | None],
        *,
        unknown_units_allowed: bool = False,
        auto_decide: bool = True,
        preimage_lookup: PreimageLookup | None = None,
        first_msg_id_free: bool = False,
        settled_kept_max: int = FINAL_PROPOSALS_KEPT_PER_DIRECTION_MAX,
    ) -> None:
        """``units``: unit -> the credit limit we extend to the peer (None: unlimited).
        ``unknown_units_allowed``: other units are accepted without a limit.
        ``auto_decide``: accept what the policy allows; off, only rejections are
        automatic. ``first_msg_id_free``: the first proposal of each list may have
        any msgId (transcripts). ``settled_kept_max``: settled proposals kept per list."""
        self._units = _checked_units(units)
        self._unknown_units_allowed = unknown_units_allowed
        self._auto_decide = auto_decide
        self._preimage_lookup = preimage_lookup
        self._first_msg_id_free = first_msg_id_free
        self._state = LedgerState(
            first_msg_id_free=first_msg_id_free, settled_kept_max=settled_kept_max
        )

    @classmethod
    def from_snapshot(
        cls,
        obj: object,
        units: Mapping[str, int | None],
        *,
        unknown_units_allowed: bool = False,
        auto_decide: bool = True,
        preimage_lookup: PreimageLookup | None = None,
        first_msg_id_free: bool = False,
        settled_kept_max: int = FINAL_PROPOSALS_KEPT_PER_DIRECTION_MAX,
    ) -> BilateralLedger:
        """Restore ``to_snapshot`` output. Raises DecodeError if it is not one."""
        ledger = cls(
            units,
            unknown_units_allowed=unknown_units_allowed,
            auto_decide=auto_decide,
            preimage_lookup=preimage_lookup,
            first_msg_id_free=first_msg_id_free,
            settled_kept_max=settled_kept_max,
        )
        ledger._state = state_from_snapshot(
            obj, first_msg_id_free=first_msg_id_free, settled_kept_max=settled_kept_max
        )
        return ledger

    def to_snapshot(self) -> dict[str, Any]:
        return state_to_snapshot(self._state)

    def set_units(self, units: Mapping[str, int | None]) -> None:
        """A config reload: changes future decisions only."""
        self._units = _checked_units(units)

    def apply(self, record: Record) -> None:
        """The only way the state changes (``handle`` calls it for what it emits)."""
        self._state.apply(record)

    # --- queries -----------------------------------------------------------------

    def _units_seen(self) -> list[str]:
        return list(self._units) + [unit for unit in self._state.sums if unit not in self._units]

    def totals(self) -> dict[str, Totals]:
        return {unit: self._state.unit_sums(unit).freeze() for unit in self._units_seen()}

    def balances(self) -> dict[str, Balances]:
        return {unit: totals.balances() for unit, totals in self.totals().items()}

    def proposal(self, direction: Direction, msg_id: int) -> ProposalView | None:
        """The proposal, or None if it never existed or is settled and forgotten."""
        proposal = self._state.find(direction, msg_id)
        return None if proposal is None else proposal.view(direction)

    def proposals(self, direction: Direction) -> list[ProposalView]:
        """Every proposal still held (not forgotten), in msgId order."""
        return [p.view(direction) for p in self._state.lists[direction].table.values()]

    def next_msg_id(self, direction: Direction) -> int:
        return self._state.lists[direction].next_msg_id

    def pending_count(self) -> int:
        return sum(self._state.pending_count(direction) for direction in Direction)

    def unacked_count(self) -> int:
        """Our messages awaiting an ACK: the retransmit queue's depth."""
        return len(self._state.outbox)

    def tick_due(self, now_ms: int) -> bool:
        """Would a TimerTick now do anything: a proposal to expire or a message to repeat.
        The outbox is ordered never-sent first, then by last send, so its first entry
        says; a False answer lets the shell skip the tick (ten a second per ledger)."""
        state = self._state
        expiries = state.incoming_expiries
        if expiries and expiries[0][0] <= now_ms:
            return True
        for sent_at_ms in state.outbox.values():
            return sent_at_ms is None or now_ms - sent_at_ms >= RETRANSMIT_INTERVAL_MS
        return False

    def evidence(self) -> list[EvidenceKept]:
        return list(self._state.evidence)

    # --- inputs ------------------------------------------------------------------

    def handle(self, input: Input, now_ms: int) -> list[Effect]:
        """Decide, record and apply; return the effects in order."""
        run = _Pass(self._state, now_ms)
        if isinstance(input, ReceiveMessages):
            assert len(input.frame_raw) <= FRAME_BYTES_MAX, "the shell bounds frames"
            for message in input.messages:
                self._receive(run, message, input.frame_raw)
        elif isinstance(input, ActionPropose):
            self._propose(run, input)
        elif isinstance(input, ActionDecide):
            self._decide_by_hand(run, input)
        elif isinstance(input, ActionLearnPreimage):
            self._learn_preimage(run, input.preimage)
        elif isinstance(input, TimerTick):
            self._expire(run)
            self._retransmit_due(run)
        else:
            assert isinstance(input, PeerConnected)
            self._repeat(run, list(self._state.outbox))
        return run.finish()

    def _receive(self, run: _Pass, message: SnapMessage, frame_raw: bytes) -> None:
        if isinstance(message, Propose):
            self._on_propose(run, message, frame_raw)
        elif isinstance(message, Accept):
            self._on_accept(run, message, frame_raw)
        elif isinstance(message, Reject):
            self._on_reject(run, message, frame_raw)
        else:
            self._on_ack(run, message)

    # --- the peer's proposals ----------------------------------------------------

    def _on_propose(self, run: _Pass, message: Propose, frame_raw: bytes) -> None:
        proposals = self._state.lists[Direction.INCOMING]
        msg_id = message.msg_id
        starts = proposals.is_empty() and self._first_msg_id_free
        if msg_id == proposals.next_msg_id or starts:
            self._on_new_propose(run, message)
            return
        if msg_id > proposals.next_msg_id:
            expected = proposals.next_msg_id
            run.refuse((Refusal.OUT_OF_ORDER, f"msgId {msg_id}, expected {expected}"), message)
            return
        proposal = proposals.table.get(msg_id)
        if proposal is None:
            run.refuse((Refusal.STALE, f"msgId {msg_id} is settled and forgotten"), message)
        elif proposal.to_propose() != message:
            self._contradiction(run, message, frame_raw, f"PROPOSE {msg_id} differs")
        elif proposal.status is not ProposalStatus.PENDING:
            run.send(proposal.to_decision())
        elif self._auto_decide and message.condition is None:
            # An unconditional proposal is decided in the pass that records it, so a
            # pending one means a crash kept its record and lost the decision's (a
            # torn write). Nothing about it left the node: decide now.
            rejection = self._policy_rejection(message, run.now_ms, counted=True)
            if rejection is None:
                self._decide(run, msg_id, True, None, None)
            else:
                self._decide(run, msg_id, False, None, str(rejection))
        else:
            run.send(Ack(msg_id, MsgType.PROPOSE))

    def _on_new_propose(self, run: _Pass, message: Propose) -> None:
        if len(self._state.outbox) >= OUTBOX_MESSAGES_PER_PEER_MAX:
            run.refuse((Refusal.OUTBOX_FULL, "too many unacknowledged messages"), message)
            return
        rejection = self._policy_rejection(message, run.now_ms)
        msg_id = message.msg_id
        run.record(
            IncomingProposed(
                msg_id,
                message.amount,
                message.unit,
                message.condition,
                message.expires_at_ms,
                message.route,
            )
        )
        if rejection is not None:
            self._decide(run, msg_id, False, None, str(rejection))
            return
        if message.condition is None:
            if self._auto_decide:
                self._decide(run, msg_id, True, None, None)
            else:
                run.send(Ack(msg_id, MsgType.PROPOSE))
            return
        # A routed (payment) conditional is the payment core's alone to decide.
        preimage = None if message.route else self._known_preimage(message.condition)
        if self._auto_decide and preimage is not None:
            self._decide(run, msg_id, True, preimage, None)
            return
        run.send(Ack(msg_id, MsgType.PROPOSE))
        assert message.expires_at_ms is not None
        run.notify(
            NotifyIncomingConditional(
                msg_id,
                message.amount,
                message.unit,
                message.condition,
                message.expires_at_ms,
                message.route,
            )
        )

    def _policy_rejection(
        self, message: Propose, now_ms: int, *, counted: bool = False
    ) -> RejectReason | None:
        """Why the node rejects this PROPOSE on its own, if it does. ``counted``: the
        proposal is already recorded (pending), so its amount is in our receivable."""
        if message.unit not in self._units and not self._unknown_units_allowed:
            return RejectReason.UNKNOWN_UNIT
        limit = self._units.get(message.unit)
        if limit is not None:
            ours = self._state.unit_sums(message.unit).freeze().balances().ours
            counted_amount = message.amount if counted else 0
            if ours.current + ours.receivable - counted_amount + message.amount > limit:
                return RejectReason.CREDIT_LIMIT
        if message.expires_at_ms is not None:
            if message.expires_at_ms <= now_ms:
                return RejectReason.EXPIRED
            if message.expires_at_ms > now_ms + EXPIRY_IN_FUTURE_MS_MAX:
                return RejectReason.EXPIRY_TOO_FAR
        pending = self._state.pending_count(Direction.INCOMING) - (1 if counted else 0)
        if pending >= PENDING_PROPOSALS_PER_PEER_MAX:
            return RejectReason.TOO_MANY_PENDING
        return None

    def _known_preimage(self, condition: bytes) -> bytes | None:
        if self._preimage_lookup is None:
            return None
        preimage = self._preimage_lookup(condition)
        assert preimage is None or sha256(preimage) == condition, "lookup gave a wrong preimage"
        return preimage

    def _decide(
        self, run: _Pass, msg_id: int, accepted: bool, preimage: bytes | None, reason: str | None
    ) -> None:
        record = IncomingDecided(msg_id, accepted, preimage, reason, run.now_ms)
        run.record(record)
        run.send(record.to_message())
        run.notify(NotifyFinal(Direction.INCOMING, msg_id, accepted, preimage, reason))

    def _notify_outgoing_final(self, run: _Pass, record: OutgoingDecided) -> None:
        proposal = self._state.lists[Direction.OUTGOING].table[record.msg_id]
        run.notify(
            NotifyFinal(
                Direction.OUTGOING,
                record.msg_id,
                record.accepted,
                record.preimage,
                record.reason,
                proposal.ref,
            )
        )

    # --- the peer's decisions on our proposals -------------------------------------

    def _decision_target(self, run: _Pass, message: Accept | Reject) -> Proposal | None:
        """Our proposal that ``message`` decides, or None when it is already answered."""
        proposals = self._state.lists[Direction.OUTGOING]
        if proposals.is_forgotten(message.msg_id):
            kind = MsgType.ACCEPT if isinstance(message, Accept) else MsgType.REJECT
            run.send(Ack(message.msg_id, kind))  # settled long ago: our ACK was lost
            return None
        proposal = proposals.table.get(message.msg_id)
        if proposal is None:
            run.refuse((Refusal.UNKNOWN_MSGID, f"no proposal {message.msg_id} of ours"), message)
        return proposal

    def _on_accept(self, run: _Pass, message: Accept, frame_raw: bytes) -> None:
        proposal = self._decision_target(run, message)
        if proposal is None:
            return
        problem = _preimage_problem(proposal, message.preimage)
        if problem is not None:
            run.refuse(problem, message)
        elif proposal.status is ProposalStatus.ACCEPTED:
            run.send(Ack(message.msg_id, MsgType.ACCEPT))
        elif proposal.status is ProposalStatus.REJECTED:
            self._contradiction(run, message, frame_raw, f"ACCEPT of rejected {message.msg_id}")
        else:
            expires_at_ms = proposal.expires_at_ms
            late = expires_at_ms is not None and run.now_ms > expires_at_ms + CLOCK_SKEW_MS_MAX
            record = OutgoingDecided(message.msg_id, True, message.preimage, None, late, run.now_ms)
            run.record(record)
            if late:
                self._keep_evidence(run, "late-accept", message, frame_raw)
            run.send(Ack(message.msg_id, MsgType.ACCEPT))
            self._notify_outgoing_final(run, record)

    def _on_reject(self, run: _Pass, message: Reject, frame_raw: bytes) -> None:
        proposal = self._decision_target(run, message)
        if proposal is None:
            return
        if proposal.status is ProposalStatus.PENDING:
            record = OutgoingDecided(message.msg_id, False, None, message.reason, False, run.now_ms)
            run.record(record)
            run.send(Ack(message.msg_id, MsgType.REJECT))
            self._notify_outgoing_final(run, record)
        elif proposal.status is ProposalStatus.REJECTED and proposal.reason == message.reason:
            run.send(Ack(message.msg_id, MsgType.REJECT))
        else:
            self._contradiction(run, message, frame_raw, f"REJECT {message.msg_id} differs")

    def _on_ack(self, run: _Pass, message: Ack) -> None:
        direction = Direction.OUTGOING if message.ack_of is MsgType.PROPOSE else Direction.INCOMING
        proposals = self._state.lists[direction]
        if proposals.is_forgotten(message.msg_id):
            return  # a late duplicate of an ACK we already applied
        proposal = proposals.table.get(message.msg_id)
        if proposal is None:
            run.refuse((Refusal.UNKNOWN_MSGID, f"no {direction} msgId {message.msg_id}"), message)
        elif direction is Direction.OUTGOING:
            if proposal.status is ProposalStatus.PENDING and not proposal.acknowledged:
                run.record(OutgoingProposeAcked(message.msg_id))
        elif _decision_kind(proposal) is not message.ack_of:
            run.refuse((Refusal.UNEXPECTED_ACK, f"we sent no {message.ack_of}"), message)
        elif not proposal.acknowledged:
            run.record(IncomingDecisionAcked(message.msg_id))

    def _contradiction(
        self, run: _Pass, message: SnapMessage, frame_raw: bytes, detail: str
    ) -> None:
        run.refuse((Refusal.CONTRADICTION, detail), message)
        self._keep_evidence(run, "contradiction", message, frame_raw)

    def _keep_evidence(
        self, run: _Pass, reason: str, message: SnapMessage, frame_raw: bytes
    ) -> None:
        if len(self._state.evidence) < EVIDENCE_PER_PEER_MAX:
            run.record(EvidenceKept(reason, snap_to_json(message), frame_raw, run.now_ms))

    # --- actions -------------------------------------------------------------------

    def _propose(self, run: _Pass, action: ActionPropose) -> None:
        held = None if action.ref is None else self._state.outgoing_pending_by_ref.get(action.ref)
        if held is not None:
            run.notify(NotifyProposed(held))  # the same ref again: already proposed
            return
        refusal = self._content_refusal(action, run.now_ms) or self._capacity_refusal(action)
        if refusal is not None:
            run.refuse(refusal)
            return
        proposals = self._state.lists[Direction.OUTGOING]
        msg_id = proposals.next_msg_id if action.msg_id is None else action.msg_id
        record = OutgoingProposed(
            msg_id,
            action.amount,
            action.unit,
            action.condition,
            action.expires_at_ms,
            action.route,
            action.ref,
        )
        run.record(record)
        run.send(record.to_message())
        run.notify(NotifyProposed(msg_id))

    def _content_refusal(self, action: ActionPropose, now_ms: int) -> _RefusalDetail | None:
        if type(action.amount) is not int or not 0 < action.amount <= AMOUNT_MAX:
            return Refusal.BAD_AMOUNT, f"amount must be 1..{AMOUNT_MAX}"
        if type(action.unit) is not str or not valid_unit(action.unit):
            return Refusal.BAD_UNIT, f"unit {action.unit!r} is not like '1E-2 USD'"
        if action.unit not in self._units and not self._unknown_units_allowed:
            return Refusal.UNKNOWN_UNIT, f"no credit line in {action.unit!r} with this peer"
        condition, expires_at_ms = action.condition, action.expires_at_ms
        if (condition is None) != (expires_at_ms is None):
            return Refusal.BAD_CONDITION, "a condition and an expiry come together"
        if condition is not None and (type(condition) is not bytes or len(condition) != HASH_BYTES):
            return Refusal.BAD_CONDITION, f"a condition is {HASH_BYTES} bytes"
        if action.route and condition is None:
            return Refusal.BAD_CONDITION, "a route comes only with a condition"
        if expires_at_ms is not None:
            if type(expires_at_ms) is not int or not now_ms < expires_at_ms <= TIME_MS_MAX:
                return Refusal.EXPIRED, "the expiry must be in the future"
            if expires_at_ms > now_ms + EXPIRY_IN_FUTURE_MS_MAX:
                return Refusal.EXPIRY_TOO_FAR, f"at most {EXPIRY_IN_FUTURE_MS_MAX} ms ahead"
        return None

    def _capacity_refusal(self, action: ActionPropose) -> _RefusalDetail | None:
        proposals = self._state.lists[Direction.OUTGOING]
        starts = proposals.is_empty() and self._first_msg_id_free
        if action.msg_id is not None and type(action.msg_id) is not int:
            return Refusal.BAD_MSG_ID, "a msgId is an integer"
        if action.msg_id is not None and not (
            action.msg_id == proposals.next_msg_id or (starts and action.msg_id >= 0)
        ):
            return Refusal.BAD_MSG_ID, f"the next msgId is {proposals.next_msg_id}"
        msg_id = proposals.next_msg_id if action.msg_id is None else action.msg_id
        if msg_id > MSG_ID_MAX:
            return Refusal.BAD_MSG_ID, "msgIds are exhausted"
        if self._state.pending_count(Direction.OUTGOING) >= PENDING_PROPOSALS_PER_PEER_MAX:
            return Refusal.TOO_MANY_PENDING, f"{PENDING_PROPOSALS_PER_PEER_MAX} are pending"
        if len(self._state.outbox) >= OUTBOX_MESSAGES_PER_PEER_MAX:
            return Refusal.OUTBOX_FULL, "too many unacknowledged messages"
        return None

    def _decide_by_hand(self, run: _Pass, action: ActionDecide) -> None:
        proposal = self._state.find(Direction.INCOMING, action.msg_id)
        if proposal is None:
            run.refuse((Refusal.UNKNOWN_MSGID, f"no pending proposal {action.msg_id}"))
        elif proposal.status is not ProposalStatus.PENDING:
            run.refuse((Refusal.NOT_PENDING, f"proposal {action.msg_id} is {proposal.status}"))
        elif action.accept:
            problem = _preimage_problem(proposal, action.preimage)
            expires_at_ms = proposal.expires_at_ms
            if problem is not None:
                run.refuse(problem)
            elif expires_at_ms is not None and run.now_ms >= expires_at_ms:
                run.refuse((Refusal.EXPIRED, f"proposal {action.msg_id} has expired"))
            else:
                self._decide(run, action.msg_id, True, action.preimage, None)
        elif type(action.reason) is not str or len(action.reason) > REASON_LENGTH_MAX:
            run.refuse((Refusal.BAD_REASON, f"a reason is at most {REASON_LENGTH_MAX} long"))
        else:
            self._decide(run, action.msg_id, False, None, action.reason)

    def _learn_preimage(self, run: _Pass, preimage: bytes) -> None:
        if type(preimage) is not bytes or len(preimage) != HASH_BYTES:
            run.refuse((Refusal.BAD_PREIMAGE, f"a preimage is {HASH_BYTES} bytes"))
            return
        waiting = self._state.incoming_pending_by_condition.get(sha256(preimage), {})
        for msg_id in list(waiting):
            proposal = self._state.lists[Direction.INCOMING].table[msg_id]
            assert proposal.expires_at_ms is not None
            if run.now_ms < proposal.expires_at_ms and not proposal.route:
                self._decide(run, msg_id, True, preimage, None)

    # --- time ----------------------------------------------------------------------

    def _expire(self, run: _Pass) -> None:
        for msg_id in self._state.take_expired(run.now_ms):
            self._decide(run, msg_id, False, None, str(RejectReason.EXPIRED))

    def _retransmit_due(self, run: _Pass) -> None:
        due: list[OutboxKey] = []
        for key, sent_at_ms in self._state.outbox.items():  # never sent first, then oldest
            if len(due) >= RETRANSMIT_BATCH_MAX:
                break
            if sent_at_ms is not None and run.now_ms - sent_at_ms < RETRANSMIT_INTERVAL_MS:
                break
            due.append(key)
        due_proposals = [msg_id for direction, msg_id in due if direction is Direction.OUTGOING]
        if due_proposals:
            # The peer takes PROPOSEs only in msgId order: once the oldest missing one
            # is due, the ones after it are repeated with it, so a backlog left by a
            # silent one-way cut drains in one round instead of one msgId per second.
            lowest, chosen = min(due_proposals), set(due)
            for key in self._state.outbox:
                if len(due) >= RETRANSMIT_BATCH_MAX:
                    break
                direction, msg_id = key
                if direction is Direction.OUTGOING and msg_id > lowest and key not in chosen:
                    due.append(key)
        self._repeat(run, due)

    def _repeat(self, run: _Pass, keys: list[OutboxKey]) -> None:
        """Repeat in msgId order, so the peer can take a run of PROPOSEs in one pass."""
        for key in sorted(keys):
            run.send(self._state.message_for(key))
