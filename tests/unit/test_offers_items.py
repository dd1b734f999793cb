"""Offer gossip items: the format, every refusal of the verify callback, the book view."""

from __future__ import annotations

import dataclasses

import pytest

from node.codec import DecodeError, pack
from node.gossip import Declined, GossipItem
from node.ledger.signed import Offer, OfferCancel, SignedInstruction
from node.limits import ENDORSEMENT_DEPTH_MAX
from node.offers.book import OrderBook
from node.offers.endorsements import Trust
from node.offers.items import (
    OfferItemTooLarge,
    OfferStatus,
    apply_to_book,
    decode_offer_body,
    offer_item,
    offer_item_problem,
    status_from_wire,
)
from node.signatures import KIND_OFFER_STATUS, NodeKey
from tests.unit.test_offers_support import (
    MAKER_KEY,
    NOW_MS,
    TAKER_KEY,
    domain,
    endorse,
    key,
    make_offer,
    make_record,
    make_status,
    record_item,
    signed,
)


def trust() -> Trust:
    """Own key 0; 1 trusted; 2, 3, ... endorsed in a chain up to the depth limit."""
    trust = Trust(key(0).public_key, domain(0), {key(1).public_key: domain(1)})
    for number in range(1, ENDORSEMENT_DEPTH_MAX + 1):
        trust.add(endorse(number, number + 1))
    return trust


def offer_at(validator: int, **changes: object) -> Offer:
    return make_offer(
        maker=f"alice@{domain(validator)}", sell_uai=f"{domain(validator)}/EUR", **changes
    )


def cancel_of(
    offer_id: bytes, signer: NodeKey = MAKER_KEY, maker: str = "alice@bank-1.test"
) -> SignedInstruction:
    return signed(OfferCancel(maker, offer_id, nonce=2), signer)


def test_item_round_trip_and_acceptance():
    record = make_record()
    item = record_item(record)
    assert (item.kind, item.origin, item.item_id) == ("offer", key(1).public_key, record.offer_id)
    assert (item.seq, item.expires_ms) == (1, record.offer.expires_ms)
    assert decode_offer_body(item.body) == record
    assert offer_item_problem(item, trust()) is None


def test_offers_of_a_validator_at_the_depth_limit_count_and_beyond_do_not():
    at_limit = ENDORSEMENT_DEPTH_MAX  # 0 is us: validator n sits at depth n
    record = make_record(offer_at(at_limit), validator=at_limit)
    assert offer_item_problem(record_item(record), trust()) is None
    beyond = at_limit + 1
    record = make_record(offer_at(beyond), validator=beyond)
    assert offer_item_problem(record_item(record), trust()) == "unendorsed-validator"


def test_cancelled_and_filled_tombstones_verify():
    offer = make_offer()
    cancelled = make_status(offer, seq=2, state="cancelled", cancel=cancel_of(offer.offer_id))
    assert offer_item_problem(record_item(make_record(offer, cancelled)), trust()) is None
    filled = make_status(offer, seq=3, state="filled", left=offer.min_fill - 1)
    assert offer_item_problem(record_item(make_record(offer, filled)), trust()) is None


def _item(**changes: object) -> GossipItem:
    return dataclasses.replace(record_item(make_record()), **changes)  # type: ignore[arg-type]


def _forged_maker() -> GossipItem:
    record = make_record()
    request = record.offer.signing_request()
    forged = SignedInstruction(
        record.offer, MAKER_KEY.public_key, TAKER_KEY.sign(request.kind, request.payload)
    )
    return offer_item(forged, record.status, record.status_signature)


def _forged_status() -> GossipItem:
    record = make_record()
    signature = key(2).sign(KIND_OFFER_STATUS, record.status.to_sign())
    return offer_item(record.signed_offer, record.status, signature)


def _status(**changes: object) -> GossipItem:
    offer = make_offer()
    status = dataclasses.replace(make_status(offer), **changes)  # type: ignore[arg-type]
    return record_item(make_record(offer, status))


OFFER = make_offer()


