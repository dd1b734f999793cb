"""The operator's ``status`` counts what gossip brought, per item kind.

Two real runtimes over the in-memory network: each announces its route to the
other (kind ``route``) and endorses it (kind ``validator``); each side's
status shows the full items its peer sent and what gossip stored, its own
items included (they were never received).
"""

from __future__ import annotations

import trio

from node.crypto import NodeKey
from node.net.memory import MemoryNetwork
from tests.integration.memory_mesh import Operator, SimulatedNode


async def test_status_counts_gossip_items_received_and_stored(autojump_clock):
    network = MemoryNetwork(seed=3)
    operator_key = NodeKey(bytes([9]) * 32)
    bank_a = SimulatedNode("bank-a.test", NodeKey(bytes([1]) * 32), operator_key, network)
    bank_b = SimulatedNode("bank-b.test", NodeKey(bytes([2]) * 32), operator_key, network)
    operator = Operator(network.endpoint(operator_key.public_key))
    bank_a.trust(bank_b)
    bank_b.trust(bank_a)
    a, b = bank_a.key.public_key, bank_b.key.public_key
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await nursery.start(bank_a.run)
        await nursery.start(bank_b.run)
        network.link(a, b)
        network.link(operator_key.public_key, a)
        network.link(operator_key.public_key, b)
        await trio.sleep(5)
        for node in (a, b):
            counts = (await operator.call(node, "status"))["gossip_received"]
            route = counts["route"]
            assert route["items"] >= 1  # the peer's announcement of its credit to us
            assert route["stored"] >= route["items"] + 1  # ... and our own, never received
            assert counts["validator"]["items"] >= 1  # the peer's endorsement of us
            assert "offer" not in counts or counts["offer"]["items"] == 0
        nursery.cancel_scope.cancel()
