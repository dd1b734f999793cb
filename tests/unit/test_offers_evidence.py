"""Overfill evidence: what proves a maker's validator cheated, and what does not."""

from __future__ import annotations

import dataclasses

import pytest

from node.codec import pack
from node.ledger.signed import SignedInstruction
from node.limits import OFFER_EVIDENCE_ACCEPTANCES_MAX
from node.offers.evidence import (
    OfferEvidence,
    check_offer_evidence,
    encode_offer_evidence,
    is_offer_evidence,
    overfill_problem,
)
from node.offers.take import Acceptance, SignedAcceptance
from node.signatures import NodeKey, sha256
from tests.unit.test_offers_support import (
    MAKER_KEY,
    NOW_MS,
    TAKER,
    TAKER_KEY,
    key,
    make_offer,
    signed,
)

OFFER = make_offer()  # sells 1_000
SIGNED_OFFER = signed(OFFER, MAKER_KEY)
M_KEY = key(1)


def accepted(
    take: int, amount: int, filled: int, signer: NodeKey = M_KEY, **changes: object
) -> SignedAcceptance:
    body = Acceptance(
        OFFER.offer_id, sha256(bytes([take])), "bank-1.test", signer.public_key, TAKER,
        "bank-2.test", amount, amount + amount // 10, sha256(bytes([take, 1])), filled,
        NOW_MS + 60_000, NOW_MS,
    )  # fmt: skip
    body = dataclasses.replace(body, **changes)  # type: ignore[arg-type]
    request = body.signing_request()
    return SignedAcceptance(body, signer.sign(request.kind, request.payload))


@pytest.mark.parametrize(
    "acceptances, proof",
    [
        ([accepted(1, 300, 300), accepted(1, 300, 300, pay=1)], "accepted twice"),
        ([accepted(1, 300, 1_001)], "filled 1001 > sell_amount"),
        ([accepted(1, 600, 600), accepted(2, 500, 1_000)], "accepted 1100 > sell_amount"),
        ([accepted(1, 300, 300), accepted(2, 300, 500)], "claim the same part"),
    ],
)
def test_proofs(acceptances, proof):
    assert overfill_problem(SIGNED_OFFER, acceptances) is None
    verdict = check_offer_evidence(
        encode_offer_evidence(OfferEvidence(SIGNED_OFFER, tuple(acceptances)))
    )
    assert verdict.valid and verdict.validator_key == M_KEY.public_key
    assert proof in verdict.detail


def _forged_offer() -> SignedInstruction:
    return dataclasses.replace(SIGNED_OFFER, signer_key=TAKER_KEY.public_key)


FIRST = accepted(1, 600, 600)
OVER = accepted(2, 500, 1_100)
OTHER_OFFER = signed(dataclasses.replace(OFFER, nonce=9), MAKER_KEY)


@pytest.mark.parametrize(
    "offer, acceptances, reason",
    [
        # an honest history: takes in order, one repeated answer, the whole offer filled
        (
            SIGNED_OFFER,
            [accepted(1, 300, 300), accepted(2, 700, 1_000), accepted(1, 300, 300)],
            "no-overfill",
        ),
        (SIGNED_OFFER, [FIRST, accepted(2, 500, 1_100, signer=key(2))], "different-validators"),
        (SIGNED_OFFER, [FIRST, accepted(2, 500, 1_100, offer_id=b"o" * 32)], "other-offer"),
        (
            SIGNED_OFFER,
            [FIRST, dataclasses.replace(OVER, signature=b"s" * 64)],
            "bad-acceptance-signature",
        ),
        (_forged_offer(), [FIRST, OVER], "bad-offer-signature"),
        (OTHER_OFFER, [FIRST, OVER], "other-offer"),
        (SIGNED_OFFER, [], "no-acceptance"),
    ],
)
def test_not_proofs(offer, acceptances, reason):
    assert overfill_problem(offer, acceptances) == reason


def test_file_refusals_and_dispatch():
    good = encode_offer_evidence(OfferEvidence(SIGNED_OFFER, (accepted(1, 300, 1_001),)))
    assert is_offer_evidence(good)
    chain_evidence = pack({"format": 1, "first": {}, "second": {}})
    assert not is_offer_evidence(chain_evidence) and not is_offer_evidence(b"\xc1")
    too_many = OfferEvidence(
        SIGNED_OFFER, (accepted(1, 300, 1_001),) * (OFFER_EVIDENCE_ACCEPTANCES_MAX + 1)
    )
    for raw in (
        good + b"\x00",
        encode_offer_evidence(too_many),
        pack({"type": "offer-overfill", "offer": SIGNED_OFFER.to_wire(), "acceptances": []}),
        pack({"type": "offer-overfill", "offer": SIGNED_OFFER.to_wire()}),
        pack(
            {
                "type": "offer-overfill",
                "offer": signed(OFFER, MAKER_KEY).to_wire()[:2],
                "acceptances": [],
            }
        ),
    ):
        verdict = check_offer_evidence(raw)
        assert not verdict.valid and verdict.validator_key is None
        assert verdict.detail.startswith("malformed")
    verdict = check_offer_evidence(
        encode_offer_evidence(OfferEvidence(SIGNED_OFFER, (accepted(1, 300, 300),)))
    )
    assert verdict == (False, None, "no-overfill accepted 300 of 1000")


def test_cli_evidence_check_names_the_cheating_validator(tmp_path, capsys):
    from node.cli import main

    proof = tmp_path / "overfill.evidence"
    overfill = (accepted(1, 600, 600), accepted(2, 500, 1_000))
    proof.write_bytes(encode_offer_evidence(OfferEvidence(SIGNED_OFFER, overfill)))
    assert main(["evidence", "check", str(proof), "--json"]) == 0
    shown = capsys.readouterr().out
    assert '"offer-overfill"' in shown and M_KEY.public_key.hex() in shown
    honest = tmp_path / "honest.evidence"
    fair = (accepted(1, 600, 600), accepted(2, 400, 1_000))
    honest.write_bytes(encode_offer_evidence(OfferEvidence(SIGNED_OFFER, fair)))
    assert main(["evidence", "check", str(honest), "--json"]) == 1
    assert "not a proof of fraud" in capsys.readouterr().err
