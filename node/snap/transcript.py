"""Replay of a SNAP message transcript between alice and bob.

Rules:
- Pure: lines in, a report out. ``now_ms`` is the time the whole transcript is
  judged at (expiries are checked against it).
- A line is a JSON object: ``from`` ("alice" or "bob") and the fields of a SNAP
  message as node.wire renders it in JSON (bytes in hex). ``expiresAt`` may
  also be an ISO-8601 string (UTC when it names no offset).
- Two ledgers, alice's view and bob's, with auto-accept off and with
  ``first_msg_id_free``: each party's first PROPOSE sets where its msgIds
  start (the write-up's examples start at 37 and 18); gapless after that.
- A PROPOSE from X is ActionPropose on X's ledger, then ReceiveMessages on
  Y's. An ACCEPT/REJECT from Y is ActionDecide on Y's ledger, then
  ReceiveMessages on X's. An ACK goes to its receiver only. A repeat of a
  message its sender already sent skips the action and is delivered again, so
  the receiver judges it (an identical repeat changes nothing).
- The transcript is the whole conversation: what a ledger would answer is not
  delivered. A line its sender's ledger refuses is reported and not
  delivered; refusals by the receiver are reported; a rejection the receiver
  makes on its own (unknown unit, credit limit, expiry) is reported as a
  refusal of the PROPOSE line, and ``views_agree`` turns false.
- ``limits``: party -> unit -> the credit limit that party extends to the
  other. A party with no entry extends unlimited credit in any unit.
- Malformed lines are refused with DecodeError's reason, never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from node.limits import FRAME_BYTES_MAX
from node.snap.events import (
    ActionDecide,
    ActionPropose,
    Balances,
    Direction,
    Effect,
    NotifyFinal,
    NotifyRefused,
    PartyBalance,
    ProposalStatus,
    ReceiveMessages,
)
from node.snap.ledger import BilateralLedger
from node.wire import (
    Accept,
    DecodeError,
    Propose,
    Reject,
    SnapMessage,
    snap_from_json,
    valid_unit,
)

PARTIES = ("alice", "bob")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TranscriptRefusal:
    line: int  # 1-based
    party: str  # whose ledger refused it ("" when the line names no party)
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class TranscriptProposal:
    """A proposal as its proposer sees it, and the decider's status of it."""

    proposer: str
    msg_id: int
    amount: int
    unit: str
    condition: bytes | None
    expires_at_ms: int | None
    status: str  # pending, accepted or rejected
    decider_status: str  # the same, or "unknown" if the decider never got it
    preimage: bytes | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class TranscriptReport:
    balances: dict[str, dict[str, PartyBalance]]  # party -> unit -> its own view
    views_agree: bool  # each party's view of the other equals the other's own view
    proposals: list[TranscriptProposal]
    refusals: list[TranscriptRefusal]

    def to_json(self) -> dict[str, Any]:
        return {
            "balances": {
                party: {
                    unit: {
                        "current": b.current,
                        "payable": b.payable,
                        "receivable": b.receivable,
                    }
                    for unit, b in units.items()
                }
                for party, units in self.balances.items()
            },
            "viewsAgree": self.views_agree,
            "proposals": [_proposal_json(p) for p in self.proposals],
            "refusals": [
                {"line": r.line, "party": r.party, "reason": r.reason, "detail": r.detail}
                for r in self.refusals
            ],
        }


def _proposal_json(p: TranscriptProposal) -> dict[str, Any]:
    return {
        "from": p.proposer,
        "msgId": p.msg_id,
        "amount": p.amount,
        "unit": p.unit,
        "condition": None if p.condition is None else p.condition.hex(),
        "expiresAt": p.expires_at_ms,
        "status": p.status,
        "deciderStatus": p.decider_status,
        "preimage": None if p.preimage is None else p.preimage.hex(),
        "reason": p.reason,
    }


def replay_transcript(
    lines: list[dict[str, Any]], limits: Mapping[str, Mapping[str, int]], now_ms: int
) -> TranscriptReport:
    """Replay ``lines`` in order between two ledgers and report the outcome.

    Raises ValueError when ``limits`` names another party, an invalid unit or a
    negative limit (the lines themselves never raise: they are refused)."""
    _check_limits(limits)
    ledgers = {party: _ledger(limits.get(party), len(lines)) for party in PARTIES}
    refusals: list[TranscriptRefusal] = []
    for number, line in enumerate(lines, start=1):
        refusals.extend(_replay_line(ledgers, number, line, now_ms))
    return _report(ledgers, refusals)


def _check_limits(limits: Mapping[str, Mapping[str, int]]) -> None:
    for party, units in limits.items():
        if party not in PARTIES:
            raise ValueError(f"limits name {party!r}; the parties are {', '.join(PARTIES)}")
        for unit, limit in units.items():
            if not valid_unit(unit):
                raise ValueError(f"{unit!r} is not a unit like '1E-2 USD'")
            if type(limit) is not int or limit < 0:
                raise ValueError(f"the limit of {unit!r} must be a non-negative integer")


def _ledger(units: Mapping[str, int] | None, line_count: int) -> BilateralLedger:
    return BilateralLedger(
        units or {},
        unknown_units_allowed=units is None,
        auto_decide=False,
        first_msg_id_free=True,
        settled_kept_max=max(1, line_count),  # keep every proposal for the report
    )


def _other(party: str) -> str:
    return PARTIES[1] if party == PARTIES[0] else PARTIES[0]


# --- one line --------------------------------------------------------------------


