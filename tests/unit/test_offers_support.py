"""Builders shared by the offers-core tests: keys, endorsements, signed offers, statuses."""

from __future__ import annotations

import dataclasses

from node.gossip import GossipItem
from node.ledger.signed import Offer, OfferCancel, SignedInstruction, Take
from node.offers.endorsements import SignedEndorsement, ValidatorEndorsement
from node.offers.items import OfferRecord, OfferStatus, offer_item
from node.signatures import KIND_OFFER_STATUS, KIND_VALIDATOR_ENDORSEMENT, NodeKey

NOW_MS = 1_700_000_000_000
HOUR_MS = 3_600_000


def key(number: int) -> NodeKey:
    return NodeKey(bytes([number]) * 32)


def domain(number: int) -> str:
    return f"bank-{number}.test"


def endorse(
    endorser: int,
    subject: int,
    *,
    subject_domain: str | None = None,
    issued_ms: int = NOW_MS,
    signer: NodeKey | None = None,
    address: str | None = None,
) -> SignedEndorsement:
    body = ValidatorEndorsement(
        domain(endorser),
        key(endorser).public_key,
        subject_domain or domain(subject),
        key(subject).public_key,
        address,
        issued_ms,
        issued_ms + HOUR_MS,
    )
    signature = (signer or key(endorser)).sign(KIND_VALIDATOR_ENDORSEMENT, body.to_sign())
    return SignedEndorsement(body, signature)


MAKER_KEY = NodeKey(b"m" * 32)
TAKER_KEY = NodeKey(b"t" * 32)
MAKER = "alice@bank-1.test"
TAKER = "bob@bank-2.test"
SELL, BUY = "bank-1.test/EUR", "bank-2.test/USD"


def signed(instruction: Offer | OfferCancel | Take, signer: NodeKey) -> SignedInstruction:
    request = instruction.signing_request()
    return SignedInstruction(
        instruction, signer.public_key, signer.sign(request.kind, request.payload)
    )


def make_offer(**changes: object) -> Offer:
    offer = Offer(
        maker=MAKER,
        sell_uai=SELL,
        sell_amount=1_000,
        buy_uai=BUY,
        buy_amount=1_100,
        min_fill=100,
        max_fee=10,
        expires_ms=NOW_MS + HOUR_MS,
        nonce=1,
        created_ms=NOW_MS,
    )
    return dataclasses.replace(offer, **changes)  # type: ignore[arg-type]


def make_status(offer: Offer, at: int = 1, **changes: object) -> OfferStatus:
    status = OfferStatus(
        offer_id=offer.offer_id,
        validator=domain(at),
        validator_key=key(at).public_key,
        seq=1,
        left=offer.sell_amount,
        state="live",
        cancel=None,
        issued_ms=NOW_MS,
    )
    return dataclasses.replace(status, **changes)  # type: ignore[arg-type]


def make_record(
    offer: Offer | None = None, status: OfferStatus | None = None, validator: int = 1
) -> OfferRecord:
    offer = offer or make_offer()
    status = status or make_status(offer, validator)
    signature = key(validator).sign(KIND_OFFER_STATUS, status.to_sign())
    return OfferRecord(signed(offer, MAKER_KEY), status, signature)


def record_item(record: OfferRecord) -> GossipItem:
    return offer_item(record.signed_offer, record.status, record.status_signature)
