"""Exchanges: two payments in opposite directions bound to one condition
(docs/PAYMENTS.md, "Preset conditions and exchanges").

Maker's validator m, taker's validator t. Leg B (m pays t's customer, EUR)
goes m -> f -> t; leg A (t pays m's customer, USD) goes t -> g -> m. The taker
draws the preimage; m holds leg A, pays leg B, and claims leg A with the
preimage leg B revealed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import snap
from node.codec import DecodeError
from node.payments.core import PaymentCore
from node.payments.events import (
    FINAL_DELTA_MS_MAX,
    AcceptIncoming,
    ActionAbandon,
    ActionExpect,
    ActionInvoice,
    ActionPay,
    ActionReveal,
    Effect,
    IncomingConditional,
    InvoiceAbandoned,
    InvoiceCreated,
    NotifyHeld,
    NotifyReceived,
    NotifyRefused,
    OutgoingFinal,
    PaymentStarted,
    PaymentStatus,
    PersistRecord,
    PreimageLearned,
    ProposeConditional,
    Record,
    RejectIncoming,
    SendToPeer,
    TimerTick,
)
from node.payments.messages import RouteAnnouncement
from node.payments.records import record_from_wire, record_to_wire
from node.payments.routing import RouteGraph
from node.signatures import sha256
from node.state import NodeIdentity, NodeState, decode_log_record, payment_log_record
from tests.unit.test_payments_support import KEY, NOW_MS, POLICY, USD, Mesh, Node, domain
from tests.unit.test_payments_support import payee_known as known_payee

EUR = "1E-2 EUR"
SECRET = sha256(b"the taker's secret")
CONDITION = sha256(SECRET)
MAKER, TAKER = "mia@m.test", "tom@t.test"
LEG_B_AMOUNT, LEG_A_AMOUNT = 1_000, 700
LONG_DELTA_MS = 300_000  # leg A's payee transfer: outlives leg B
MARGIN_MS = 30_000  # m's time to claim leg A after leg B's first hop could settle last


class SwapMesh(Mesh):
    """The support mesh with one unit per link: (a, b, credit each extends, unit)."""

    def __init__(self, links: list[tuple[str, str, int, str]]) -> None:
        self.unit_links = links
        self.crash_at_preimage: str | None = None  # a node that dies once it logs a preimage
        self.dead: set[str] = set()
        super().__init__([(a, b, credit) for a, b, credit, _ in links])

    def _carry_out(self, node: Node, effect: Effect) -> None:
        if node.name in self.dead:
            return  # the process is gone: nothing after the crash point is done
        super()._carry_out(node, effect)
        learned = isinstance(effect, PersistRecord) and isinstance(effect.record, PreimageLearned)
        if learned and node.name == self.crash_at_preimage:
            self.dead.add(node.name)

    def crash(self, name: str) -> None:
        self.dead.discard(name)
        super().crash(name)

    def _units(self, name: str) -> dict[str, str]:
        return {
            domain(b if name == a else a): u for a, b, _, u in self.unit_links if name in (a, b)
        }

    def _graph(self, name: str) -> RouteGraph:
        graph = RouteGraph(domain(name), self._credit(name))
        for a, b, credit, unit in self.unit_links:
            for origin, peer in ((a, b), (b, a)):
                announcement = RouteAnnouncement(
                    domain(origin),
                    KEY,
                    domain(peer),
                    KEY,
                    unit,
                    credit,
                    POLICY.fee_base,
                    POLICY.fee_ppm,
                    POLICY.expiry_delta_ms,
                    1,
                    NOW_MS,
                    NOW_MS + 3_600_000,
                )
                graph.add(announcement)
        return graph

    def _new_node(self, name: str, old: Node | None = None) -> Node:
        own, credit, units = domain(name), self._credit(name), self._units(name)
        ledgers = {peer: snap.BilateralLedger({units[peer]: credit[peer]}) for peer in credit}

        def available(peer: str, unit: str) -> int:
            if units[peer] != unit:
                return 0
            theirs = ledgers[peer].balances()[unit].theirs
            return self.nodes[peer].peers[own] - theirs.current - theirs.receivable

        policies = {peer: POLICY for peer in credit}
        core = PaymentCore(own, policies, self._graph(name), available, known_payee)
        node = Node(name, credit, core, ledgers)
        if old is not None:
            node.records, node.snap_records, node.refs = old.records, old.snap_records, old.refs
            node.notices, node.received = old.notices, old.received
            for record in old.records:
                core.apply(record)
            for peer, records in old.snap_records.items():
                for snap_record in records:
                    ledgers[peer].apply(snap_record)
        return node

    def node(self, name: str) -> Node:
        return self.nodes[domain(name)]

    def net_in(self, name: str, unit: str) -> int:
        ledgers = self.node(name).ledgers.values()
        return sum(
            ledger.balances()[unit].ours.current for ledger in ledgers if unit in ledger.balances()
        )

    def seen(self, name: str, kind: type) -> list:  # type: ignore[type-arg]
        return [effect for effect in self.node(name).received if isinstance(effect, kind)]

    def payment(self, name: str, payment_id: str) -> PaymentStatus:
        return self.node(name).core.state.payments[payment_id].status


SWAP_LINKS = [
    ("m", "f", 10_000, EUR),
    ("f", "t", 10_000, EUR),
    ("t", "g", 10_000, USD),
    ("g", "m", 10_000, USD),
]


def start_swap(
    mesh: SwapMesh, final_delta_ms: int = LONG_DELTA_MS, expect_ms: int = 600_000
) -> NotifyHeld | None:
    """Steps 1-3: t's invoice for leg B, m's expectation for leg A, t pays leg A."""
    now = mesh.now_ms
    invoice = ActionInvoice(
        CONDITION, SECRET, "m.test", "leg-b", TAKER, LEG_B_AMOUNT, EUR, now + 600_000
    )
    mesh.feed(mesh.node("t"), invoice)
    expect = ActionExpect(CONDITION, "t.test", "leg-a", MAKER, LEG_A_AMOUNT, USD, now + expect_ms)
    mesh.feed(mesh.node("m"), expect)
    leg_a = ActionPay(
        "leg-a",
        MAKER,
        "m.test",
        LEG_A_AMOUNT,
        USD,
        100,
        now + 120_000,
        "hold-a",
        condition=CONDITION,
        final_delta_ms=final_delta_ms,
    )
    mesh.feed(mesh.node("t"), leg_a)
    mesh.deliver()
    held = mesh.seen("m", NotifyHeld)
    return held[-1] if held else None


def pay_leg_b(mesh: SwapMesh, held: NotifyHeld, margin_ms: int = MARGIN_MS) -> None:
    """Step 4: m, told leg A is held, pays leg B no later than leg A's parts allow."""
    leg_b = ActionPay(
        "leg-b",
        TAKER,
        "t.test",
        LEG_B_AMOUNT,
        EUR,
        100,
        mesh.now_ms + 120_000,
        "hold-b",
        condition=held.condition,
        latest_expiry_ms=held.min_expires_at_ms - margin_ms,
    )
    mesh.feed(mesh.node("m"), leg_b)


