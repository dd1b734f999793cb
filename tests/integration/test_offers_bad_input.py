"""Bad offers from a trusted peer's link are refused, counted and never forwarded.

A real runtime (bank-a) trusts two peers whose links we drive by hand: offers
arrive from bank-1's link; whatever bank-a forwards reaches bank-2's link.
Forged maker or validator signatures, an unendorsed validator, an expired
offer and a flood beyond the origin's rate are each refused with their reason;
only the good offers reach the order book and are passed on.
"""

from __future__ import annotations

import dataclasses

import trio

from node import wire
from node.config import NodeConfig, PeerConfig
from node.gossip import GossipHave, GossipItem, GossipItems
from node.limits import GOSSIP_ITEMS_PER_MESSAGE_MAX, GOSSIP_ORIGIN_BURST_ITEMS
from node.net.base import Received
from node.net.memory import MemoryEndpoint, MemoryNetwork
from node.offers.items import OfferRecord
from node.signatures import KIND_OFFER_STATUS, NodeKey
from tests.integration.memory_mesh import UNIT, Operator, SimulatedNode, simulated_ms
from tests.unit.test_offers_support import (
    BUY,
    MAKER_KEY,
    SELL,
    key,
    make_offer,
    make_status,
    record_item,
    signed,
)

BANK_A = NodeKey(bytes([10]) * 32)
OPERATOR = NodeKey(bytes([9]) * 32)
HOUR_MS = 3_600_000


def offer_item(number: int, *, validator: int = 1, **changes: object) -> GossipItem:
    now_ms = simulated_ms()
    terms: dict[str, object] = {"expires_ms": now_ms + HOUR_MS, "created_ms": now_ms}
    offer = make_offer(
        maker=f"maker{number}@bank-{validator}.test",
        sell_uai=SELL.replace("bank-1", f"bank-{validator}"),
        **{**terms, **changes},
    )
    status = make_status(offer, validator, issued_ms=now_ms)
    signature = key(validator).sign(KIND_OFFER_STATUS, status.to_sign())
    return record_item(OfferRecord(signed(offer, MAKER_KEY), status, signature))


def frames(sender: NodeKey, receiver: bytes, items: list[GossipItem]) -> list[bytes]:
    step = GOSSIP_ITEMS_PER_MESSAGE_MAX
    return [
        wire.encode_frame(sender, receiver, [GossipItems(tuple(items[i : i + step]))])
        for i in range(0, len(items), step)
    ]


def forwarded(link: MemoryEndpoint) -> set[bytes]:
    """Offer ids bank-a sent bank-2, in full or announced."""
    seen: set[bytes] = set()
    while True:
        try:
            event = link.events.receive_nowait()
        except trio.WouldBlock:
            return seen
        if not isinstance(event, Received):
            continue
        for message in wire.decode_frame(event.payload).messages:
            if isinstance(message, GossipItems):
                seen |= {item.item_id for item in message.items if item.kind == "offer"}
            elif isinstance(message, GossipHave):
                seen |= {name[2] for name, _ in message.entries if name[1] == "offer"}


async def test_bad_offers_are_refused_counted_and_not_forwarded(autojump_clock):
    network = MemoryNetwork(seed=3)
    bank_a = SimulatedNode("bank-a.test", BANK_A, OPERATOR, network)
    one, two = key(1), key(2)
    peers = tuple(
        PeerConfig(f"bank-{n}.test", k.public_key, None, {UNIT: 10**9})
        for n, k in ((1, one), (2, two))
    )
    a = BANK_A.public_key
    bank_a.config = NodeConfig("bank-a.test", ("memory", 0), a, OPERATOR.public_key, peers)
    link_one, link_two = network.endpoint(one.public_key), network.endpoint(two.public_key)
    operator = Operator(network.endpoint(OPERATOR.public_key))

    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await nursery.start(bank_a.run)
        for peer in (one, two, OPERATOR):
            network.link(a, peer.public_key)
        await trio.sleep(1)
        forwarded(link_two)  # what bank-a said on connecting

        good = offer_item(0)
        record = good.body
        forged_maker = offer_item(1)
        forged_maker = dataclasses.replace(
            forged_maker, body=forged_maker.body.replace(MAKER_KEY.public_key, key(7).public_key)
        )
        forged_status = dataclasses.replace(offer_item(2), origin=key(3).public_key)
        unendorsed = offer_item(3, validator=5)
        expired = offer_item(4, expires_ms=simulated_ms() - 1)
        bad = [forged_maker, forged_status, unendorsed, expired]
        assert record not in [item.body for item in bad]
        for payload in frames(one, a, [good, *bad]):
            assert link_one.send_nowait(a, payload)
        await trio.sleep(1)

        found = await operator.call(a, "offers_search", sell=SELL, buy=BUY, limit=50)
        assert [o["offer_id"] for o in found] == [good.item_id.hex()]
        refusals = (await operator.call(a, "status"))["refusals"]
        assert refusals["gossip-invalid"] == 3  # two forgeries and the unendorsed validator
        assert refusals["gossip-expired"] == 1
        assert forwarded(link_two) == {good.item_id}

        # A flood from one origin: beyond its burst, refused as rate-limited.
        flood = [offer_item(100 + n) for n in range(GOSSIP_ORIGIN_BURST_ITEMS + 100)]
        for payload in frames(one, a, flood):
            assert link_one.send_nowait(a, payload)
        await trio.sleep(1)
        refusals = (await operator.call(a, "status"))["refusals"]
        limited = refusals.get("gossip-rate-limited", 0)
        assert limited > 0
        passed = forwarded(link_two)
        assert len(passed) == len(flood) - limited
        assert passed <= {item.item_id for item in flood}
        nursery.cancel_scope.cancel()
