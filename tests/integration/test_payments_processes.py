"""Multi-hop payments between four real node processes over QUIC, in a line a-b-c-d.

What a correspondent's operator needs to be true: a payment over 1, 2 or 3
hops settles on every bilateral ledger it crosses, each forwarder keeps its
fee, the same payment id never pays twice, and a payment that cannot be made
fails with its reason.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import trio

from node.api.protocol import ApiError
from tools.mesh import LocalNode, free_udp_port

UNIT = "1E-2 USD"
NAMES = ["bank-a.test", "bank-b.test", "bank-c.test", "bank-d.test"]

pytestmark = pytest.mark.slow


def line(base: Path) -> list[LocalNode]:
    nodes = [LocalNode(name, base / name, free_udp_port()) for name in NAMES]
    for node in nodes:
        node.init()
    for left, right in itertools.pairwise(nodes):
        left.trust(right, f"{UNIT}=1000000")
        right.trust(left, f"{UNIT}=1000000")
    return nodes


async def pay(node: LocalNode, to: str, amount: int, **extra: object) -> dict[str, Any]:
    view: dict[str, Any] = await node.call("pay", to=to, amount=amount, unit=UNIT, **extra)
    with trio.fail_after(20):
        while view["status"] == "pending":
            await trio.sleep(0.1)
            view = await node.call("payment", payment_id=view["payment_id"])
    return view


async def net(node: LocalNode) -> int:
    rows = await node.call("balances")
    return sum(row["ours"]["current"] for row in rows if row["unit"] == UNIT)


async def test_payments_over_one_two_and_three_hops(tmp_path: Path) -> None:
    nodes = line(tmp_path)
    a = nodes[0]
    try:
        for node in nodes:
            node.start("warning")
        for node in nodes:
            await node.wait_ready()
        with trio.fail_after(20):  # gossip: a learns every edge of the line
            while True:
                try:
                    await a.call("route", to="bank-d.test", amount=10_000, unit=UNIT)
                    break
                except Exception:
                    await trio.sleep(0.2)
        route = await a.call("route", to="bank-d.test", amount=10_000, unit=UNIT)
        assert [hop["to"] for hop in route["paths"][0]["hops"]] == NAMES[1:]
        for payee, amount in (("bank-b.test", 10_000), ("bank-c.test", 10_000)):
            view = await pay(a, payee, amount)
            assert view["status"] == "succeeded", view
        view = await pay(a, "bank-d.test", 10_000, payment_id="three-hops")
        assert view["status"] == "succeeded", view
        assert view["preimage"] is not None and view["fee"] > 0
        again = await pay(a, "bank-d.test", 10_000, payment_id="three-hops")
        assert again["status"] == "succeeded"
        for node in nodes:
            await node.wait_quiet()
        nets = [await net(node) for node in nodes]
        assert sum(nets) == 0
        assert nets[3] == 10_000  # paid once, not twice (the waited payments come after)
        assert nets[1] > 10_000 and nets[2] > 10_000  # forwarders kept their fees
        fees = (nets[1] - 10_000) + (nets[2] - 10_000)
        assert -nets[0] == 30_000 + fees
        failed = await pay(a, "bank-d.test", 10_000, max_fee=0)
        assert failed["status"] == "failed" and failed["reason"] == "fee-too-high"
        unknown = await pay(a, "bank-z.test", 100)
        assert unknown["status"] == "failed"
        # `wait`: one call, answered when the payment has ended (no polling).
        with trio.fail_after(20):
            waited = await a.call("pay", to="bank-d.test", amount=10_000, unit=UNIT, wait=True)
        assert waited["status"] == "succeeded" and waited["preimage"] is not None, waited
        with trio.fail_after(20):
            args = {"to": "bank-d.test", "amount": 10_000, "unit": UNIT, "wait": True}
            refused = await a.call("pay", **args, max_fee=0)
            repeated = await a.call("pay", **args, payment_id=waited["payment_id"])
        assert refused["status"] == "failed" and refused["reason"] == "fee-too-high"
        assert repeated == waited  # an ended payment id: answered at once, paid once
        with pytest.raises(ApiError, match="wait is for a multi-hop payment"):
            await a.call("pay", peer="bank-b.test", amount=100, unit=UNIT, wait=True)
    finally:
        for node in nodes:
            node.stop()
