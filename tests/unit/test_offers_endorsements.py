"""Validator endorsements: the item format, the trust closure and every refusal."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.codec import pack
from node.gossip import Declined, GossipItem
from node.limits import ENDORSEMENT_DEPTH_MAX, ENDORSEMENT_LIFETIME_MS_MAX
from node.offers.endorsements import (
    SignedEndorsement,
    Trust,
    endorsement_item,
    signed_endorsement_from_body,
)
from node.signatures import KIND_VALIDATOR_ENDORSEMENT
from tests.unit.test_offers_support import HOUR_MS, NOW_MS, domain, endorse, key


def trust_of(own: int = 0, trusted: tuple[int, ...] = (1,)) -> Trust:
    return Trust(key(own).public_key, domain(own), {key(n).public_key: domain(n) for n in trusted})


def chain(trust: Trust, numbers: range) -> None:
    """number n endorses n + 1, for each n, in the order that makes each one verify."""
    for number in numbers:
        signed = endorse(number, number + 1)
        assert trust.endorsement_problem(endorsement_item(signed)) is None
        trust.add(signed)


def test_item_round_trip():
    signed = endorse(1, 2, address="10.0.0.2:4433")
    item = endorsement_item(signed)
    assert (item.origin, item.item_id, item.seq) == (
        key(1).public_key,
        key(2).public_key,
        NOW_MS,
    )
    assert signed_endorsement_from_body(item.body) == signed


def test_depths_follow_the_endorsements_up_to_the_limit():
    trust = trust_of()
    assert trust.depth(key(0).public_key) == 0 and trust.depth(key(1).public_key) == 1
    chain(trust, range(1, ENDORSEMENT_DEPTH_MAX))
    farthest = key(ENDORSEMENT_DEPTH_MAX).public_key
    assert trust.depth(farthest) == ENDORSEMENT_DEPTH_MAX
    assert trust.domain_of(farthest) == domain(ENDORSEMENT_DEPTH_MAX)
    assert trust.key_of(domain(ENDORSEMENT_DEPTH_MAX)) == farthest
    too_far = endorse(ENDORSEMENT_DEPTH_MAX, ENDORSEMENT_DEPTH_MAX + 1)
    assert trust.endorsement_problem(endorsement_item(too_far)) == "endorsement-too-deep"
    trust.add(too_far)  # even stored, it reaches no one
    assert trust.depth(key(ENDORSEMENT_DEPTH_MAX + 1).public_key) is None


def test_removing_a_link_drops_everything_beyond_it_and_adding_it_back_restores():
    trust = trust_of()
    chain(trust, range(1, 4))
    link = trust.endorsements[(key(2).public_key, key(3).public_key)]
    trust.remove(link)
    assert [trust.depth(key(n).public_key) for n in range(5)] == [0, 1, 2, None, None]
    assert trust.domains() == {domain(0), domain(1), domain(2)}
    trust.add(link)
    assert [trust.depth(key(n).public_key) for n in range(5)] == [0, 1, 2, 3, 4]


def test_a_shorter_path_lowers_the_depth_and_stale_endorsements_do_not_replace():
    trust = trust_of(trusted=(1, 5))
    chain(trust, range(1, 3))
    assert trust.depth(key(3).public_key) == 3
    trust.add(endorse(5, 3))
    assert trust.depth(key(3).public_key) == 2
    newer = endorse(1, 2, issued_ms=NOW_MS + 1)
    trust.add(newer)
    trust.add(endorse(1, 2))  # older: ignored
    assert trust.endorsements[(key(1).public_key, key(2).public_key)] == newer
    trust.remove(endorse(1, 2))  # not the one held: nothing happens
    assert trust.depth(key(2).public_key) == 2


def test_first_binding_of_a_domain_wins_whatever_the_arrival_order():
    grabs = [
        endorse(1, 7, subject_domain="bank-x.test"),
        endorse(2, 8, subject_domain="bank-x.test"),
    ]
    outcomes = []
    for order in (grabs, grabs[::-1]):
        trust = trust_of(trusted=(1, 2))
        for signed in order:
            trust.add(signed)
        outcomes.append(trust.accepted())
    assert outcomes[0] == outcomes[1]
    first, second = (7, 8) if key(1).public_key < key(2).public_key else (8, 7)
    assert outcomes[0][key(first).public_key] == ("bank-x.test", 2)  # its endorser sorts first
    assert key(second).public_key not in outcomes[0]


def test_address_comes_from_the_endorsement():
    trust = trust_of()
    trust.add(endorse(1, 2, address="10.0.0.2:4433"))
    assert trust.address_of(key(2).public_key) == "10.0.0.2:4433"
    assert trust.address_of(key(1).public_key) is None


def _with_body(signed: SignedEndorsement, **changes: object) -> GossipItem:
    return dataclasses.replace(endorsement_item(signed), **changes)  # type: ignore[arg-type]


def _resigned(**changes: object) -> SignedEndorsement:
    body = dataclasses.replace(endorse(1, 2).endorsement, **changes)  # type: ignore[arg-type]
    return SignedEndorsement(body, key(1).sign(KIND_VALIDATOR_ENDORSEMENT, body.to_sign()))


@pytest.mark.parametrize(
    "item, reason",
    [
        (_with_body(endorse(1, 2), kind="route"), "wrong-kind"),
        (_with_body(endorse(1, 2), item_id=key(3).public_key), "mismatched-item"),
        (_with_body(endorse(1, 2), origin=key(3).public_key), "mismatched-item"),
        (_with_body(endorse(1, 2), seq=NOW_MS + 1), "mismatched-item"),
        (_with_body(endorse(1, 2), expires_ms=NOW_MS + 2 * HOUR_MS), "mismatched-item"),
        (endorsement_item(endorse(3, 2)), "unendorsed-endorser"),
        (endorsement_item(endorse(1, 2, signer=key(9))), "bad-signature"),
        (endorsement_item(_resigned(endorser="bank-9.test")), "wrong-endorser-domain"),
        (endorsement_item(endorse(1, 2, subject_domain=domain(0))), "domain-conflict"),
        (endorsement_item(endorse(1, 0, subject_domain="bank-z.test")), "domain-conflict"),
    ],
)
def test_refusals(item, reason):
    problem = trust_of().endorsement_problem(item)
    assert problem == reason
    # A genuine endorsement our trust does not take is remembered as declined by gossip.
    trust_reasons = {"unendorsed-endorser", "wrong-endorser-domain", "domain-conflict"}
    assert isinstance(problem, Declined) == (reason in trust_reasons)


def _unsigned(**changes: object) -> bytes:
    return pack([_resigned(**changes).endorsement.to_sign(), b"s" * 64])


@pytest.mark.parametrize(
    "body",
    [
        b"\x00" * 5000,  # oversize
        pack([b"junk", b"s" * 64]),
        pack([endorse(1, 2).endorsement.to_sign(), b"short"]),
        pack(
            [
                _resigned(
                    expires_ms=NOW_MS + ENDORSEMENT_LIFETIME_MS_MAX + 1
                ).endorsement.to_sign(),
                b"s" * 64,
            ]
        ),
        pack([_resigned(expires_ms=NOW_MS).endorsement.to_sign(), b"s" * 64]),
        pack([_resigned(subject_key=key(1).public_key).endorsement.to_sign(), b"s" * 64]),  # itself
        pack([_resigned(subject="Not A Domain").endorsement.to_sign(), b"s" * 64]),
        endorsement_item(endorse(1, 2)).body + b"\x00",  # trailing bytes
    ],
)
def test_undecodable_bodies_are_refused(body):
    item = _with_body(endorse(1, 2), body=body)
    problem = trust_of().endorsement_problem(item)
    assert problem is not None and problem.startswith("undecodable")


# --- property: the closure depends on the endorsements held, not on their history ---------


def test_a_refresh_keeps_the_closure_and_a_rebinding_refresh_changes_it():
    """A validator re-endorses its peers every hour: the same binding again keeps
    the closure as it is; a later one naming another domain or address rebinds."""
    trust = trust_of(trusted=(1, 2))
    trust.add(endorse(1, 5, issued_ms=NOW_MS, address="10.0.0.5:4000"))
    subject = key(5).public_key
    assert (trust.domain_of(subject), trust.address_of(subject)) == (domain(5), "10.0.0.5:4000")
    trust.add(endorse(1, 5, issued_ms=NOW_MS + HOUR_MS, address="10.0.0.5:4000"))
    assert not trust._stale  # nothing to recompute
    trust.add(endorse(1, 5, issued_ms=NOW_MS + 2 * HOUR_MS, address="10.0.0.9:4000"))
    assert trust.address_of(subject) == "10.0.0.9:4000"
    trust.add(endorse(1, 5, subject_domain="bank-x.test", issued_ms=NOW_MS + 3 * HOUR_MS))
    assert trust.domain_of(subject) == "bank-x.test" and trust.key_of(domain(5)) is None


change = st.tuples(
    st.booleans(),  # add (or remove)
    st.integers(0, 7),  # endorser
    st.integers(0, 7),  # subject
    st.sampled_from([None, "bank-x.test"]),  # the subject's own domain, or a contested one
    st.booleans(),  # query the trust after this change
    st.integers(0, 2),  # when it was issued: a later one replaces (a refresh, maybe rebinding)
    st.sampled_from([None, "10.0.0.1:4000"]),  # the address it gives
)


@settings(max_examples=300, deadline=None)
@given(st.lists(change, max_size=40))
def test_the_closure_is_the_same_as_recomputed_from_scratch(changes):
    trust = trust_of(trusted=(1, 2))
    for add, endorser, subject, subject_domain, query, issued, address in changes:
        if endorser == subject:
            continue
        issued_ms = NOW_MS + issued
        signed = endorse(
            endorser, subject, subject_domain=subject_domain, issued_ms=issued_ms, address=address
        )
        before = (trust.accepted(), trust.domains(), trust.changes) if query else None
        if add:
            trust.add(signed)
        else:
            trust.remove(signed)
        # Gossip forgets what trust declined whenever ``changes`` grows: it must grow
        # with every change of the closure (more often is only wasteful).
        if before is not None and (trust.accepted(), trust.domains()) != before[:2]:
            assert trust.changes > before[2]
    fresh = trust_of(trusted=(1, 2))
    fresh.endorsements = dict(trust.endorsements)
    fresh._recompute()
    assert trust.accepted() == fresh.accepted()
    assert trust.domains() == fresh.domains()
    for accepted_key in fresh.accepted():
        assert trust.address_of(accepted_key) == fresh.address_of(accepted_key)