def test_both_legs_settle_in_their_units_and_both_payees_are_credited() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh)
    assert held == NotifyHeld(CONDITION, "leg-a", "t.test", NOW_MS + LONG_DELTA_MS)
    assert mesh.seen("m", NotifyReceived) == []  # m cannot claim leg A yet
    pay_leg_b(mesh, held)
    mesh.settle(3)
    assert mesh.seen("t", NotifyReceived) == [
        NotifyReceived("m.test", "leg-b", TAKER, LEG_B_AMOUNT, EUR)
    ]
    assert mesh.seen("m", NotifyReceived) == [
        NotifyReceived("t.test", "leg-a", MAKER, LEG_A_AMOUNT, USD)
    ]
    assert mesh.payment("m", "leg-b") is PaymentStatus.SUCCEEDED
    assert mesh.payment("t", "leg-a") is PaymentStatus.SUCCEEDED
    assert mesh.net_in("t", EUR) == LEG_B_AMOUNT and mesh.net_in("m", USD) == LEG_A_AMOUNT
    assert mesh.net_in("m", EUR) == -LEG_B_AMOUNT - 3  # f's fee: 2 + 1000 ppm, rounded up
    assert mesh.net_in("t", USD) == -LEG_A_AMOUNT - 3
    assert mesh.pending() == 0


