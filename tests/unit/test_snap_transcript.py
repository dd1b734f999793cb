"""Transcript replay, starting with the two examples of the SNAP write-up."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.signatures import sha256
from node.snap import PartyBalance
from node.snap.transcript import replay_transcript
from tests.unit.test_snap_support import NOW_MS

CONDITION = "adf6482b679993104297b720fd154ad877700f491f3184552c0adcb745ac3308"
PREIMAGE = "105580cad26868e3a356cca1ad3a1eb165ce9bf8ada72b2ccfcc04d4810355fa"
USD6 = "1E-6 USD"
EUR = "1E0 EUR"
IN_AN_HOUR_MS = NOW_MS + 3_600_000

REJECTED_EXAMPLE: list[dict[str, Any]] = [
    {"from": "alice", "msgType": "PROPOSE", "msgId": 37, "amount": 5, "unit": USD6},
    {"from": "bob", "msgType": "REJECT", "msgId": 37, "reason": "not interested"},
]
ACCEPTED_EXAMPLE: list[dict[str, Any]] = [
    {
        "from": "bob",
        "msgType": "PROPOSE",
        "msgId": 18,
        "condition": CONDITION,
        "amount": 8,
        "unit": EUR,
        "expiresAt": IN_AN_HOUR_MS,  # the write-up has none; our wire requires one
    },
    {"from": "alice", "msgType": "ACCEPT", "msgId": 18, "preimage": PREIMAGE},
]


def test_write_up_example_unconditional_rejected() -> None:
    report = replay_transcript(REJECTED_EXAMPLE, {}, NOW_MS)
    assert report.refusals == []
    zero = PartyBalance(0, 0, 0)
    assert report.balances == {"alice": {USD6: zero}, "bob": {USD6: zero}}
    (proposal,) = report.proposals
    assert (proposal.proposer, proposal.msg_id, proposal.status) == ("alice", 37, "rejected")
    assert proposal.decider_status == "rejected" and proposal.reason == "not interested"
    assert report.views_agree


def test_write_up_example_conditional_accepted() -> None:
    # The write-up's preimage does hash to its condition, so the ACCEPT is valid.
    assert sha256(bytes.fromhex(PREIMAGE)).hex() == CONDITION
    report = replay_transcript(ACCEPTED_EXAMPLE, {}, NOW_MS)
    assert report.refusals == []
    assert report.balances["alice"][EUR] == PartyBalance(current=8, payable=0, receivable=0)
    assert report.balances["bob"][EUR] == PartyBalance(current=-8, payable=0, receivable=0)
    (proposal,) = report.proposals
    assert proposal.status == proposal.decider_status == "accepted"
    assert proposal.preimage == bytes.fromhex(PREIMAGE)
    assert report.views_agree


def test_both_examples_in_one_transcript_with_acks_repeats_and_iso_time() -> None:
    accepted = [dict(ACCEPTED_EXAMPLE[0], expiresAt="2023-11-14T23:13:20+01:00")]
    lines = [
        *REJECTED_EXAMPLE,
        REJECTED_EXAMPLE[0],  # a repeat of the PROPOSE: answered idempotently
        {"from": "alice", "msgType": "ACK", "msgId": 37, "ackOf": "REJECT"},
        *accepted,
        ACCEPTED_EXAMPLE[1],
        ACCEPTED_EXAMPLE[1],
        {"from": "bob", "msgType": "ACK", "msgId": 18, "ackOf": "ACCEPT"},
    ]
    report = replay_transcript(lines, {}, NOW_MS - 3_600_000)
    assert report.refusals == []
    assert report.balances["alice"][EUR].current == 8
    assert [p.status for p in report.proposals] == ["rejected", "accepted"]
    assert json.loads(json.dumps(report.to_json())) == report.to_json()


def test_wrong_preimage_is_refused_and_the_proposal_stays_pending() -> None:
    wrong = dict(ACCEPTED_EXAMPLE[1], preimage="00" * 32)
    report = replay_transcript([ACCEPTED_EXAMPLE[0], wrong], {}, NOW_MS)
    assert [(r.line, r.party, r.reason) for r in report.refusals] == [
        (2, "alice", "wrong-preimage")
    ]
    assert report.balances["alice"][EUR] == PartyBalance(0, 0, 8)


def test_credit_limit_from_the_limits_table() -> None:
    lines = [
        {"from": "alice", "msgType": "PROPOSE", "msgId": 0, "amount": 5, "unit": USD6},
        {"from": "alice", "msgType": "PROPOSE", "msgId": 1, "amount": 6, "unit": USD6},
        {"from": "bob", "msgType": "ACCEPT", "msgId": 1},
    ]
    report = replay_transcript(lines, {"bob": {USD6: 10}}, NOW_MS)
    assert [(r.line, r.party, r.reason) for r in report.refusals] == [
        (2, "bob", "credit-limit"),
        (3, "bob", "contradiction"),
    ]
    assert [(p.status, p.decider_status) for p in report.proposals] == [
        ("pending", "pending"),
        ("pending", "rejected"),
    ]
    assert not report.views_agree


def test_unknown_unit_when_a_party_lists_its_units() -> None:
    lines = [{"from": "alice", "msgType": "PROPOSE", "msgId": 0, "amount": 5, "unit": EUR}]
    report = replay_transcript(lines, {"bob": {USD6: 10}}, NOW_MS)
    assert [r.reason for r in report.refusals] == ["unknown-unit"]
    report = replay_transcript(lines, {"alice": {USD6: 10}}, NOW_MS)
    assert [(r.party, r.reason) for r in report.refusals] == [("alice", "unknown-unit")]


def test_gaps_and_contradictions() -> None:
    lines = [
        {"from": "alice", "msgType": "PROPOSE", "msgId": 37, "amount": 5, "unit": USD6},
        {"from": "alice", "msgType": "PROPOSE", "msgId": 39, "amount": 5, "unit": USD6},
        {"from": "alice", "msgType": "PROPOSE", "msgId": 37, "amount": 6, "unit": USD6},
        {"from": "bob", "msgType": "ACCEPT", "msgId": 37},
        {"from": "bob", "msgType": "REJECT", "msgId": 37, "reason": "changed my mind"},
        {"from": "bob", "msgType": "ACCEPT", "msgId": 99},
    ]
    report = replay_transcript(lines, {}, NOW_MS)
    assert [(r.line, r.party, r.reason) for r in report.refusals] == [
        (2, "alice", "bad-msg-id"),
        (3, "bob", "contradiction"),
        (5, "bob", "contradiction"),
        (6, "bob", "unknown-msgid"),
    ]
    assert report.balances["bob"][USD6].current == 5


def test_malformed_lines_are_refusals() -> None:
    lines: list[Any] = [
        "not an object",
        {"msgType": "PROPOSE"},
        {"from": "carol", "msgType": "ACK", "msgId": 0, "ackOf": "PROPOSE"},
        {"from": "alice", "msgType": "PING", "msgId": 0},
        {"from": "alice", "msgType": "PROPOSE", "msgId": 0, "amount": 5},
        {"from": "alice", "msgType": "PROPOSE", "msgId": 0, "amount": 5.0, "unit": USD6},
        {"from": "alice", "msgType": "ACCEPT", "msgId": 0, "preimage": "zz"},
        dict(ACCEPTED_EXAMPLE[0], expiresAt="next tuesday"),
        {"from": "alice", "msgType": "REJECT", "msgId": 0, "reason": "x", "extra": 1},
    ]
    report = replay_transcript(lines, {}, NOW_MS)
    assert [r.reason for r in report.refusals] == [
        "malformed",
        "bad-field",
        "bad-field",
        "unknown-type",
        "missing-field",
        "bad-field",
        "bad-field",
        "bad-field",
        "unknown-field",
    ]
    assert [r.line for r in report.refusals] == list(range(1, 10))
    assert report.proposals == []


@pytest.mark.parametrize(
    "limits",
    [{"carol": {USD6: 1}}, {"bob": {"dollars": 1}}, {"bob": {USD6: -1}}],
)
def test_bad_limits_are_a_value_error(limits: dict[str, dict[str, int]]) -> None:
    with pytest.raises(ValueError):
        replay_transcript(REJECTED_EXAMPLE, limits, NOW_MS)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "from",
        "msgType",
        "msgId",
        "amount",
        "unit",
        "condition",
        "expiresAt",
        "preimage",
        "reason",
        "ackOf",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "from": st.sampled_from(["alice", "bob"]),
                "msgType": st.sampled_from(["PROPOSE", "ACCEPT", "REJECT", "ACK"]),
            },
            optional={"msgId": st.integers(-1, 40)},
        ).flatmap(
            lambda base: st.dictionaries(FIELDS, JSON_VALUES | st.integers(0, 40), max_size=4).map(
                lambda extra: {**extra, **base}
            )
        ),
        max_size=6,
    )
)
def test_replay_never_crashes(lines: list[dict[str, Any]]) -> None:
    report = replay_transcript(lines, {}, NOW_MS)
    json.dumps(report.to_json())
