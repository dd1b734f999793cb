"""The payment additions to the wire, to SNAP and to the log (docs/PAYMENTS.md,
"Integration contract")."""

from __future__ import annotations

import json

import pytest

from node import snap, wire
from node.gossip import GossipDigest, GossipItem, GossipItems
from node.limits import FRAME_BYTES_MAX
from node.payments.events import InvoiceCreated, PreimageLearned, Record
from node.payments.messages import InvoiceAnswer, InvoiceRequest, RouteHop
from node.payments.records import record_from_wire, record_to_wire
from node.snap import Direction
from node.state import NodeIdentity, NodeState, decode_log_record, payment_log_record
from tests.unit.test_payments_support import Mesh
from tests.unit.test_snap_support import (
    FRAME,
    NOW_MS,
    USD,
    condition_of,
    preimage_of,
    records,
    replayed,
    through_msgpack,
)

ROUTE = (
    RouteHop("bank-c.test", 990, NOW_MS + 60_000),
    RouteHop("bank-d.test", 980, NOW_MS + 40_000),
)
ITEM = GossipItem(b"k" * 32, "route", b"i" * 32, 3, NOW_MS + 1_000, b"body")


@pytest.mark.parametrize(
    "message",
    [
        GossipItems((ITEM, ITEM)),
        GossipDigest(None, ITEM.name, ((ITEM.name, 3),)),
        InvoiceRequest("p1", "bob@bank-d.test", 1000, USD, ("bank-a.test", "bank-d.test")),
        InvoiceAnswer("p1", ("bank-a.test", "bank-d.test"), condition_of(1), 1000, NOW_MS, None),
        InvoiceAnswer("p1", ("bank-a.test", "bank-d.test"), None, 0, 0, "unknown-payee"),
        wire.Propose(7, 1000, USD, condition_of(1), NOW_MS + 90_000, ROUTE),
    ],
)
def test_new_peer_messages_round_trip_within_their_bound(message):
    packed = wire.pack(wire.message_to_wire(message))
    assert wire.message_from_wire(wire.unpack(packed, FRAME_BYTES_MAX)) == message
    assert len(packed) <= wire.message_bytes_bound(message)
    json.dumps(wire.message_to_json(message))  # no bytes left, at any depth


def test_route_json_is_plain_and_hex():
    rendered = wire.message_to_json(GossipItems((ITEM,)))
    assert rendered["items"][0][0] == (b"k" * 32).hex()


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"route": [["bank-c.test", 5, NOW_MS]]}, "bad-field"),  # a route without condition
        ({"condition": condition_of(1), "expiresAt": NOW_MS, "route": []}, "bad-field"),
        ({"condition": condition_of(1), "expiresAt": NOW_MS, "route": [["x", 0, 1]]}, "bad-field"),
    ],
)
def test_bad_routes_are_refused(fields, reason):
    message = {"msgType": "PROPOSE", "msgId": 0, "amount": 5, "unit": USD, **fields}
    with pytest.raises(wire.DecodeError) as error:
        wire.message_from_wire(message)
    assert error.value.reason == reason


def test_a_propose_without_route_packs_as_before():
    plain = wire.Propose(1, 5, USD, condition_of(1), NOW_MS)
    assert "route" not in wire.message_to_wire(plain)


def _proposer_and_decider() -> tuple[snap.BilateralLedger, snap.BilateralLedger]:
    preimages = {condition_of(1): preimage_of(1)}
    decider = snap.BilateralLedger({USD: None}, preimage_lookup=preimages.get)
    return snap.BilateralLedger({USD: None}), decider


def test_route_and_ref_are_kept_and_ref_echoed_in_the_final():
    ours, theirs = _proposer_and_decider()
    action = snap.ActionPropose(1000, USD, condition_of(2), NOW_MS + 60_000, route=ROUTE, ref=41)
    effects = ours.handle(action, NOW_MS)
    proposed = records(effects)[0]
    assert isinstance(proposed, snap.OutgoingProposed) and proposed.ref == 41
    assert ours.handle(action, NOW_MS) == [snap.NotifyProposed(0)]  # the same ref: no-op
    propose = next(m for e in effects if isinstance(e, snap.SendMessages) for m in e.messages)
    assert propose == wire.Propose(0, 1000, USD, condition_of(2), NOW_MS + 60_000, ROUTE)
    answer = theirs.handle(snap.ReceiveMessages((propose,), FRAME), NOW_MS)
    view = theirs.proposal(Direction.INCOMING, 0)
    assert view is not None and view.route == ROUTE
    replayed(records(effects), ours, units={USD: None})
    decide = snap.ActionDecide(0, False, None, "no-route@bank-b.test>bank-c.test")
    reject = [e for e in theirs.handle(decide, NOW_MS) if isinstance(e, snap.SendMessages)]
    finals = [
        e
        for e in ours.handle(snap.ReceiveMessages(reject[0].messages, FRAME), NOW_MS)
        if isinstance(e, snap.NotifyFinal)
    ]
    assert finals[0].ref == 41 and not finals[0].accepted
    assert answer  # ACK PROPOSE went back