def test_a_preset_condition_sends_no_invoice_request_and_proposes_at_once() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    mesh.feed(
        mesh.node("m"),
        ActionExpect(CONDITION, "t.test", "leg-a", MAKER, 5, USD, NOW_MS + 600_000),
    )
    action = ActionPay("leg-a", MAKER, "m.test", 5, USD, 10, NOW_MS + 60_000, None, CONDITION)
    effects = mesh.node("t").core.handle(action, NOW_MS)
    assert not any(isinstance(e, SendToPeer) for e in effects)
    proposals = [e for e in effects if isinstance(e, ProposeConditional)]
    assert [(p.peer, p.condition) for p in proposals] == [("g.test", CONDITION)]
    assert proposals[0].route[-1].expires_at_ms == NOW_MS + 30_000  # the default final delta


def test_leg_b_failing_makes_m_abandon_and_leg_a_fail_with_nothing_moved() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    mesh.node("t").peers[domain("f")] = 50  # t's real limit towards f: leg B cannot pass
    mesh.node("t").ledgers[domain("f")].set_units({EUR: 50})
    held = start_swap(mesh)
    assert held is not None
    pay_leg_b(mesh, held)
    mesh.deliver()
    assert mesh.payment("m", "leg-b") is PaymentStatus.FAILED
    assert mesh.node("m").notices[-1].reason == "insufficient-credit"
    mesh.feed(mesh.node("m"), ActionAbandon(CONDITION, "leg B failed"))
    mesh.settle(3)
    leg_a = mesh.node("t").core.state.payments["leg-a"]
    assert leg_a.status is PaymentStatus.FAILED and leg_a.reason == "abandoned"
    assert leg_a.failed_hop == "g.test>m.test"
    mesh.feed(mesh.node("t"), ActionAbandon(CONDITION, "leg A failed"))  # t's side of it
    assert mesh.seen("t", NotifyRefused) == []
    assert mesh.node("t").core.state.invoices[CONDITION].abandoned
    assert mesh.seen("m", NotifyReceived) == [] and mesh.seen("t", NotifyReceived) == []
    assert all(mesh.net_in(name, unit) == 0 for name in "mt" for unit in (USD, EUR))
    assert mesh.pending() == 0


def test_a_leg_b_that_would_outlive_leg_a_is_never_proposed() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh, final_delta_ms=60_000)  # leg A's parts expire in 60 s
    assert held is not None
    pay_leg_b(mesh, held)  # latest first-hop expiry 30 s; leg B's first hop needs 50 s
    proposed = mesh.node("m").ledgers[domain("f")].proposals(snap.Direction.OUTGOING)
    assert proposed == []
    notice = mesh.node("m").notices[-1]
    assert notice.status is PaymentStatus.FAILED and notice.reason == "expiry-too-far"


def test_an_undecided_expectation_times_out_and_leg_a_fails() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh, expect_ms=60_000)  # leg A's parts would live 300 s
    assert held is not None
    mesh.tick(59_000)
    assert mesh.payment("t", "leg-a") is PaymentStatus.PENDING
    mesh.tick(1_000)
    leg_a = mesh.node("t").core.state.payments["leg-a"]
    assert leg_a.status is PaymentStatus.FAILED and leg_a.reason == "timeout"
    assert leg_a.failed_hop == "g.test>m.test"  # m's rejection, not SNAP's expiry
    assert mesh.net_in("m", USD) == 0 and mesh.pending() == 0


def test_a_crashed_maker_repeats_notify_held_once_and_still_completes() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh)
    assert held is not None
    mesh.crash("m")
    mesh.tick()
    mesh.tick()
    assert mesh.seen("m", NotifyHeld) == [held, held]  # once more after the restart
    pay_leg_b(mesh, held)
    mesh.settle(3)
    assert mesh.payment("t", "leg-a") is PaymentStatus.SUCCEEDED
    assert mesh.net_in("m", USD) == LEG_A_AMOUNT