def _parse_line(line: object) -> tuple[str, SnapMessage, bytes]:
    """The sender, the message and the line's bytes (the evidence). Raises DecodeError."""
    if type(line) is not dict:
        raise DecodeError("malformed", "a line is a JSON object")
    sender = line.get("from")
    if sender not in PARTIES:
        raise DecodeError("bad-field", f"from must be one of {', '.join(PARTIES)}")
    try:
        raw = json.dumps(line, sort_keys=True, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        raise DecodeError("malformed", "not JSON") from None
    if len(raw) > FRAME_BYTES_MAX:
        raise DecodeError("too-large", f"{len(raw)} bytes > {FRAME_BYTES_MAX}")
    fields = {name: value for name, value in line.items() if name != "from"}
    expires = fields.get("expiresAt")
    if type(expires) is str:
        fields["expiresAt"] = _iso_to_ms(expires)
    return str(sender), snap_from_json(fields), raw


def _iso_to_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError("bad-field", f"expiresAt {text!r} is not ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _replay_line(
    ledgers: dict[str, BilateralLedger], number: int, line: object, now_ms: int
) -> list[TranscriptRefusal]:
    try:
        sender, message, raw = _parse_line(line)
    except DecodeError as error:
        party = line.get("from") if isinstance(line, dict) else None
        return [
            TranscriptRefusal(number, party if party in PARTIES else "", error.reason, error.detail)
        ]
    action = _sender_action(ledgers[sender], sender, number, message)
    if isinstance(action, TranscriptRefusal):
        return [action]
    if action is not None:
        refusals = _refusals(ledgers[sender].handle(action, now_ms), number, sender)
        if refusals:
            return refusals
    receiver = _other(sender)
    effects = ledgers[receiver].handle(ReceiveMessages((message,), raw), now_ms)
    refusals = _refusals(effects, number, receiver)
    if isinstance(message, Propose):
        refusals += _rejections_on_receipt(effects, number, receiver)
    return refusals


def _sender_action(
    ledger: BilateralLedger, sender: str, number: int, message: SnapMessage
) -> ActionPropose | ActionDecide | TranscriptRefusal | None:
    """What the sender's ledger must do before the message goes out: None for an
    ACK or a repeat, a refusal for a decision contrary to one already sent."""
    if isinstance(message, Propose):
        if ledger.proposal(Direction.OUTGOING, message.msg_id) is not None:
            return None
        return ActionPropose(
            message.amount, message.unit, message.condition, message.expires_at_ms, message.msg_id
        )
    if not isinstance(message, Accept | Reject):
        return None
    accept = isinstance(message, Accept)
    preimage = message.preimage if isinstance(message, Accept) else None
    reason = message.reason if isinstance(message, Reject) else ""
    decided = ledger.proposal(Direction.INCOMING, message.msg_id)
    if decided is None or decided.status is ProposalStatus.PENDING:
        return ActionDecide(message.msg_id, accept, preimage, reason)
    same = (decided.status is ProposalStatus.ACCEPTED) == accept and (
        decided.preimage == preimage if accept else decided.reason == reason
    )
    if same:
        return None
    detail = f"{sender} already {decided.status} msgId {message.msg_id}"
    return TranscriptRefusal(number, sender, "contradiction", detail)


def _refusals(effects: list[Effect], number: int, party: str) -> list[TranscriptRefusal]:
    return [
        TranscriptRefusal(number, party, effect.reason, effect.detail)
        for effect in effects
        if isinstance(effect, NotifyRefused)
    ]


def _rejections_on_receipt(
    effects: list[Effect], number: int, receiver: str
) -> list[TranscriptRefusal]:
    return [
        TranscriptRefusal(number, receiver, effect.reason or "", "rejected on receipt")
        for effect in effects
        if isinstance(effect, NotifyFinal)
        and effect.direction is Direction.INCOMING
        and not effect.accepted
    ]


# --- the report ------------------------------------------------------------------


def _report(
    ledgers: dict[str, BilateralLedger], refusals: list[TranscriptRefusal]
) -> TranscriptReport:
    balances = {party: ledgers[party].balances() for party in PARTIES}
    own = {party: {u: b.ours for u, b in balances[party].items()} for party in PARTIES}
    views_agree = _views_agree(balances)
    proposals = [
        _proposal(ledgers, proposer, view.msg_id)
        for proposer in PARTIES
        for view in ledgers[proposer].proposals(Direction.OUTGOING)
    ]
    return TranscriptReport(own, views_agree, proposals, refusals)


def _views_agree(balances: dict[str, dict[str, Balances]]) -> bool:
    """Each party's view of the other's balances equals the other's own view."""
    zero = PartyBalance(0, 0, 0)
    for party in PARTIES:
        other = _other(party)
        for unit in set(balances[party]) | set(balances[other]):
            mine = balances[party].get(unit)
            theirs = balances[other].get(unit)
            seen = zero if mine is None else mine.theirs
            own = zero if theirs is None else theirs.ours
            if seen != own:
                return False
    return True


def _proposal(
    ledgers: dict[str, BilateralLedger], proposer: str, msg_id: int
) -> TranscriptProposal:
    view = ledgers[proposer].proposal(Direction.OUTGOING, msg_id)
    assert view is not None
    decided = ledgers[_other(proposer)].proposal(Direction.INCOMING, msg_id)
    return TranscriptProposal(
        proposer,
        msg_id,
        view.amount,
        view.unit,
        view.condition,
        view.expires_at_ms,
        str(view.status),
        "unknown" if decided is None else str(decided.status),
        view.preimage,
        view.reason,
    )
