"""Two real node processes over real QUIC on loopback, killed with SIGKILL at random moments.

What a bank's engineer needs to be true: every transfer the node acknowledged
is still there after any number of crashes, none is applied twice, and both
validators end with the same balances, equal to the sum of accepted proposals.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from node.api.protocol import ApiError
from node.inspect import inspect_log
from tools.mesh import LocalNode, local_mesh

SEED = 20261121
TRANSFERS = 1000
KILLS_MIN = 10
UNIT = "1E-2 USD"

pytestmark = pytest.mark.slow


def outgoing_in_log(node: LocalNode) -> tuple[dict[int, int], set[int]]:
    """From the node's log: msg_id -> amount of every outgoing proposal, and the accepted ones."""
    proposed: dict[int, int] = {}
    accepted: set[int] = set()
    for line in inspect_log(node.directory / "log"):
        if line.get("record") == "outgoing-proposed":
            assert line["msg_id"] not in proposed, "a msgId proposed twice"
            proposed[line["msg_id"]] = line["amount"]
        elif line.get("record") == "outgoing-decided" and line["accepted"]:
            accepted.add(line["msg_id"])
    return proposed, accepted


async def pay_many(
    payer: LocalNode, payee: LocalNode, amounts: list[int], acknowledged: dict[str, Any]
) -> None:
    """Pay concurrently; remember what the payer's node acknowledged (durable)."""
    try:
        async with payer.client() as client:

            async def one(amount: int) -> None:
                try:
                    sent = await client.call("pay", peer=payee.name, amount=amount, unit=UNIT)
                except ApiError:
                    return
                acknowledged[payer.name].append((sent["msg_id"], amount))

            async with trio.open_nursery() as nursery:
                for amount in amounts:
                    nursery.start_soon(one, amount)
    except ApiError:
        pass  # the payer was killed under us: unacknowledged, not lost


async def test_transfers_survive_random_sigkills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with local_mesh(tmp_path, ["bank-a.test", "bank-b.test"], "USD=100000000.00") as nodes:
        for node in nodes:
            node.start()
        for node in nodes:
            await node.wait_ready()
        acknowledged: dict[str, Any] = {node.name: [] for node in nodes}
        amounts = list(range(1, TRANSFERS + 1))  # unique amounts identify transfers
        kills = 0

        async def killer(done: trio.Event) -> None:
            nonlocal kills
            while not done.is_set() or kills < KILLS_MIN:
                await trio.sleep(rng.uniform(0.2, 0.8))
                victim = rng.choice(nodes)
                victim.kill()
                kills += 1
                await trio.sleep(rng.uniform(0.0, 0.3))
                victim.start()
                await victim.wait_answering()

        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer, done)
            while amounts:
                batch, amounts = amounts[:25], amounts[25:]
                payer, payee = rng.sample(nodes, 2)
                if not payer.alive():
                    payer, payee = payee, payer
                await pay_many(payer, payee, batch, acknowledged)
            done.set()

        assert kills >= KILLS_MIN
        for node in nodes:
            await node.wait_ready()
        for node in nodes:
            await node.wait_quiet()
        view_a = await nodes[0].call("balances")
        view_b = await nodes[1].call("balances")
        for node in nodes:
            node.stop()

    # Both sides agree.
    assert view_a[0]["ours"] == view_b[0]["theirs"]
    assert view_a[0]["theirs"] == view_b[0]["ours"]
    # Every acknowledged transfer is in the payer's log exactly once, and accepted.
    seen: Counter[int] = Counter()
    for node, view in zip(nodes, (view_a, view_b), strict=True):
        proposed, accepted = outgoing_in_log(node)
        assert accepted == set(proposed), "every proposal within the limit is accepted"
        for msg_id, amount in acknowledged[node.name]:
            assert proposed.get(msg_id) == amount, f"{node.name} lost acknowledged {msg_id}"
        seen.update(proposed.values())
        # The balances equal the sum of accepted proposals.
        assert view[0]["accepted_out"] == sum(proposed[msg_id] for msg_id in accepted)
    assert all(count == 1 for count in seen.values()), "a transfer applied twice"
    assert sum(len(a) for a in acknowledged.values()) > TRANSFERS // 2
