"""Announcements (codec, signature, gossip check) and path finding."""

from __future__ import annotations

import pytest

from node.crypto import NodeKey
from node.gossip import GossipItem
from node.limits import PAYMENT_FAILURE_HALF_LIFE_MS, PAYMENT_HOPS_MAX
from node.payments.messages import (
    InvoiceAnswer,
    InvoiceRequest,
    RouteAnnouncement,
    RouteHop,
    SignedAnnouncement,
    announcement_item,
    invoice_from_wire,
    route_from_wire,
    route_item_problem,
    route_to_wire,
    signed_announcement_from_body,
)
from node.payments.routing import HopPolicy, Path, RouteGraph
from node.signatures import KIND_ROUTE_ANNOUNCEMENT
from node.wire import DecodeError, pack, unpack
from tests.unit.test_payments_support import NOW_MS, USD

KEY = NodeKey(bytes([5]) * 32)


def announcement(
    origin: str, peer: str, credit: int = 1_000, fee_base: int = 1
) -> RouteAnnouncement:
    return RouteAnnouncement(
        origin,
        KEY.public_key,
        peer,
        bytes(32),
        USD,
        credit,
        fee_base,
        0,
        20_000,
        1,
        NOW_MS,
        NOW_MS + 60_000,
    )


def test_signed_announcement_round_trips_and_verifies_as_a_gossip_item() -> None:
    body = announcement("b.test", "a.test")
    signed = SignedAnnouncement(body, KEY.sign(KIND_ROUTE_ANNOUNCEMENT, body.to_sign()))
    assert signed_announcement_from_body(signed.to_body()) == signed and signed.verifies()
    item = announcement_item(signed)
    assert route_item_problem(item) is None
    forged = GossipItem(item.origin, item.kind, item.item_id, 2, item.expires_ms, item.body)
    assert route_item_problem(forged) is not None
    other = SignedAnnouncement(announcement("b.test", "a.test", credit=9), signed.signature)
    assert (
        route_item_problem(announcement_item(other))
        == "the announcement's signature does not verify"
    )


def test_codecs_are_strict() -> None:
    route = (RouteHop("c.test", 5, NOW_MS),)
    assert route_from_wire(unpack(pack(route_to_wire(route)), 1 << 16)) == route
    with pytest.raises(DecodeError):
        route_from_wire([["c.test", 0, NOW_MS]])
    with pytest.raises(DecodeError):
        route_from_wire([["c.test", 5, NOW_MS]] * PAYMENT_HOPS_MAX)
    request = InvoiceRequest("p", "bob@c.test", 5, USD, ("a.test", "c.test"))
    answer = InvoiceAnswer("p", ("a.test", "c.test"), bytes(32), 5, NOW_MS, None)
    for message in (request, answer):
        assert invoice_from_wire(unpack(pack(message.to_wire()), 1 << 16)) == message
    with pytest.raises(DecodeError):
        invoice_from_wire({**answer.to_wire(), "error": "x"})
    with pytest.raises(DecodeError):
        invoice_from_wire({**request.to_wire(), "path": ["a.test", "a.test"]})


def graph(*announcements: RouteAnnouncement) -> RouteGraph:
    routes = RouteGraph("a.test", ["b.test", "c.test"])
    for one in announcements:
        routes.add(one)
    return routes


def find(
    routes: RouteGraph,
    amount: int,
    own: int = 10_000,
    avoid: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[Path, ...] | str:
    return routes.find("d.test", amount, USD, NOW_MS + 30_000, 100, lambda p, u: own, avoid, NOW_MS)


def test_cheapest_path_then_avoid_then_failure_memory_fades() -> None:
    routes = graph(
        announcement("b.test", "a.test"),
        announcement("c.test", "a.test", fee_base=5),
        announcement("d.test", "b.test"),
        announcement("d.test", "c.test"),
    )
    cheapest = find(routes, 100)
    assert not isinstance(cheapest, str)
    assert [h.domain for h in cheapest[0].hops] == ["b.test", "d.test"] and cheapest[0].fee == 1
    around = find(routes, 100, avoid=frozenset({("b.test", "d.test")}))
    assert not isinstance(around, str) and around[0].hops[0].domain == "c.test"
    routes.learn_failure(("b.test", "d.test", USD), 100, NOW_MS)
    assert routes.estimate(("b.test", "d.test", USD), NOW_MS) == 99
    faded = routes.estimate(("b.test", "d.test", USD), NOW_MS + PAYMENT_FAILURE_HALF_LIFE_MS)
    assert faded == 99 + (1_000 - 99) // 2


def test_reasons_and_split() -> None:
    routes = graph(announcement("d.test", "b.test", credit=600), announcement("b.test", "a.test"))
    assert find(routes, 5, own=0) == "no-route"
    assert find(routes, 700) == "insufficient-credit"
    assert (
        graph().find("d.test", 5, USD, NOW_MS, 0, lambda p, u: 9, frozenset(), NOW_MS) == "no-route"
    )
    routes.add(announcement("d.test", "c.test", credit=600))
    routes.add(announcement("c.test", "a.test"))
    split = find(routes, 1_000)
    assert not isinstance(split, str)
    assert sorted(p.amount for p in split) == [400, 600]
    assert HopPolicy(1, 1, 0).fee(1_000_001) == 1 + 2  # ppm rounds up
