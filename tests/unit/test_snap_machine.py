"""Two ledgers over a lossy, duplicating, reordering network, with crashes.

A and B propose to each other (unconditional, conditional with a preimage the
receiver holds or learns later, expiring), messages are lost, repeated and
reordered, time jumps, and either side crashes and is rebuilt from its log
(all records, or a snapshot plus the records after it). Invariants:
- records and snapshots rebuild the state exactly;
- a final proposal never changes; every PersistRecord precedes the sends;
- nobody believes the other accepted or rejected more than it did;
- once the network heals and expiries pass, everything is decided, nothing
  awaits an ACK, and both views of every balance agree (value is conserved).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from node.limits import CLOCK_SKEW_MS_MAX, RETRANSMIT_INTERVAL_MS
from node.signatures import sha256
from node.snap import (
    ActionDecide,
    ActionLearnPreimage,
    ActionPropose,
    BilateralLedger,
    Direction,
    IncomingDecided,
    Input,
    NotifyFinal,
    NotifyRefused,
    OutgoingDecided,
    PeerConnected,
    PersistRecord,
    ProposalStatus,
    ReceiveMessages,
    Record,
    SendMessages,
    TimerTick,
    Totals,
    record_from_wire,
)
from node.wire import SnapMessage
from tests.unit.test_snap_support import EUR, NOW_MS, USD, check_order, through_msgpack

BTC = "1E-8 BTC"
UNITS = {"A": {USD: 1_000, EUR: None, BTC: None}, "B": {USD: 500, EUR: None}}
SETTLED_KEPT_MAX = 3
PARTY = st.sampled_from("AB")


def other(party: str) -> str:
    return "B" if party == "A" else "A"


@dataclass
class Party:
    name: str
    invoices: dict[bytes, bytes]  # condition -> preimage this party holds
    ledger: BilateralLedger = field(init=False)
    log: list[Record] = field(default_factory=list)
    snapshot: tuple[object, int] | None = None  # (snapshot, records it covers)
    finals: dict[tuple[Direction, int], tuple[str, bytes | None, str | None]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self.ledger = self.new_ledger()

    def new_ledger(self) -> BilateralLedger:
        return BilateralLedger(
            UNITS[self.name],
            preimage_lookup=self.invoices.get,
            settled_kept_max=SETTLED_KEPT_MAX,
        )


class SnapPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now_ms = NOW_MS
        self.parties = {name: Party(name, {}) for name in "AB"}
        self.in_flight: dict[str, list[tuple[SnapMessage, ...]]] = {"A": [], "B": []}
        self.secrets: list[bytes] = []
        self.last_expiry_ms = NOW_MS

    def handle(self, name: str, input: Input) -> None:
        party = self.parties[name]
        effects = party.ledger.handle(input, self.now_ms)
        check_order(effects)
        for effect in effects:
            if isinstance(effect, PersistRecord):
                party.log.append(effect.record)
                event(type(effect.record).__name__)
                self.check_on_time(party.ledger, effect.record)
            elif isinstance(effect, NotifyRefused):
                event(f"refused {effect.reason}")
            elif isinstance(effect, SendMessages):
                self.in_flight[other(name)].append(effect.messages)
            elif isinstance(effect, NotifyFinal):
                key = (effect.direction, effect.msg_id)
                assert key not in party.finals, "a proposal became final twice"

    @staticmethod
    def check_on_time(ledger: BilateralLedger, record: Record) -> None:
        """Nothing is accepted at or after its expiresAt."""
        if isinstance(record, IncomingDecided) and record.accepted:
            view = ledger.proposal(Direction.INCOMING, record.msg_id)
            assert view is not None
            assert view.expires_at_ms is None or record.decided_at_ms < view.expires_at_ms
        if isinstance(record, OutgoingDecided) and record.late:
            event("late accept")

    # --- what happens ------------------------------------------------------------

    @rule(
        sender=PARTY,
        amount=st.integers(1, 400),
        unit=st.sampled_from([USD, EUR, BTC]),
        kind=st.sampled_from(["plain", "known", "unknown"]),
        expiry_ms=st.integers(1, 20_000),
        count=st.integers(1, 3),
    )
    def propose(
        self, sender: str, amount: int, unit: str, kind: str, expiry_ms: int, count: int
    ) -> None:
        for _ in range(count if unit in UNITS[sender] else 0):
            self.propose_one(sender, amount, unit, kind, expiry_ms)

    def propose_one(self, sender: str, amount: int, unit: str, kind: str, expiry_ms: int) -> None:
        condition = expires_at_ms = None
        if kind != "plain":
            preimage = sha256(b"secret %d" % len(self.secrets))
            self.secrets.append(preimage)
            condition, expires_at_ms = sha256(preimage), self.now_ms + expiry_ms
            self.last_expiry_ms = max(self.last_expiry_ms, expires_at_ms)
            if kind == "known":
                self.parties[other(sender)].invoices[condition] = preimage
        self.handle(sender, ActionPropose(amount, unit, condition, expires_at_ms))

    @rule(to=PARTY, index=st.integers(0, 100), duplicate=st.booleans())
    def deliver(self, to: str, index: int, duplicate: bool) -> None:
        queue = self.in_flight[to]
        if queue:
            position = index % len(queue)
            messages = queue[position] if duplicate else queue.pop(position)
            self.handle(to, ReceiveMessages(messages, b"frame"))

    @rule(to=PARTY)
    def deliver_all(self, to: str) -> None:
        while self.in_flight[to]:
            self.handle(to, ReceiveMessages(self.in_flight[to].pop(0), b"frame"))

    @rule(to=PARTY, index=st.integers(0, 100))
    def lose(self, to: str, index: int) -> None:
        if self.in_flight[to]:
            self.in_flight[to].pop(index % len(self.in_flight[to]))

    @rule(elapsed_ms=st.integers(0, 6_000))
    def tick(self, elapsed_ms: int) -> None:
        self.now_ms += elapsed_ms
        for name in "AB":
            self.handle(name, TimerTick())

    @rule(name=PARTY)
    def reconnect(self, name: str) -> None:
        self.handle(name, PeerConnected())

    @rule(name=PARTY, index=st.integers(0, 100))
    def learn_preimage(self, name: str, index: int) -> None:
        if self.secrets:
            preimage = self.secrets[index % len(self.secrets)]
            self.parties[name].invoices[sha256(preimage)] = preimage
            self.handle(name, ActionLearnPreimage(preimage))

    @rule(name=PARTY, index=st.integers(0, 100))
    def reject_by_hand(self, name: str, index: int) -> None:
        pending = [
            view
            for view in self.parties[name].ledger.proposals(Direction.INCOMING)
            if view.status is ProposalStatus.PENDING
        ]
        if pending:
            msg_id = pending[index % len(pending)].msg_id
            self.handle(name, ActionDecide(msg_id, False, None, "by hand"))

    @rule(name=PARTY)
    def take_snapshot(self, name: str) -> None:
        party = self.parties[name]
        party.snapshot = (through_msgpack(party.ledger.to_snapshot()), len(party.log))

    @rule(name=PARTY, from_snapshot=st.booleans())
    def crash(self, name: str, from_snapshot: bool) -> None:
        """Lose every volatile thing; rebuild from the durable log."""
        party = self.parties[name]
        if from_snapshot and party.snapshot is not None:
            snapshot, covered = party.snapshot
            ledger = BilateralLedger.from_snapshot(
                snapshot,
                UNITS[name],
                preimage_lookup=party.invoices.get,
                settled_kept_max=SETTLED_KEPT_MAX,
            )
        else:
            ledger, covered = party.new_ledger(), 0
        for record in party.log[covered:]:
            ledger.apply(record_from_wire(through_msgpack(record.to_wire())))
        assert ledger.to_snapshot() == party.ledger.to_snapshot()
        assert ledger.balances() == party.ledger.balances()
        party.ledger = ledger

    @rule()
    def heal_and_settle(self) -> None:
        """A fault-free network after every expiry: everything resolves and agrees."""
        self.now_ms = max(self.now_ms, self.last_expiry_ms + CLOCK_SKEW_MS_MAX)
        for _ in range(20):
            self.now_ms += RETRANSMIT_INTERVAL_MS
            for name in "AB":
                self.handle(name, TimerTick())
            while self.in_flight["A"] or self.in_flight["B"]:
                for name in "AB":
                    while self.in_flight[name]:
                        self.handle(name, ReceiveMessages(self.in_flight[name].pop(0), b"f"))
            if all(self.quiet(party.ledger) for party in self.parties.values()):
                break
        for party in self.parties.values():
            assert self.quiet(party.ledger), "the ledgers did not settle"
        self.check_agreement()

    @staticmethod
    def quiet(ledger: BilateralLedger) -> bool:
        return ledger.pending_count() == 0 and ledger.unacked_count() == 0

    def check_agreement(self) -> None:
        a, b = self.parties["A"].ledger, self.parties["B"].ledger
        a_totals, b_totals = a.totals(), b.totals()
        for unit in set(a_totals) | set(b_totals):
            at_a, at_b = a_totals.get(unit, Totals()), b_totals.get(unit, Totals())
            assert at_a.accepted_out == at_b.accepted_in
            assert at_a.accepted_in == at_b.accepted_out
            assert at_a.rejected_out_count == at_b.rejected_in_count
            assert at_a.rejected_in_count == at_b.rejected_out_count
            assert at_a.balances().theirs == at_b.balances().ours
            assert at_b.balances().theirs == at_a.balances().ours

    # --- always ------------------------------------------------------------------

    @invariant()
    def final_proposals_never_change(self) -> None:
        for party in self.parties.values():
            for direction in Direction:
                for view in party.ledger.proposals(direction):
                    key = (direction, view.msg_id)
                    now = (str(view.status), view.preimage, view.reason)
                    if key in party.finals:
                        assert party.finals[key] == now
                    elif view.status is not ProposalStatus.PENDING:
                        party.finals[key] = now

    @invariant()
    def nobody_believes_more_than_was_decided(self) -> None:
        for name in "AB":
            mine = self.parties[name].ledger.totals()
            theirs = self.parties[other(name)].ledger.totals()
            for unit, totals in mine.items():
                decided = theirs.get(unit, Totals())
                assert totals.accepted_out <= decided.accepted_in
                assert totals.accepted_out_count <= decided.accepted_in_count
                assert totals.rejected_out_count <= decided.rejected_in_count


SnapPair.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSnapPair = SnapPair.TestCase