def test_the_maker_crashing_after_learning_the_preimage_claims_leg_a_on_restart() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh)
    assert held is not None
    pay_leg_b(mesh, held)
    mesh.crash_at_preimage = "m"
    while "m" not in mesh.dead:
        mesh.deliver_one()
    assert type(mesh.node("m").records[-1]) is PreimageLearned
    assert mesh.seen("m", NotifyReceived) == []
    mesh.crash("m")
    mesh.settle(3)
    assert mesh.seen("m", NotifyReceived)[-1] == NotifyReceived(
        "t.test", "leg-a", MAKER, LEG_A_AMOUNT, USD
    )
    assert mesh.payment("t", "leg-a") is PaymentStatus.SUCCEEDED
    assert mesh.net_in("m", USD) == LEG_A_AMOUNT and mesh.pending() == 0


def test_the_log_and_the_snapshot_rebuild_both_ends_exactly() -> None:
    mesh = SwapMesh(SWAP_LINKS)
    held = start_swap(mesh)
    assert held is not None
    pay_leg_b(mesh, held)
    mesh.settle(3)
    for name in "mt":
        node = mesh.node(name)
        assert "InvoiceCreated" in {type(r).__name__ for r in node.records}
        state = NodeState({}, NodeIdentity(domain(name), b"\x01" * 32, {}))
        for record in node.records:
            state.apply_log_record(payment_log_record(record))
        restored = NodeState.from_snapshot(state.to_snapshot(), {}, state.identity)
        for rebuilt in (state.payments, restored.payments):
            live = node.core.state
            assert rebuilt.invoices == live.invoices and rebuilt.preimages == live.preimages
            assert rebuilt.payments == live.payments and rebuilt.incoming == live.incoming
            assert rebuilt.payment_by_condition == live.payment_by_condition
    expectation = mesh.node("m").core.state.invoices[CONDITION]
    assert expectation.created.preimage is None and expectation.paid
    assert PreimageLearned(CONDITION, SECRET) in mesh.node("m").records


# --- one core: the maker's m, with trusted peers f (EUR) and g (USD) ------------------------


def maker() -> PaymentCore:
    mesh = SwapMesh(SWAP_LINKS)
    graph = mesh._graph("m")
    peers = {"f.test": POLICY, "g.test": POLICY}
    return PaymentCore("m.test", peers, graph, lambda peer, unit: 10_000, known_payee)


def part(
    msg_id: int, amount: int, expires_at_ms: int = NOW_MS + LONG_DELTA_MS
) -> IncomingConditional:
    return IncomingConditional("g.test", msg_id, amount, USD, CONDITION, expires_at_ms, ())


def records_of(effects: list[Effect]) -> list[Record]:
    return [e.record for e in effects if isinstance(e, PersistRecord)]


def expecting(
    amount: int = LEG_A_AMOUNT, expires_ms: int = NOW_MS + 600_000
) -> tuple[PaymentCore, list[Record]]:
    core = maker()
    expect = ActionExpect(CONDITION, "t.test", "leg-a", MAKER, amount, USD, expires_ms)
    return core, records_of(core.handle(expect, NOW_MS))


def test_held_parts_are_announced_once_they_add_up_and_not_accepted() -> None:
    core, _ = expecting()
    first = core.handle(part(1, 300, NOW_MS + 200_000), NOW_MS)
    assert not any(isinstance(e, NotifyHeld | AcceptIncoming) for e in first)
    effects = core.handle(part(2, 400), NOW_MS)
    assert [e for e in effects if isinstance(e, NotifyHeld | AcceptIncoming)] == [
        NotifyHeld(CONDITION, "leg-a", "t.test", NOW_MS + 200_000)
    ]
    assert core.handle(TimerTick(), NOW_MS + 1) == []  # no repeat without a restart


def test_a_wrong_preimage_is_refused_and_the_right_one_claims_what_is_held() -> None:
    core, _ = expecting()
    core.handle(part(1, LEG_A_AMOUNT), NOW_MS)
    wrong = core.handle(ActionReveal(CONDITION, sha256(b"a guess")), NOW_MS)
    assert [e.reason for e in wrong if isinstance(e, NotifyRefused)] == ["bad-reveal"]
    assert len(wrong) == 1 and CONDITION not in core.state.preimages
    effects = core.handle(ActionReveal(CONDITION, SECRET), NOW_MS)
    assert records_of(effects)[0] == PreimageLearned(CONDITION, SECRET)
    assert [e for e in effects if isinstance(e, AcceptIncoming)] == [
        AcceptIncoming("g.test", 1, SECRET)
    ]
    assert core.handle(part(1, LEG_A_AMOUNT), NOW_MS + 5) == [AcceptIncoming("g.test", 1, SECRET)]
    late = core.handle(part(2, 1), NOW_MS + 5)
    assert [e.reason for e in late if isinstance(e, RejectIncoming)] == [
        "already-paid@g.test>m.test"
    ]


