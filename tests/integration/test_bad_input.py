"""Bad input from a trusted peer's link changes nothing; it is refused and counted.

A real runtime (bank-a) receives frames on the link of its trusted peer
bank-b: forged signatures, garbage, frames for another node, bad messages
inside a well-signed frame. Only the one good frame moves a balance.
"""

from __future__ import annotations

import trio

from node import wire
from node.crypto import NodeKey
from node.net.memory import MemoryNetwork
from node.wire import Accept, Propose
from tests.integration.memory_mesh import UNIT, Operator, SimulatedNode

BANK_A = NodeKey(bytes([1]) * 32)
BANK_B = NodeKey(bytes([2]) * 32)
MALLORY = NodeKey(bytes([3]) * 32)
OPERATOR = NodeKey(bytes([9]) * 32)


async def test_bad_frames_on_a_trusted_link_change_nothing(autojump_clock):
    network = MemoryNetwork(seed=1)
    bank_a = SimulatedNode("bank-a.test", BANK_A, OPERATOR, network)
    bank_b_link = network.endpoint(BANK_B.public_key)  # we speak as bank-b, by hand
    operator = Operator(network.endpoint(OPERATOR.public_key))
    bank_a.trust_key("bank-b.test", BANK_B.public_key)
    a = BANK_A.public_key

    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await nursery.start(bank_a.run)
        network.link(a, BANK_B.public_key)
        network.link(OPERATOR.public_key, a)

        good = Propose(0, 500, UNIT)
        body, signature = wire.unpack(wire.encode_frame(BANK_B, a, [good]), 1 << 16)
        bad_frames = {
            "frame-bad-signature": wire.pack([body, bytes([signature[0] ^ 1]) + signature[1:]]),
            "frame-malformed": b"\xc1garbage",
            "frame-trailing-bytes": wire.encode_frame(BANK_B, a, [good]) + b"\x00",
            # Signed by someone else but sent on bank-b's link.
            "frame-misaddressed": wire.encode_frame(MALLORY, a, [good]),
            # Well signed by bank-b, but for another node.
            "frame-misaddressed-2": wire.encode_frame(BANK_B, MALLORY.public_key, [good]),
        }
        for payload in bad_frames.values():
            assert bank_b_link.send_nowait(a, payload)
        # Well signed, but the message inside is bad: an ACCEPT for nothing, a gap in msgIds.
        assert bank_b_link.send_nowait(
            a, wire.encode_frame(BANK_B, a, [Accept(7), Propose(5, 100, UNIT)])
        )
        await trio.sleep(1)
        status = await operator.call(a, "status")
        balances = await operator.call(a, "balances")
        assert status["accepted"] == 0 and status["pending"] == 0
        assert balances[0]["ours"] == {"current": 0, "payable": 0, "receivable": 0}
        refusals = status["refusals"]
        assert refusals["frame-bad-signature"] == 1
        assert refusals["frame-malformed"] == 1
        assert refusals["frame-trailing-bytes"] == 1
        assert refusals["frame-misaddressed"] == 2
        assert refusals["unknown-msgid"] == 1
        assert refusals["out-of-order"] == 1

        # A flood of repeats of one good frame is applied once.
        frame = wire.encode_frame(BANK_B, a, [good])
        for _ in range(200):
            bank_b_link.send_nowait(a, frame)
        await trio.sleep(1)
        balances = await operator.call(a, "balances")
        assert balances[0]["ours"]["current"] == 500
        assert balances[0]["accepted_count"] == 1
        nursery.cancel_scope.cancel()
