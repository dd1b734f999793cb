"""Retention of ended payments (docs/PAYMENTS.md, "Retention").

A line a - b - c: a pays c through b. With small bounds (3 ended kept in full
per kind, 6 outcomes), many payments later: what ended long ago is forgotten
at all three (a's payments, b's forwarded pairs, c's invoices), a's forgotten
ids still answer with their outcome and proof and never pay twice, what is
open is never dropped, and replaying the records gives the same state with or
without a snapshot anywhere between them.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.codec import DecodeError
from node.payments.core import PaymentCore
from node.payments.events import (
    ActionInvoice,
    ActionPay,
    IncomingClosed,
    IncomingConditional,
    IncomingOpened,
    InvoiceCreated,
    InvoiceExpired,
    InvoiceLearned,
    NotifyPayment,
    OutcomesRemembered,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PaymentStatus,
    PersistRecord,
    PreimageLearned,
    Record,
    RefsReserved,
    RejectIncoming,
    TimerTick,
)
from node.payments.records import record_from_wire, record_to_wire
from node.payments.routing import RouteGraph
from node.payments.state import PaymentState
from node.signatures import sha256
from node.wire import pack, unpack
from tests.unit.test_payments_support import USD, Mesh, Node, domain

ENDED_KEPT = 3
OUTCOMES_KEPT = 6


class SmallMesh(Mesh):
    """The payments mesh with small retention bounds (restarts keep them)."""

    def _new_node(self, name: str, old: Node | None = None) -> Node:
        node = super()._new_node(name, old)
        node.core.state = replay(node.records)
        return node


def replay(records: list[Record]) -> PaymentState:
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    for record in records:
        state.apply(record)
    return state


def through_codec(records: list[Record]) -> list[Record]:
    """What a snapshot holds: the records encoded, packed, unpacked, decoded."""
    data = pack([record_to_wire(record) for record in records])
    return [record_from_wire(wire) for wire in unpack(data, 1 << 26)]


def canonical(state: PaymentState) -> tuple[Any, ...]:
    """Everything replay must rebuild, orders included (volatile fields aside)."""
    payments = {
        payment_id: (payment.started, payment.condition, payment.status, payment.reason,
                     payment.failed_hop, payment.parts, payment.avoid, payment.invoice_expires_ms)
        for payment_id, payment in state.payments.items()
    }  # fmt: skip
    return (
        list(state.payments),
        payments,
        list(state.invoices.items()),
        state.invoice_by_request,
        list(state.outgoing.items()),
        list(state.incoming.items()),
        state.preimages,
        state.payment_by_condition,
        state.next_ref,
        list(state.pending_ids),
        list(state.open_incoming),
        list(state.open_outgoing),
        state.open_per_peer,
        list(state.ended_payments),
        list(state.ended_invoices),
        list(state.ended_forwards),
        list(state.outcome_order),
        state.outcomes,
        list(state.journal.values()),
        state.condition_owners,
        state.payments_with,
    )


def paid_line(count: int) -> SmallMesh:
    mesh = SmallMesh([("a", "b", 10**6), ("b", "c", 10**6)])
    for index in range(count):
        mesh.pay("a", "c", 100, payment_id=f"p{index}")
        mesh.settle(ticks=3)
        assert mesh.last("a").status is PaymentStatus.SUCCEEDED, index
    return mesh


def test_ended_payments_forwards_and_invoices_are_kept_up_to_the_bound_newest_first() -> None:
    mesh = paid_line(12)
    a, b, c = (mesh.nodes[domain(name)].core.state for name in "abc")
    assert list(a.payments) == ["p9", "p10", "p11"]  # the newest, in full
    assert list(a.outcome_order) == ["p3", "p4", "p5", "p6", "p7", "p8"]  # then ids only
    assert len(a.outgoing) == 3 and len(a.preimages) == 3
    assert len(b.incoming) == len(b.outgoing) == 3 and len(b.ended_forwards) == 3
    assert len(b.preimages) == 3 and not b.payments and not b.invoices
    assert len(c.invoices) == 3 and len(c.incoming) == 3 and len(c.invoice_by_request) == 3
    for state in (a, b, c):
        assert not state.pending_ids and not state.open_incoming and not state.open_outgoing
        assert state.open_per_peer == {}
        assert len(state.journal) <= 3 * 6  # a payment's records at most, per item kept
    assert mesh.net("a") == -12 * 100 - 12 * 2 - 12 * 1 + 0  # nothing forgotten moved value
    assert mesh.net("c") == 12 * 100


def test_a_forgotten_id_answers_its_outcome_and_proof_and_never_pays_twice() -> None:
    mesh = paid_line(12)
    node = mesh.nodes[domain("a")]
    outcome = node.core.state.outcome("p5")
    assert outcome is not None and outcome.succeeded and outcome.fee == 3
    assert outcome.preimage is not None and outcome.hold_id == "hold-p5"
    net, records = mesh.net("a"), len(node.records)
    effects = node.core.handle(
        ActionPay("p5", "c.test", "c.test", 100, USD, 1_000, mesh.now_ms + 60_000, "hold-p5"),
        mesh.now_ms,
    )
    assert effects == [
        NotifyPayment("p5", PaymentStatus.SUCCEEDED, (), 3, None, None, outcome.preimage, "hold-p5")
    ]
    mesh.settle(ticks=3)
    assert mesh.net("a") == net and len(node.records) == records
    # Older than the outcomes kept: unknown, so a new payment (docs/PAYMENTS.md).
    assert node.core.state.outcome("p0") is None and not node.core.state.known("p0")
    mesh.pay("a", "c", 100, payment_id="p0")
    mesh.settle(ticks=3)
    assert mesh.last("a").status is PaymentStatus.SUCCEEDED and mesh.net("a") == net - 103


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_replay_gives_the_same_state_with_or_without_a_snapshot(name: str) -> None:
    mesh = paid_line(12)
    node = mesh.nodes[domain(name)]
    whole = replay(node.records)
    assert whole.snapshot_records() == node.core.state.snapshot_records()  # live == replayed
    for cut in range(0, len(node.records) + 1, 7):
        snapshot = through_codec(replay(node.records[:cut]).snapshot_records())
        restored = replay(snapshot + node.records[cut:])
        assert canonical(restored) == canonical(whole), cut
    # A snapshot of a restored state is the same snapshot.
    again = replay(through_codec(whole.snapshot_records()))
    assert again.snapshot_records() == whole.snapshot_records()


def test_a_restart_after_forgetting_keeps_refs_unique_and_pays_on() -> None:
    mesh = paid_line(12)
    for name in "abc":
        mesh.crash(name)
    used = mesh.nodes[domain("a")].core.state.next_ref
    mesh.pay("a", "c", 100, payment_id="after")
    mesh.settle(ticks=3)
    assert mesh.last("a").status is PaymentStatus.SUCCEEDED
    assert mesh.nodes[domain("a")].core.state.payments["after"].parts == [used]


def open_history(state: PaymentState, ended: int) -> None:
    """One payment, one forwarded pair and one invoice part left open, then
    ``ended`` of each kind that end."""
    state.apply(PaymentStarted("open", "x", "c.test", 10, USD, 1, 10**13, None, sha256(b"o")))
    state.apply(OutgoingOpened(0, "c.test", 10, USD, sha256(b"o"), 10**13, (), "open", None, None))
    state.apply(IncomingOpened("a.test", 0, 11, USD, sha256(b"f"), 10**13, 1))
    state.apply(OutgoingOpened(1, "c.test", 10, USD, sha256(b"f"), 10**13, (), None, "a.test", 0))
    lonely = bytes([9]) * 32  # an invoice with no part yet
    state.apply(InvoiceCreated(sha256(lonely), lonely, "a.test", "i", "x", 5, USD, 10**13))
    state.apply(InvoiceCreated(sha256(bytes(32)), bytes(32), "a.test", "inv", "x", 5, USD, 10**13))
    state.apply(IncomingOpened("a.test", 1, 3, USD, sha256(bytes(32)), 10**13, None))
    ref = 2
    for index in range(ended):
        condition = sha256(b"%d" % index)
        state.apply(PaymentStarted(f"p{index}", "x", "c.test", 10, USD, 1, 10**13, None, condition))
        state.apply(OutgoingOpened(ref, "c.test", 10, USD, condition, 10**13, (), f"p{index}",
                                   None, None))  # fmt: skip
        state.apply(OutgoingClosed(ref, False, "no-route@c.test>d.test"))
        state.apply(PaymentEnded(f"p{index}", False, "no-route", "c.test>d.test"))
        state.apply(IncomingOpened("a.test", 10 + index, 11, USD, condition, 10**13, ref + 1))
        state.apply(OutgoingOpened(ref + 1, "c.test", 10, USD, condition, 10**13, (), None,
                                   "a.test", 10 + index))  # fmt: skip
        state.apply(OutgoingClosed(ref + 1, False, "x@c.test>d.test"))
        state.apply(IncomingClosed("a.test", 10 + index, False, "x@c.test>d.test"))
        ref += 2


def test_what_is_open_is_never_dropped_and_the_open_indexes_stay_right() -> None:
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    open_history(state, 20)
    assert "open" in state.payments and list(state.pending_ids) == ["open"]
    assert list(state.open_outgoing) == [0, 1]
    assert list(state.open_incoming) == [("a.test", 0), ("a.test", 1)]
    assert state.open_per_peer == {"c.test": 2}
    assert len(state.invoices) == 2  # open: neither paid, abandoned nor expired
    assert state.open_refs() == [0, 1]
    assert [payment.started.payment_id for payment in state.pending_payments()] == ["open"]
    assert len(state.payments) == 1 + ENDED_KEPT and len(state.ended_forwards) == ENDED_KEPT
    assert len(state.outcomes) == OUTCOMES_KEPT
    failed = state.outcome("p16")
    assert failed is not None and not failed.succeeded and failed.preimage is None
    assert failed.reason == "no-route" and failed.failed_hop == "c.test>d.test"
    restored = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    for record in through_codec(state.snapshot_records()):
        restored.apply(record)
    assert canonical(restored) == canonical(state)


def core(state: PaymentState) -> PaymentCore:
    return PaymentCore(
        "c.test", {}, RouteGraph("c.test", {}), lambda p, u: 0, lambda p, u: True, state
    )


def test_an_invoice_never_paid_ends_at_its_expiry_and_is_then_forgotten() -> None:
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    payee = core(state)
    now = 1_800_000_000_000
    for index in range(5):
        preimage = bytes([index]) * 32
        action = ActionInvoice(sha256(preimage), preimage, "a.test", f"i{index}", "c.test", 5,
                               USD, now + 1_000 + index)  # fmt: skip
        assert [type(e) for e in payee.handle(action, now)] == [PersistRecord]
    assert payee.handle(TimerTick(), now + 999) == []  # nothing expired yet
    effects = payee.handle(TimerTick(), now + 1_003)
    assert [e.record for e in effects if isinstance(e, PersistRecord)] == [
        InvoiceExpired(sha256(bytes([index]) * 32)) for index in range(4)
    ]
    assert len(state.invoices) == ENDED_KEPT + 1 and sha256(bytes(32)) not in state.invoices
    assert ("a.test", "i0") not in state.invoice_by_request and not state.preimages.get(
        sha256(bytes(32))
    )
    late = IncomingConditional("b.test", 7, 5, USD, sha256(bytes(32)), now + 60_000, ())
    assert payee.handle(late, now + 2_000) == [
        RejectIncoming("b.test", 7, "unknown-invoice@b.test>c.test")
    ]


def test_an_expired_invoice_holding_parts_ends_when_they_close() -> None:
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    payee = core(state)
    now = 1_800_000_000_000
    preimage = bytes(32)
    payee.handle(ActionInvoice(sha256(preimage), preimage, "a.test", "i", "c.test", 10, USD,
                               now + 1_000), now)  # fmt: skip
    part = IncomingConditional("b.test", 1, 4, USD, sha256(preimage), now + 60_000, ())
    payee.handle(part, now)
    effects = payee.handle(TimerTick(), now + 1_000)
    records = [e.record for e in effects if isinstance(e, PersistRecord)]
    assert records == [
        IncomingClosed("b.test", 1, False, "timeout@b.test>c.test"),
        InvoiceExpired(sha256(preimage)),
    ]
    assert list(state.ended_invoices) == [sha256(preimage)]


def test_the_expiry_pass_is_bounded_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.payments import core as core_module

    monkeypatch.setattr(core_module, "PAYMENT_INVOICES_EXPIRED_PER_TICK_MAX", 2)
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    payee = core(state)
    now = 1_800_000_000_000
    for index in range(5):
        preimage = bytes([index]) * 32
        payee.handle(ActionInvoice(sha256(preimage), preimage, "a.test", f"i{index}", "c.test",
                                   5, USD, now + 10), now)  # fmt: skip
    counts = [len(payee.handle(TimerTick(), now + 100 + tick)) for tick in range(4)]
    assert counts == [2, 2, 1, 0]


def test_the_snapshot_only_records_are_decoded_strictly() -> None:
    proof = bytes(32)
    good = OutcomesRemembered(
        (("p1", True, None, None, 3, proof, "hold"), ("p2", False, "timeout", "a>b", 0, None, None))
    )
    assert record_from_wire(record_to_wire(good)) == good
    assert record_from_wire(record_to_wire(RefsReserved(17))) == RefsReserved(17)
    expired = InvoiceExpired(sha256(proof))
    assert record_from_wire(record_to_wire(expired)) == expired
    wire = record_to_wire(good)
    bad_entries: list[list[Any]] = [
        [["p1", True, None, None, 3, None, None]],  # a success without its proof
        [["p1", False, "x", None, 3, proof, None]],  # a failure with a preimage
        [["p1", True, None, None, 3, proof, None]] * 2,  # one id twice
        [["p1", True, None, None, -1, proof, None]],  # a negative fee
        [["p1", True, None, None, 3, proof]],  # short
        [["p1", True, None, None, 3, proof, None]] * 1_025,  # too many in one record
    ]
    for entries in bad_entries:
        with pytest.raises(DecodeError):
            record_from_wire({**wire, "entries": entries})
    with pytest.raises(DecodeError):
        record_from_wire({"kind": "refs-reserved", "next_ref": -1})


def test_an_id_remembered_by_its_outcome_cannot_start_again() -> None:
    """A payment whose id is remembered only by its outcome cannot start again."""
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    open_history(state, 5)
    assert state.known("p0") and not state.known("never")
    with pytest.raises(AssertionError):
        state.apply(PaymentStarted("p0", "x", "c.test", 10, USD, 1, 10**13, None))


def test_open_items_keep_their_records_for_the_snapshot() -> None:
    state = PaymentState(ENDED_KEPT, OUTCOMES_KEPT)
    open_history(state, 0)
    kinds = [type(record).__name__ for record in state.journal.values()]
    assert kinds.count("IncomingOpened") == 2 and kinds.count("OutgoingOpened") == 2
    assert state.snapshot_records()[-1] == RefsReserved(2)


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_a_snapshot_replays_under_lower_bounds_after_an_upgrade(name: str) -> None:
    """A node whose new version keeps fewer ended payments in full starts from the
    old version's snapshot: it forgets more as it replays, and every success it
    forgets keeps its proof (before, the node asserted and did not start)."""
    mesh = paid_line(12)
    records = mesh.nodes[domain(name)].records
    snapshot = through_codec(replay(records).snapshot_records())

    def lower(records: list[Record]) -> PaymentState:
        state = PaymentState(1, OUTCOMES_KEPT)
        for record in records:
            state.apply(record)
        return state

    upgraded = lower(snapshot)
    assert canonical(upgraded) == canonical(lower(records))  # as if it had always run so
    if name == "a":
        assert list(upgraded.payments) == ["p11"]
        for payment_id in ("p9", "p10"):  # kept in full by the old bound, forgotten now
            outcome = upgraded.outcome(payment_id)
            assert outcome is not None and outcome.succeeded and outcome.preimage is not None


SHARED_PREIMAGE = bytes([1]) * 32
SHARED = sha256(SHARED_PREIMAGE)


def forward(msg_id: int, ref: int, condition: bytes, preimage: bytes | None) -> list[Record]:
    """A forwarded pair through us that succeeds (with ``preimage``) or fails."""
    ok = preimage is not None
    reason = None if ok else "x@c.test"
    records: list[Record] = [
        IncomingOpened("a.test", msg_id, 10, USD, condition, 10**13, ref),
        OutgoingOpened(ref, "c.test", 9, USD, condition, 10**13, (), None, "a.test", msg_id),
    ]
    if preimage is not None:
        records.append(PreimageLearned(condition, preimage))
    return [*records, OutgoingClosed(ref, ok, reason), IncomingClosed("a.test", msg_id, ok, reason)]


def own_payment(payment_id: str, ref: int, condition: bytes, preimage: bytes) -> list[Record]:
    return [
        PaymentStarted(payment_id, "z@c.test", "c.test", 5, USD, 1, 10**13, None),
        InvoiceLearned(payment_id, condition, 10**13),
        OutgoingOpened(ref, "c.test", 5, USD, condition, 10**13, (), payment_id, None, None),
        PreimageLearned(condition, preimage),
        OutgoingClosed(ref, True, None),
        PaymentEnded(payment_id, True, None, None),
    ]


def others(first: int, count: int, kind: str) -> list[Record]:
    records: list[Record] = []
    for index in range(first, first + count):
        preimage = bytes([index]) * 32
        if kind == "forward":
            records += forward(index, index, sha256(preimage), preimage)
        else:
            records += own_payment(f"q{index}", index, sha256(preimage), preimage)
    return records


@pytest.mark.parametrize(
    "history",
    [
        # A forward of a condition fails; later our own payment with the same condition
        # (a payee may reuse one) succeeds: forgetting the forward must not take the
        # payment's proof with it (the node asserted and did not start).
        forward(0, 0, SHARED, None)
        + others(1, 3, "forward")
        + own_payment("p", 4, SHARED, SHARED_PREIMAGE)
        + others(5, 3, "payment"),
        # The payer retried a part through us: two forwards of one condition, the
        # second succeeds; the snapshot must keep its preimage as the log does.
        forward(0, 0, SHARED, None)
        + others(1, 3, "forward")
        + forward(4, 4, SHARED, SHARED_PREIMAGE),
    ],
    ids=["forward-then-payment", "forward-retried"],
)
def test_a_shared_condition_keeps_its_preimage_under_lower_bounds(history: list[Record]) -> None:
    def built(bound: int, records: list[Record]) -> PaymentState:
        state = PaymentState(bound, 1_000)
        for record in records:
            state.apply(record)
        return state

    snapshot = through_codec(built(10, history).snapshot_records())
    assert canonical(built(2, snapshot)) == canonical(built(2, history))
    assert canonical(built(10, snapshot)) == canonical(built(10, history))