def test_a_routed_conditional_is_never_auto_accepted_and_is_announced():
    _, decider = _proposer_and_decider()
    propose = wire.Propose(0, 1000, USD, condition_of(1), NOW_MS + 60_000, ROUTE)
    effects = decider.handle(snap.ReceiveMessages((propose,), FRAME), NOW_MS)
    assert [e for e in effects if isinstance(e, snap.NotifyFinal)] == []
    assert (
        snap.NotifyIncomingConditional(0, 1000, USD, condition_of(1), NOW_MS + 60_000, ROUTE)
        in effects
    )
    learned = decider.handle(snap.ActionLearnPreimage(preimage_of(1)), NOW_MS)
    assert [e for e in learned if isinstance(e, snap.NotifyFinal)] == []


def test_an_unrouted_conditional_with_a_known_preimage_is_still_accepted():
    _, decider = _proposer_and_decider()
    propose = wire.Propose(0, 1000, USD, condition_of(1), NOW_MS + 60_000)
    effects = decider.handle(snap.ReceiveMessages((propose,), FRAME), NOW_MS)
    assert [e.accepted for e in effects if isinstance(e, snap.NotifyFinal)] == [True]


def test_snapshots_keep_route_and_ref():
    ours, _ = _proposer_and_decider()
    ours.handle(
        snap.ActionPropose(10, USD, condition_of(2), NOW_MS + 60_000, route=ROUTE, ref=3), NOW_MS
    )
    restored = snap.BilateralLedger.from_snapshot(through_msgpack(ours.to_snapshot()), {USD: None})
    view = restored.proposal(Direction.OUTGOING, 0)
    assert view is not None and (view.route, view.ref) == (ROUTE, 3)
    again = snap.ActionPropose(10, USD, condition_of(2), NOW_MS + 60_000, route=ROUTE, ref=3)
    assert restored.handle(again, NOW_MS) == [snap.NotifyProposed(0)]


def _payment_records() -> list[Record]:
    mesh = Mesh([("a", "b", 10_000), ("b", "c", 10_000)])
    mesh.pay("a", "c", 1_000)
    mesh.settle(ticks=5)
    assert str(mesh.last("a").status) == "succeeded"
    return [r for node in mesh.nodes.values() for r in node.records]


def test_every_payment_record_round_trips_through_the_log():
    payment_records = _payment_records()
    assert {type(r).__name__ for r in payment_records} >= {
        "PaymentStarted",
        "InvoiceLearned",
        "PaymentEnded",
        "InvoiceCreated",
        "PreimageLearned",
        "OutgoingOpened",
        "OutgoingClosed",
        "IncomingOpened",
        "IncomingClosed",
    }
    for record in payment_records:
        assert decode_log_record(payment_log_record(record)) == record


def test_a_preimage_that_does_not_hash_to_its_condition_is_refused():
    bad = record_to_wire(PreimageLearned(condition_of(1), preimage_of(1)))
    bad["preimage"] = preimage_of(2)
    with pytest.raises(wire.DecodeError):
        record_from_wire(bad)
    created = record_to_wire(
        InvoiceCreated(condition_of(1), preimage_of(1), "a", "p", "c", 5, USD, NOW_MS)
    )
    with pytest.raises(wire.DecodeError):
        record_from_wire({**created, "extra": 1})


def test_node_state_rebuilds_payments_from_log_and_snapshot():
    identity = NodeIdentity("bank-b.test", b"\x01" * 32, {})
    mesh = Mesh([("a", "b", 10_000), ("b", "c", 10_000)])
    mesh.pay("a", "c", 1_000)
    mesh.settle(ticks=5)
    forwarder = mesh.nodes["b.test"]
    state = NodeState({}, identity)
    for record in forwarder.records:
        state.apply_log_record(payment_log_record(record))
    restored = NodeState.from_snapshot(state.to_snapshot(), {}, identity)
    for rebuilt in (state.payments, restored.payments):
        assert rebuilt.preimages == forwarder.core.state.preimages
        assert rebuilt.incoming == forwarder.core.state.incoming
        assert rebuilt.outgoing == forwarder.core.state.outgoing
        assert rebuilt.next_ref == forwarder.core.state.next_ref