def test_a_crash_between_the_preimage_and_the_accepts_is_completed_by_tick() -> None:
    core, records = expecting()
    records += records_of(core.handle(part(1, LEG_A_AMOUNT), NOW_MS))
    held = NOW_MS + LONG_DELTA_MS
    leg_b = ActionPay(
        "leg-b",
        TAKER,
        "t.test",
        LEG_B_AMOUNT,
        EUR,
        100,
        NOW_MS + 60_000,
        "hold-b",
        condition=CONDITION,
        latest_expiry_ms=held - MARGIN_MS,
    )
    records += records_of(core.handle(leg_b, NOW_MS))
    settled = core.handle(OutgoingFinal(0, True, SECRET, None), NOW_MS + 10)
    assert AcceptIncoming("g.test", 1, SECRET) in settled
    logged = records + records_of(settled)
    restarted = maker()
    for record in records + records_of(settled)[:1]:  # only PreimageLearned survived
        restarted.apply(record_from_wire(record_to_wire(record)))
    effects = restarted.handle(TimerTick(), NOW_MS + 20)
    assert AcceptIncoming("g.test", 1, SECRET) in effects
    assert NotifyReceived("t.test", "leg-a", MAKER, LEG_A_AMOUNT, USD) in effects
    replayed = maker()
    for record in logged:
        replayed.apply(decode_log_record(payment_log_record(record)))  # type: ignore[arg-type]
    assert replayed.state.invoices == core.state.invoices
    assert [
        e for e in replayed.handle(TimerTick(), NOW_MS + 20) if isinstance(e, AcceptIncoming)
    ] == []


def test_held_parts_wait_past_the_expiry_while_our_leg_b_is_pending() -> None:
    core, _ = expecting(expires_ms=NOW_MS + 60_000)
    core.handle(part(1, LEG_A_AMOUNT), NOW_MS)
    leg_b = ActionPay(
        "leg-b",
        TAKER,
        "t.test",
        LEG_B_AMOUNT,
        EUR,
        100,
        NOW_MS + 120_000,
        None,
        condition=CONDITION,
        latest_expiry_ms=NOW_MS + 200_000,
    )
    core.handle(leg_b, NOW_MS)
    assert core.handle(TimerTick(), NOW_MS + 61_000) == []
    refused = core.handle(ActionAbandon(CONDITION, "impatient"), NOW_MS + 61_000)
    assert [e.reason for e in refused if isinstance(e, NotifyRefused)] == ["bad-abandon"]
    core.handle(OutgoingFinal(0, False, None, "credit-limit"), NOW_MS + 62_000)
    assert core.state.payments["leg-b"].status is PaymentStatus.FAILED
    late = core.handle(TimerTick(), NOW_MS + 63_000)
    assert [e.reason for e in late if isinstance(e, RejectIncoming)] == ["timeout@g.test>m.test"]


def test_invoices_and_expectations_are_idempotent_and_refuse_a_reused_condition() -> None:
    core, records = expecting()
    again = ActionExpect(CONDITION, "t.test", "leg-a", MAKER, LEG_A_AMOUNT, USD, NOW_MS + 600_000)
    assert core.handle(again, NOW_MS) == []
    other = ActionExpect(CONDITION, "t.test", "other", MAKER, 1, USD, NOW_MS + 600_000)
    assert [e.reason for e in core.handle(other, NOW_MS) if isinstance(e, NotifyRefused)] == [
        "bad-invoice"
    ]
    forged = ActionInvoice(sha256(b"x"), SECRET, "t.test", "p2", MAKER, 1, USD, NOW_MS + 1_000)
    assert [type(e) for e in core.handle(forged, NOW_MS)] == [NotifyRefused]
    assert len(records) == 1 and record_from_wire(record_to_wire(records[0])) == records[0]


