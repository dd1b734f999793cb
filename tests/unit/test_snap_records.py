"""Records and snapshots: exact round trips, strict reading, bounded size."""

from __future__ import annotations

from typing import Any

import pytest

from node.snap import (
    ActionPropose,
    BilateralLedger,
    EvidenceKept,
    IncomingDecided,
    IncomingDecisionAcked,
    IncomingProposed,
    OutgoingDecided,
    OutgoingProposeAcked,
    OutgoingProposed,
    Record,
    record_from_wire,
)
from node.wire import Accept, Ack, DecodeError, MsgType, Propose, pack, snap_to_json
from tests.unit.test_snap_support import (
    FRAME,
    NOW_MS,
    USD,
    condition_of,
    preimage_of,
    receive,
    records,
    replayed,
    run,
    through_msgpack,
)

ALL_RECORDS: list[Record] = [
    OutgoingProposed(0, 5, USD, None, None),
    OutgoingProposed(1, 5, USD, condition_of(1), NOW_MS),
    IncomingProposed(7, 9, USD, condition_of(2), NOW_MS + 1),
    IncomingDecided(7, True, preimage_of(2), None, NOW_MS),
    IncomingDecided(8, False, None, "credit-limit", NOW_MS),
    OutgoingDecided(1, True, preimage_of(1), None, True, NOW_MS),
    OutgoingDecided(0, False, None, "no", False, NOW_MS),
    OutgoingProposeAcked(3),
    IncomingDecisionAcked(4),
    EvidenceKept("contradiction", snap_to_json(Propose(0, 1, USD)), FRAME, NOW_MS),
]


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: type(r).__name__)
def test_records_round_trip_through_msgpack(record: Record) -> None:
    assert record_from_wire(through_msgpack(record.to_wire())) == record


def changed(record: Record, **fields: Any) -> dict[str, Any]:
    wire = record.to_wire()
    wire.update(fields)
    return wire


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ([1, 2], "malformed"),
        ({"record": "no-such-record"}, "unknown-type"),
        (changed(ALL_RECORDS[0], extra=1), "unknown-field"),
        ({"record": "outgoing-propose-acked"}, "missing-field"),
        (changed(ALL_RECORDS[0], msg_id=True), "bad-field"),
        (changed(ALL_RECORDS[0], msg_id=-1), "bad-field"),
        (changed(ALL_RECORDS[0], amount=0), "bad-field"),
        (changed(ALL_RECORDS[0], unit="dollars"), "bad-field"),
        (changed(ALL_RECORDS[0], condition=condition_of(1)), "bad-field"),
        (changed(ALL_RECORDS[1], condition=b"short"), "bad-field"),
        (changed(ALL_RECORDS[3], reason="why"), "bad-field"),
        (changed(ALL_RECORDS[4], reason=None), "bad-field"),
        (changed(ALL_RECORDS[4], preimage=preimage_of(1)), "bad-field"),
        (changed(ALL_RECORDS[6], late=True), "bad-field"),
        (changed(ALL_RECORDS[6], late=1), "bad-field"),
        (changed(ALL_RECORDS[9], message={"msgType": "PING"}), "unknown-type"),
        (changed(ALL_RECORDS[9], frame_raw="text"), "bad-field"),
    ],
)
def test_record_decoding_is_strict(wire: object, reason: str) -> None:
    with pytest.raises(DecodeError) as error:
        record_from_wire(wire)
    assert error.value.reason == reason


def busy_ledger(transfers: int, settled_kept_max: int = 8) -> tuple[BilateralLedger, list[Record]]:
    ledger = BilateralLedger({USD: None}, settled_kept_max=settled_kept_max)
    log: list[Record] = []
    for msg_id in range(transfers):
        log += records(run(ledger, ActionPropose(2, USD, None, None)))
        log += records(receive(ledger, Accept(msg_id)))
        log += records(receive(ledger, Propose(msg_id, 3, USD), Ack(msg_id, MsgType.ACCEPT)))
    log += records(run(ledger, ActionPropose(1, USD, condition_of(1), NOW_MS + 10)))
    log += records(receive(ledger, Propose(transfers, 4, USD, condition_of(2), NOW_MS + 9)))
    log += records(receive(ledger, Propose(transfers, 5, USD)))  # evidence
    return ledger, log


def test_snapshot_then_later_records_equals_full_replay() -> None:
    ledger, log = busy_ledger(30)
    replayed(log, ledger, settled_kept_max=8)  # asserts the full replay is exact
    middle = len(log) // 2
    earlier = BilateralLedger({USD: None}, settled_kept_max=8)
    for record in log[:middle]:
        earlier.apply(record)
    restored = BilateralLedger.from_snapshot(
        through_msgpack(earlier.to_snapshot()), {USD: None}, settled_kept_max=8
    )
    for record in log[middle:]:
        restored.apply(record)
    assert restored.to_snapshot() == ledger.to_snapshot()
    assert restored.balances() == ledger.balances() and restored.totals() == ledger.totals()
    assert restored.evidence() == ledger.evidence()


def test_snapshot_size_does_not_grow_with_history() -> None:
    small = len(pack(busy_ledger(1_000)[0].to_snapshot()))
    large = len(pack(busy_ledger(3_000)[0].to_snapshot()))
    assert large - small < 16  # a digit more in some sums, nothing else


def test_huge_lifetime_sums_survive_a_snapshot() -> None:
    ledger = BilateralLedger({USD: None}, settled_kept_max=1)
    for msg_id in range(3):
        receive(ledger, Propose(msg_id, 2**63 - 1, USD), Ack(msg_id, MsgType.ACCEPT))
    restored = BilateralLedger.from_snapshot(through_msgpack(ledger.to_snapshot()), {USD: None})
    assert restored.totals()[USD].accepted_in == 3 * (2**63 - 1)


def snapshot_with(**changes: Any) -> dict[str, Any]:
    ledger, _ = busy_ledger(3)
    snapshot = through_msgpack(ledger.to_snapshot())
    for path, value in changes.items():
        target = snapshot
        *parents, last = path.split("__")
        for name in parents:
            target = target[int(name) if name.isdigit() else name]
        target[int(last) if last.isdigit() else last] = value
    return snapshot  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"format": "other/1"}, "bad-version"),
        ({"extra": 1}, "unknown-field"),
        ({"sums__0__1__2": "7"}, "inconsistent"),  # pending_in disagrees with the proposals
        ({"sums__0__1__0": "-1"}, "bad-field"),
        ({"incoming__next_msg_id": 2}, "inconsistent"),
        ({"incoming__settled": [0, 0]}, "inconsistent"),
        ({"incoming__settled": []}, "inconsistent"),
        ({"outgoing__proposals__3__5": "accepted"}, "inconsistent"),
        ({"outgoing__proposals__0__6": preimage_of(9)}, "inconsistent"),
        ({"evidence": [ALL_RECORDS[0].to_wire()]}, "bad-field"),
    ],
)
def test_snapshot_reading_is_strict(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(DecodeError) as error:
        BilateralLedger.from_snapshot(snapshot_with(**changes), {USD: None}, settled_kept_max=8)
    assert error.value.reason == reason


def test_evidence_message_is_json_of_the_peer_message() -> None:
    ledger = BilateralLedger({USD: None})
    receive(ledger, Propose(0, 1, USD, condition_of(1), NOW_MS + 5))
    receive(ledger, Propose(0, 2, USD, condition_of(1), NOW_MS + 5))
    evidence = ledger.evidence()[0]
    assert evidence.message["condition"] == condition_of(1).hex()
    assert evidence.message["amount"] == 2
    assert evidence.frame_raw == FRAME
