"""Multi-hop payments in a diamond a-{b,c}-d of real node processes over QUIC.

d extends 80.00 to each of b and c; b forwards for 0.1 %, c for 0.5 %, so b
is the cheaper way. A payment of 120.00 fits neither path: it is split over
both, and d releases the preimage only when both parts are there. Then b has
no credit left at d, which a does not know: a payment tried through b is
refused by b (insufficient credit, b>d) and a retries it through c.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.payments_mesh import (
    check_books,
    link,
    make_nodes,
    pay,
    set_routing,
    wait_all_quiet,
    wait_route,
)

A, B, C, D = "bank-a.test", "bank-b.test", "bank-c.test", "bank-d.test"

pytestmark = pytest.mark.slow


def hops_of(part: dict[str, Any]) -> list[str]:
    return [str(hop["to"]) for hop in part["hops"]]


async def test_split_over_both_paths_then_retry_around_a_hop_without_credit(
    tmp_path: Path,
) -> None:
    nodes = make_nodes(tmp_path, [A, B, C, D])
    a, b, c, d = (nodes[name] for name in (A, B, C, D))
    link(a, b)
    link(a, c)
    for forwarder in (b, c):
        forwarder.trust(d, "1E-2 USD=10000.00")
        d.trust(forwarder, "1E-2 USD=80.00")
    set_routing(c, fee_ppm=5_000)
    try:
        for node in nodes.values():
            node.start("warning")
        for node in nodes.values():
            await node.wait_ready()
        await wait_route(a, D, 12_000)  # both paths are known: the split fits

        split = await pay(a, D, 12_000, payment_id="split")
        assert split["status"] == "succeeded", split
        parts = split["parts"]
        assert [part["state"] for part in parts] == ["accepted", "accepted"]
        assert sorted(hops_of(part)[0] for part in parts) == [B, C]
        delivered = {hops_of(part)[0]: part["hops"][-1]["amount"] for part in parts}
        assert delivered == {B: 8_000, C: 4_000}  # the cheaper path carries all it can
        await wait_all_quiet(nodes)
        nets = await check_books(nodes)
        assert nets[D] == 12_000 and -nets[A] == 12_000 + split["fee"]

        retried = await pay(a, D, 3_000, payment_id="retry")
        assert retried["status"] == "succeeded", retried
        first, second = retried["parts"]
        assert first["state"] == "rejected" and hops_of(first) == [B, D]
        assert first["reason"] == f"insufficient-credit@{B}>{D}"
        assert second["state"] == "accepted" and hops_of(second) == [C, D]
        await wait_all_quiet(nodes)
        nets = await check_books(nodes)
        assert nets[D] == 15_000
        assert -nets[A] == 15_000 + split["fee"] + retried["fee"]
        assert nets[B] >= 0 and nets[C] >= 0 and nets[B] + nets[C] == -nets[A] - nets[D]

        stuck = await pay(a, D, 2_000, payment_id="stuck")  # c has 1000 left, b none
        assert stuck["status"] == "failed", stuck
        assert stuck["reason"] == "insufficient-credit"
        assert stuck["failed_hop"] in (f"{B}>{D}", f"{C}>{D}")
        await wait_all_quiet(nodes)
        assert (await check_books(nodes)) == nets  # the failed payment moved nothing
    finally:
        for node in nodes.values():
            node.stop()