def test_bad_preset_payments_are_refused_before_anything_is_recorded() -> None:
    core = maker()
    base = ActionPay("p", TAKER, "t.test", 5, EUR, 10, NOW_MS + 60_000, None, CONDITION)
    for action in (
        replace(base, final_delta_ms=1_000),
        replace(base, final_delta_ms=FINAL_DELTA_MS_MAX + 1),
        replace(base, latest_expiry_ms=NOW_MS),
        replace(base, condition=b"short"),
    ):
        effects = core.handle(action, NOW_MS)
        assert [type(e) for e in effects] == [NotifyRefused], action
    assert core.state.payments == {}
    core.handle(base, NOW_MS)
    again = core.handle(replace(base, payment_id="q"), NOW_MS)
    assert [type(e) for e in again] == [NotifyRefused]  # one condition, one payment


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.integers(1, 300), min_size=1, max_size=6),
    reveal_after=st.integers(0, 6),
)
def test_held_parts_are_claimed_exactly_when_whole_and_the_preimage_known(
    parts: list[int], reveal_after: int
) -> None:
    """Whatever order parts and the preimage come in, the expectation accepts only
    the whole amount, each part once, and never announces parts that are claimed."""
    amount = sum(parts)
    core, _ = expecting(amount)
    events: deque[IncomingConditional | ActionReveal] = deque(
        part(msg_id, value) for msg_id, value in enumerate(parts)
    )
    events.insert(min(reveal_after, len(parts)), ActionReveal(CONDITION, SECRET))
    accepted: list[int] = []
    announced = 0
    for event in events:
        for effect in core.handle(event, NOW_MS):
            if isinstance(effect, AcceptIncoming):
                accepted.append(effect.msg_id)
            announced += isinstance(effect, NotifyHeld)
    assert sorted(accepted) == list(range(len(parts)))
    revealed_last = reveal_after >= len(parts)
    assert announced == (1 if revealed_last else 0)


def test_an_abandoned_expectation_rejects_what_it_holds_and_every_later_part() -> None:
    core, _ = expecting()
    core.handle(part(1, 300), NOW_MS)
    unknown = core.handle(ActionAbandon(sha256(b"nothing"), "no such"), NOW_MS)
    assert [type(e) for e in unknown] == [NotifyRefused]
    effects = core.handle(ActionAbandon(CONDITION, "leg B failed"), NOW_MS)
    assert [e for e in effects if isinstance(e, RejectIncoming)] == [
        RejectIncoming("g.test", 1, "abandoned@g.test>m.test")
    ]
    assert core.handle(ActionAbandon(CONDITION, "again"), NOW_MS) == []
    later = core.handle(part(2, 400), NOW_MS)
    assert [e.reason for e in later if isinstance(e, RejectIncoming)] == ["abandoned@g.test>m.test"]
    assert core.handle(ActionReveal(CONDITION, SECRET), NOW_MS)[-1] == PersistRecord(
        PreimageLearned(CONDITION, SECRET)
    )  # learned, but nothing is left to claim


def test_the_log_codec_keeps_old_records_readable_and_stays_strict() -> None:
    started = PaymentStarted("p", TAKER, "t.test", 5, EUR, 1, NOW_MS, None)
    old = record_to_wire(started)
    assert "condition" not in old and record_from_wire(old) == started  # written before swaps
    preset = replace(started, condition=CONDITION, final_delta_ms=LONG_DELTA_MS)
    assert record_from_wire(record_to_wire(preset)) == preset
    for bad in (
        {**old, "condition": None},  # never written: a None field is left out
        {**old, "final_delta_ms": 1_000},  # below PAYMENT_FINAL_DELTA_MS
        {**old, "latest_expiry_ms": -1},
    ):
        with pytest.raises(DecodeError):
            record_from_wire(bad)
    expectation = InvoiceCreated(CONDITION, None, "t.test", "a", MAKER, 5, USD, NOW_MS)
    abandoned = InvoiceAbandoned(CONDITION, "leg B failed")
    for record in (expectation, abandoned):
        assert record_from_wire(record_to_wire(record)) == record
    with pytest.raises(DecodeError):
        record_from_wire({**record_to_wire(expectation), "preimage": sha256(b"not it")})
    with pytest.raises(DecodeError):
        record_from_wire({**record_to_wire(abandoned), "reason": None})
