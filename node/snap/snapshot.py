"""Snapshots of a bilateral ledger's state.

Rules:
- A snapshot holds what the records built, minus what is derived from it (the
  pending indexes, the expiry heap, the outbox) and minus the volatile send
  times. Restoring a snapshot and applying the later records gives the same
  state as applying every record from the start.
- Its size is bounded by the proposal tables (pending, unacknowledged and
  recently settled proposals) and the evidence, never by the length of history.
- Sums are decimal strings: lifetime totals can outgrow msgpack's 64-bit integers.
- Reading is strict: DecodeError on anything ``state_to_snapshot`` could not
  have written, including sums that disagree with the pending proposals.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import fields
from typing import Any

from node.limits import (
    AMOUNT_MAX,
    EVIDENCE_PER_PEER_MAX,
    HASH_BYTES,
    REASON_LENGTH_MAX,
    UNIT_LENGTH_MAX,
)
from node.payments.messages import route_from_wire, route_to_wire
from node.signatures import sha256
from node.snap.events import Direction, ProposalStatus
from node.snap.records import EvidenceKept, record_from_wire
from node.snap.state import LedgerState, Proposal, UnitSums
from node.wire import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    require_bytes,
    require_int,
    require_str,
    valid_unit,
)

SNAPSHOT_FORMAT = "ledgermesh/snap-ledger/2"
_TOP_FIELDS = frozenset({"format", "outgoing", "incoming", "sums", "evidence"})
_LIST_FIELDS = frozenset({"first_msg_id", "next_msg_id", "proposals", "settled"})
_PROPOSAL_LENGTH = 12
_SUM_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,99})$")
_SUMS_LENGTH = len(fields(UnitSums))


# --- writing ---------------------------------------------------------------------


def state_to_snapshot(state: LedgerState) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "outgoing": _list_to_wire(state, Direction.OUTGOING),
        "incoming": _list_to_wire(state, Direction.INCOMING),
        "sums": [[unit, [str(v) for v in sums.values()]] for unit, sums in state.sums.items()],
        "evidence": [evidence.to_wire() for evidence in state.evidence],
    }


def _list_to_wire(state: LedgerState, direction: Direction) -> dict[str, Any]:
    proposals = state.lists[direction]
    return {
        "first_msg_id": proposals.first_msg_id,
        "next_msg_id": proposals.next_msg_id,
        "proposals": [_proposal_to_wire(p) for p in proposals.table.values()],
        "settled": list(proposals.settled),
    }


def _proposal_to_wire(p: Proposal) -> list[Any]:
    return [
        *(p.msg_id, p.amount, p.unit, p.condition, p.expires_at_ms),
        *(str(p.status), p.preimage, p.reason, p.late, p.acknowledged),
        *(route_to_wire(p.route), p.ref),
    ]


# --- reading ---------------------------------------------------------------------


def state_from_snapshot(
    obj: object, *, first_msg_id_free: bool, settled_kept_max: int
) -> LedgerState:
    """Rebuild a state from ``state_to_snapshot`` output. Raises DecodeError."""
    if type(obj) is not dict:
        raise DecodeError("malformed", "a snapshot must be a map")
    check_fields(obj, _TOP_FIELDS, frozenset())
    if obj["format"] != SNAPSHOT_FORMAT:
        raise DecodeError("bad-version", f"snapshot format {obj['format']!r}")
    state = LedgerState(first_msg_id_free=first_msg_id_free, settled_kept_max=settled_kept_max)
    state.sums = _sums_from_wire(obj["sums"])
    for direction in Direction:
        _list_from_wire(state, direction, obj[str(direction)])
    state.evidence = _evidence_from_wire(obj["evidence"])
    _check_pending_sums(state)
    return state


def _require_list(value: object, name: str) -> list[Any]:
    if type(value) is not list:
        raise DecodeError("bad-field", f"{name} must be a list")
    return value


def _sums_from_wire(value: object) -> dict[str, UnitSums]:
    sums: dict[str, UnitSums] = {}
    for item in _require_list(value, "sums"):
        if type(item) is not list or len(item) != 2:
            raise DecodeError("bad-field", "a sums entry is [unit, values]")
        unit = require_str(item[0], "unit", UNIT_LENGTH_MAX)
        values = _require_list(item[1], "sums values")
        if not valid_unit(unit) or unit in sums or len(values) != _SUMS_LENGTH:
            raise DecodeError("bad-field", f"sums of unit {unit!r}")
        if not all(type(v) is str and _SUM_PATTERN.match(v) for v in values):
            raise DecodeError("bad-field", f"sums of unit {unit!r} must be decimal strings")
        sums[unit] = UnitSums(*(int(v) for v in values))
    return sums


def _list_from_wire(state: LedgerState, direction: Direction, value: object) -> None:
    if type(value) is not dict:
        raise DecodeError("bad-field", f"{direction} must be a map")
    check_fields(value, _LIST_FIELDS, frozenset())
    proposals = state.lists[direction]
    proposals.first_msg_id = require_int(value["first_msg_id"], "first_msg_id", 0, MSG_ID_MAX)
    proposals.next_msg_id = require_int(
        value["next_msg_id"], "next_msg_id", proposals.first_msg_id, MSG_ID_MAX + 1
    )
    previous_msg_id = proposals.first_msg_id - 1
    for item in _require_list(value["proposals"], "proposals"):
        proposal = _proposal_from_wire(item, direction)
        if not previous_msg_id < proposal.msg_id < proposals.next_msg_id:
            raise DecodeError("inconsistent", f"{direction} msgId {proposal.msg_id} out of order")
        if proposal.unit not in state.sums:
            raise DecodeError("inconsistent", f"no sums for unit {proposal.unit!r}")
        previous_msg_id = proposal.msg_id
        state.index_proposal(direction, proposal)
    _settled_from_wire(state, direction, value["settled"])


def _settled_from_wire(state: LedgerState, direction: Direction, value: object) -> None:
    proposals = state.lists[direction]
    settled = [require_int(v, "settled", 0, MSG_ID_MAX) for v in _require_list(value, "settled")]
    if len(set(settled)) != len(settled):
        raise DecodeError("inconsistent", "a settled msgId is repeated")
    for msg_id in settled:
        proposal = proposals.table.get(msg_id)
        incoming = direction is Direction.INCOMING
        if proposal is None or proposal.status is ProposalStatus.PENDING:
            raise DecodeError("inconsistent", f"settled {direction} msgId {msg_id} is not final")
        if incoming and not proposal.acknowledged:
            raise DecodeError("inconsistent", f"settled msgId {msg_id} is unacknowledged")
    settled_set = set(settled)
    for proposal in proposals.table.values():
        final = proposal.status is not ProposalStatus.PENDING
        unsettled = direction is Direction.INCOMING and not proposal.acknowledged
        if final and not unsettled and proposal.msg_id not in settled_set:
            raise DecodeError("inconsistent", f"{direction} msgId {proposal.msg_id} not settled")
    proposals.settled = deque(settled)
    while len(proposals.settled) > state.settled_kept_max:  # the limit may have shrunk
        del proposals.table[proposals.settled.popleft()]


def _proposal_from_wire(item: object, direction: Direction) -> Proposal:
    if type(item) is not list or len(item) != _PROPOSAL_LENGTH:
        raise DecodeError("bad-field", f"a proposal is a list of {_PROPOSAL_LENGTH}")
    msg_id = require_int(item[0], "msgId", 0, MSG_ID_MAX)
    amount = require_int(item[1], "amount", 1, AMOUNT_MAX)
    unit = require_str(item[2], "unit", UNIT_LENGTH_MAX)
    condition = None if item[3] is None else require_bytes(item[3], "condition", HASH_BYTES)
    expires_at_ms = None if item[4] is None else require_int(item[4], "expiresAt", 0, TIME_MS_MAX)
    if item[5] not in {str(status) for status in ProposalStatus}:
        raise DecodeError("bad-field", f"status {item[5]!r}")
    preimage = None if item[6] is None else require_bytes(item[6], "preimage", HASH_BYTES)
    reason = None if item[7] is None else require_str(item[7], "reason", REASON_LENGTH_MAX)
    late, acknowledged = item[8], item[9]
    if type(late) is not bool or type(acknowledged) is not bool:
        raise DecodeError("bad-field", "late and acknowledged must be booleans")
    route = route_from_wire(item[10])
    if route and condition is None:
        raise DecodeError("bad-field", "a route comes only with a condition")
    ref = None if item[11] is None else require_int(item[11], "ref", 0, MSG_ID_MAX)
    if ref is not None and direction is Direction.INCOMING:
        raise DecodeError("bad-field", "only our own proposals carry a ref")
    proposal = Proposal(msg_id, amount, unit, condition, expires_at_ms, route=route, ref=ref)
    proposal.status, proposal.preimage, proposal.reason = ProposalStatus(item[5]), preimage, reason
    proposal.late, proposal.acknowledged = late, acknowledged
    _check_proposal(proposal, direction)
    return proposal


def _check_proposal(p: Proposal, direction: Direction) -> None:
    """The same rules as records and ``LedgerState.apply``, for data read from disk."""
    problems = [
        not valid_unit(p.unit),
        (p.condition is None) != (p.expires_at_ms is None),
        p.status is ProposalStatus.PENDING
        and (p.preimage, p.reason, p.late) != (None, None, False),
        p.status is ProposalStatus.ACCEPTED and p.reason is not None,
        p.status is ProposalStatus.REJECTED and (p.reason is None or p.preimage is not None),
        p.late and (p.status is not ProposalStatus.ACCEPTED or direction is Direction.INCOMING),
        p.status is ProposalStatus.ACCEPTED and p.condition is None and p.preimage is not None,
        p.status is ProposalStatus.ACCEPTED
        and p.condition is not None
        and (p.preimage is None or sha256(p.preimage) != p.condition),
        direction is Direction.OUTGOING
        and p.status is not ProposalStatus.PENDING
        and not p.acknowledged,
        direction is Direction.INCOMING and p.status is ProposalStatus.PENDING and p.acknowledged,
    ]
    if any(problems):
        raise DecodeError("inconsistent", f"{direction} proposal {p.msg_id}")


def _evidence_from_wire(value: object) -> list[EvidenceKept]:
    evidence = []
    for item in _require_list(value, "evidence"):
        record = record_from_wire(item)
        if not isinstance(record, EvidenceKept):
            raise DecodeError("bad-field", "evidence must be evidence-kept records")
        evidence.append(record)
    if len(evidence) > EVIDENCE_PER_PEER_MAX:
        raise DecodeError("bad-field", "too much evidence")
    return evidence


def _check_pending_sums(state: LedgerState) -> None:
    """The pending sums must be exactly the pending proposals."""
    for direction in Direction:
        proposals = state.lists[direction]
        amounts: dict[str, int] = {}
        counts: dict[str, int] = {}
        for msg_id in proposals.pending:
            proposal = proposals.table[msg_id]
            amounts[proposal.unit] = amounts.get(proposal.unit, 0) + proposal.amount
            counts[proposal.unit] = counts.get(proposal.unit, 0) + 1
        for unit, sums in state.sums.items():
            if direction is Direction.OUTGOING:
                found = (sums.pending_out, sums.pending_out_count)
            else:
                found = (sums.pending_in, sums.pending_in_count)
            if found != (amounts.get(unit, 0), counts.get(unit, 0)):
                raise DecodeError("inconsistent", f"{direction} pending sums of {unit!r}")
