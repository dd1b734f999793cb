"""Two real node runtimes over the in-memory network, in simulated time.

The whole shell runs (runtime, SNAP core, log on a simulated disk, operator
API) with 30% loss, 20% duplication and reordering delays between the nodes,
and one node crashes losing everything it had not synced. Both must converge
to the same balances.
"""

from __future__ import annotations

import random
from typing import Any

import trio

from node.crypto import NodeKey
from node.net.memory import MemoryNetwork
from tests.integration.memory_mesh import UNIT, Operator, SimulatedNode, simulated_ms


async def test_runtimes_converge_over_a_lossy_duplicating_reordering_network(autojump_clock):
    rng = random.Random(11)
    network = MemoryNetwork(seed=11)
    operator_key = NodeKey(bytes([9]) * 32)
    bank_a = SimulatedNode("bank-a.test", NodeKey(bytes([1]) * 32), operator_key, network)
    bank_b = SimulatedNode("bank-b.test", NodeKey(bytes([2]) * 32), operator_key, network)
    operator = Operator(network.endpoint(operator_key.public_key))
    bank_a.trust(bank_b)
    bank_b.trust(bank_a)
    a, b = bank_a.key.public_key, bank_b.key.public_key
    for sender, receiver in ((a, b), (b, a)):
        network.set_faults(sender, receiver, loss=0.3, duplicate=0.2, delay_ms=(1, 80))

    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        await nursery.start(bank_a.run)
        await nursery.start(bank_b.run)
        network.link(a, b)
        network.link(operator_key.public_key, a)
        network.link(operator_key.public_key, b)

        acknowledged = 0
        for index in range(300):
            payer, payee = (a, b) if rng.random() < 0.5 else (b, a)
            payee_name = "bank-b.test" if payee == b else "bank-a.test"
            args: dict[str, Any] = {"peer": payee_name, "amount": 1 + index, "unit": UNIT}
            if rng.random() < 0.3:
                invoice = await operator.call(payee, "invoice", amount=1 + index, unit=UNIT)
                args["condition"] = invoice["condition"]
                args["expires_at_ms"] = simulated_ms() + 60_000
            await operator.call(payer, "pay", **args)
            acknowledged += 1
            await trio.sleep(rng.uniform(0, 0.02))
            if index == 150:
                bank_b.crash(rng)
                network.cut(a, b)
                await trio.sleep(2)
                await nursery.start(bank_b.run)
                network.heal(a, b)

        # Faults stop; everything pending must resolve.
        for sender, receiver in ((a, b), (b, a)):
            network.set_faults(sender, receiver)
        with trio.fail_after(120):
            while True:
                statuses = [await operator.call(key, "status") for key in (a, b)]
                if all(s["pending"] == 0 and s["unacked"] == 0 for s in statuses):
                    break
                await trio.sleep(1)
        view_a = await operator.call(a, "balances")
        view_b = await operator.call(b, "balances")
        nursery.cancel_scope.cancel()

    # The faults really happened (frames between the banks, ~30% / ~20% of them).
    assert network.lost_payloads >= 50 and network.duplicated_payloads >= 20
    assert view_a[0]["ours"] == view_b[0]["theirs"]
    assert view_a[0]["theirs"] == view_b[0]["ours"]
    assert view_a[0]["accepted_in"] == view_b[0]["accepted_out"]
    assert view_a[0]["accepted_out"] == view_b[0]["accepted_in"]
    # Every transfer the operator was told about is accepted on both sides.
    assert view_a[0]["accepted_count"] == acknowledged