@pytest.mark.parametrize(
    "item, reason",
    [
        (_item(kind="route"), "wrong-kind"),
        (_item(body=b"\x90" * 3000), "oversize"),
        (_item(item_id=b"x" * 32), "mismatched-id"),
        (_status(offer_id=b"x" * 32), "mismatched-id"),
        (_item(seq=7), "mismatched-item"),
        (_item(expires_ms=NOW_MS + 1), "mismatched-item"),
        (_item(origin=key(2).public_key), "mismatched-origin"),
        (record_item(make_record(offer_at(9), validator=9)), "unendorsed-validator"),
        (  # validator 1 signs a status that names domain 2, where the offer is
            record_item(make_record(offer_at(2), make_status(offer_at(2), 1, validator=domain(2)))),
            "wrong-validator-domain",
        ),
        (record_item(make_record(make_offer(maker="alice@bank-2.test"))), "maker-elsewhere"),
        (
            record_item(
                make_record(make_offer(sell_uai="bank-2.test/EUR", buy_uai="bank-1.test/USD"))
            ),
            "foreign-sell-asset",
        ),
        (_status(left=0), "inconsistent"),  # live with nothing left
        (_status(left=OFFER.sell_amount + 1), "inconsistent"),
        (_status(state="filled", left=OFFER.min_fill), "inconsistent"),  # a fill still fits
        (_status(state="cancelled"), "inconsistent"),  # without the maker's cancel
        (_status(cancel=cancel_of(OFFER.offer_id)), "inconsistent"),  # live, yet a cancel
        (_status(state="cancelled", cancel=cancel_of(b"o" * 32)), "bad-cancel"),
        (_status(state="cancelled", cancel=cancel_of(OFFER.offer_id, TAKER_KEY)), "bad-cancel"),
        (
            _status(state="cancelled", cancel=cancel_of(OFFER.offer_id, maker="eve@bank-1.test")),
            "bad-cancel",
        ),
        (_forged_maker(), "bad-maker-signature"),
        (_forged_status(), "bad-status-signature"),
    ],
)
def test_refusals(item, reason):
    problem = offer_item_problem(item, trust())
    assert problem == reason
    # Only a genuine offer that our trust does not take is remembered as declined.
    trust_reasons = {"unendorsed-validator", "wrong-validator-domain"}
    assert isinstance(problem, Declined) == (reason in trust_reasons)


@pytest.mark.parametrize(
    "body",
    [
        pack([1, 2]),
        pack([cancel_of(b"o" * 32).to_wire(), b"", b"s" * 64]),  # a cancel, not an offer
        record_item(make_record()).body + b"\x00",
    ],
)
def test_undecodable_bodies(body):
    problem = offer_item_problem(_item(body=body), trust())
    assert problem is not None and problem.startswith("undecodable")


def test_status_decoding_is_strict():
    wire = make_status(OFFER).to_wire()
    with pytest.raises(DecodeError):
        status_from_wire({**wire, "state": "open"})
    with pytest.raises(DecodeError):
        status_from_wire({**wire, "cancel": signed(OFFER, MAKER_KEY).to_wire()})
    with pytest.raises(DecodeError):
        status_from_wire({**wire, "extra": 1})
    assert status_from_wire(wire) == make_status(OFFER)


def test_an_oversized_offer_cannot_become_an_item():
    long_domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    maker = f"{'m' * 64}@{long_domain}"
    offer = make_offer(
        maker=maker, sell_uai=f"{long_domain}/EURO12345678", buy_uai=f"{long_domain[1:]}/USD"
    )
    status = OfferStatus(
        offer.offer_id,
        long_domain,
        key(1).public_key,
        1,
        1,
        "cancelled",
        cancel_of(offer.offer_id, maker=maker),
        NOW_MS,
    )
    with pytest.raises(OfferItemTooLarge):
        offer_item(signed(offer, MAKER_KEY), status, b"s" * 64)


def test_records_drive_the_book():
    book, offer = OrderBook(), make_offer()
    changes, _ = apply_to_book(book, make_record(offer), NOW_MS)
    assert [(c.kind, c.entry.left) for c in changes] == [("new", 1_000)]
    partly = make_record(offer, make_status(offer, seq=2, left=400))
    changes, _ = apply_to_book(book, partly, NOW_MS)
    assert [(c.kind, c.entry.left) for c in changes] == [("changed", 400)]
    entry = book.search(offer.sell_uai, offer.buy_uai, now_ms=NOW_MS)[0]
    assert (entry.validator, entry.maker, entry.min_fill, entry.price) == (
        domain(1),
        offer.maker,
        100,
        (11, 10),
    )
    cancelled = make_status(offer, seq=3, state="cancelled", cancel=cancel_of(offer.offer_id))
    changes, _ = apply_to_book(book, make_record(offer, cancelled), NOW_MS)
    assert [c.kind for c in changes] == ["removed"] and len(book) == 0
