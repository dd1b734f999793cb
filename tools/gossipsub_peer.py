"""libp2p gossipsub on a given graph, on loopback: time-to-all and copies per delivery.

Run by .venv-gossipsub's python (``libp2p`` 0.8.1 from PyPI, trio), not by the
project's: tools/bench_gossip.py pipes it a JSON job on stdin and reads one JSON
result from stdout. Every host of the job runs in this one trio process, listens
on 127.0.0.1 (TCP, noise, yamux: libp2p's defaults), dials the peers the edges
give it, and subscribes to one topic. Gossipsub runs with D=6, D_low=4, D_high=12
and a 1 s heartbeat. Eclipse protection is off (every peer shares one address on
loopback), and so is the per-topic spam limit (10 messages/s by default, below
the publish rate here). After --warmup-s for the meshes to form, the job's
messages are published from the given origins, one every ``interval_ms``, each
``body_bytes`` long. Copies are counted by wrapping each pubsub's ``push_msg``:
every message received from a peer, duplicates included, before the seen-cache
drops them. Time-to-all of a message runs from its publish call to the last
subscriber's delivery.

    echo '{"nodes": 10, "edges": [[0, 1], ...], "origins": [3, 7], "interval_ms": 50,
           "body_bytes": 400, "warmup_s": 4, "settle_s": 3}' | python tools/gossipsub_peer.py
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

TOPIC = "offers"


def router() -> GossipSub:
    return GossipSub(
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        heartbeat_initial_delay=0.1,
        eclipse_protection_enabled=False,
        spam_protection_enabled=False,
    )


class Counter:
    def __init__(self) -> None:
        self.copies: dict[bytes, int] = {}
        self.delivered_s: dict[bytes, list[float]] = {}

    def wrap(self, pubsub: Pubsub) -> None:
        own = pubsub.my_id
        push = pubsub.push_msg

        async def counted(forwarder: Any, message: Any) -> None:
            if forwarder != own:
                key = bytes(message.data[:8])
                self.copies[key] = self.copies.get(key, 0) + 1
            await push(forwarder, message)

        pubsub.push_msg = counted

    async def listen(self, subscription: Any) -> None:
        while True:
            message = await subscription.get()
            self.delivered_s.setdefault(bytes(message.data[:8]), []).append(trio.current_time())


async def run(job: dict[str, Any]) -> dict[str, Any]:
    nodes, counter = job["nodes"], Counter()
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with contextlib.AsyncExitStack() as stack:
        hosts, pubsubs = [], []
        for _ in range(nodes):
            host, gossipsub = new_host(listen_addrs=listen), router()
            pubsub = Pubsub(host, gossipsub)
            await stack.enter_async_context(host.run(listen_addrs=listen))
            await stack.enter_async_context(background_trio_service(pubsub))
            await stack.enter_async_context(background_trio_service(gossipsub))
            await pubsub.wait_until_ready()
            counter.wrap(pubsub)
            hosts.append(host)
            pubsubs.append(pubsub)
        for a, b in job["edges"]:
            address = hosts[b].get_addrs()[0]
            await hosts[a].connect(info_from_p2p_addr(address))
        async with trio.open_nursery() as nursery:
            for pubsub in pubsubs:
                nursery.start_soon(counter.listen, await pubsub.subscribe(TOPIC))
            await trio.sleep(job["warmup_s"])
            published_s = await publish(job, pubsubs)
            await trio.sleep(job["settle_s"])
            nursery.cancel_scope.cancel()
    return figures(nodes, published_s, counter)


async def publish(job: dict[str, Any], pubsubs: list[Pubsub]) -> dict[bytes, float]:
    published_s: dict[bytes, float] = {}
    for number, origin in enumerate(job["origins"]):
        key = number.to_bytes(8)
        published_s[key] = trio.current_time()
        await pubsubs[origin].publish(TOPIC, key + bytes(job["body_bytes"] - 8))
        await trio.sleep(job["interval_ms"] / 1000)
    return published_s


def figures(nodes: int, published_s: dict[bytes, float], counter: Counter) -> dict[str, Any]:
    reach_ms: list[float] = []
    for key, start_s in published_s.items():
        delivered = counter.delivered_s.get(key, [])
        if len(delivered) == nodes:
            reach_ms.append((max(delivered) - start_s) * 1000)
    copies = sum(counter.copies.get(key, 0) for key in published_s)
    deliveries = len(published_s) * (nodes - 1)
    quantiles = (
        statistics.quantiles(reach_ms, n=100, method="inclusive") if len(reach_ms) > 1 else None
    )
    return {
        "nodes": nodes,
        "messages": len(published_s),
        "complete": len(reach_ms),
        "reach_all_ms_p50": round(quantiles[49], 3) if quantiles else None,
        "reach_all_ms_p99": round(quantiles[98], 3) if quantiles else None,
        "copies_per_delivery": round(copies / deliveries, 3) if deliveries else None,
    }


def main() -> int:
    job = json.load(sys.stdin)
    result = trio.run(run, job)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
