"""Offer gossip benchmark: eager push + lazy pull against flooding and libp2p gossipsub.

A discrete-event simulator runs N ``GossipEngine`` instances on a seeded trust
graph, with a one-way latency per link (--latency-ms; one round trip is twice
that) and a modelled processing cost: each node handles its messages one at a
time, --message-cost-ms per message received (decoding, the frame's signature)
plus --verify-cost-ms per item the engine verifies (two ed25519 verifications:
about 2 x 41 us with PyNaCl on the machine this was written on). Items carry a
400-byte body, an offer-like payload signed by a maker key and by the origin
validator, and the verify callback really checks both signatures
(node.signatures), so the CPU cost is real even if the clock is simulated.

Phases, each run for the lazy engine (eager fanout GOSSIP_EAGER_FANOUT, the rest
HAVE/WANT) and for flooding (``eager_fanout=None``) on the same graph and seed:

1. --items items from random origins, one every --interval-ms: time for each
   to reach every node (p50, p99; milliseconds and round trips), full copies
   received per delivery (a delivery is one node other than the origin getting
   the item), and HAVE entries / WANT names per delivery.
2. The graph is cut in two (nodes below N/2 and the rest) for --partition-ms;
   --partition-items items are published on both sides; then every cut link
   comes back (PeerConnected on both ends, as the runtime does). Catch-up is
   the time from the heal until every node holds every item.

Timers tick every TICK_INTERVAL_MS, as in the runtime. Topologies: ``earlier3``
(node i links to 3 random earlier nodes: ``topology(n, seed)``, shared with the
gossipsub peer and meant for the later QUIC measurement) and ``degree4to6`` (a
random graph with degrees 4 to 6, the issue's). When .venv-gossipsub exists
(``python3 -m venv .venv-gossipsub && .venv-gossipsub/bin/pip install
libp2p==0.8.1``), tools/gossipsub_peer.py runs libp2p gossipsub hosts on
loopback on the ``earlier3`` graph in the same run and its figures are printed
alongside; its times are real (TCP, noise, yamux, one Python process), ours are
simulated, so compare copies and rounds, and read its seconds as a reference.

    python -m tools.bench_gossip [--nodes 100] [--seed 1] [--items 100] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.gossip import (
    ActionPublish,
    Effect,
    GossipEngine,
    GossipHave,
    GossipItem,
    GossipItems,
    GossipMessage,
    GossipWant,
    Input,
    NotifyStored,
    PeerConnected,
    SendToPeer,
    TimerTick,
    receive,
)
from node.limits import GOSSIP_EAGER_FANOUT, TICK_INTERVAL_MS
from node.signatures import NodeKey, verify

START_MS = 1_800_000_000_000
LIFETIME_MS = 3_600_000
BODY_BYTES = 400
PAYLOAD_BYTES = BODY_BYTES - 2 * 64
KIND_BENCH = b"offer"
GOSSIPSUB_PYTHON = Path(__file__).resolve().parent.parent / ".venv-gossipsub" / "bin" / "python"
GOSSIPSUB_PEER = Path(__file__).resolve().parent / "gossipsub_peer.py"

Edge = tuple[int, int]


# --- topologies ------------------------------------------------------------------------


def topology(n: int, seed: int) -> list[Edge]:
    """Node i links to 3 random earlier nodes (all of them while fewer exist). The
    graph of this benchmark, its gossipsub peer and the QUIC measurement to come."""
    rng = random.Random(seed)
    return [(j, i) for i in range(1, n) for j in sorted(rng.sample(range(i), min(3, i)))]


def degree_graph(n: int, seed: int, low: int = 4, high: int = 6) -> list[Edge]:
    """A connected random graph whose degrees lie in low..high (a random ring, then
    random links between nodes still under their drawn degree)."""
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    edges = {(min(a, b), max(a, b)) for a, b in zip(order, order[1:] + order[:1], strict=True)}
    wanted = {node: rng.randint(low, high) for node in range(n)}
    degree = dict.fromkeys(range(n), 2)
    for _ in range(20 * n):
        open_nodes = [node for node in range(n) if degree[node] < wanted[node]]
        if len(open_nodes) < 2:
            break
        a, b = rng.sample(open_nodes, 2)
        if (min(a, b), max(a, b)) not in edges:
            edges.add((min(a, b), max(a, b)))
            degree[a] += 1
            degree[b] += 1
    return sorted(edges)


# --- items: an offer-like body with two signatures -------------------------------------


class Signer:
    """Validator keys (the gossip origins) and one maker key per validator."""

    def __init__(self, n: int, seed: int) -> None:
        rng = random.Random(seed ^ 0x5EED)
        self.validators = [NodeKey(rng.randbytes(32)) for _ in range(n)]
        self.makers = [NodeKey(rng.randbytes(32)) for _ in range(n)]
        self.keys = [key.public_key for key in self.validators]

    def item(self, origin: int, number: int, now_ms: int) -> GossipItem:
        key = self.keys[origin]
        item_id = number.to_bytes(8)
        expires_ms = now_ms + LIFETIME_MS
        head = _binding(key, item_id, 1, expires_ms) + self.makers[origin].public_key
        payload = head + bytes(PAYLOAD_BYTES - len(head))
        maker_signature = self.makers[origin].sign(KIND_BENCH, payload)
        validator_signature = self.validators[origin].sign(KIND_BENCH, payload + maker_signature)
        body = payload + maker_signature + validator_signature
        return GossipItem(key, "offer", item_id, 1, expires_ms, body)


def _binding(origin: bytes, item_id: bytes, seq: int, expires_ms: int) -> bytes:
    return origin + item_id + seq.to_bytes(8) + expires_ms.to_bytes(8)


def verify_item(item: GossipItem) -> str | None:
    """The benchmark's verify callback: the body names the item, the maker signed
    the payload and the origin validator signed both (two ed25519 checks)."""
    payload, maker_signature = item.body[:PAYLOAD_BYTES], item.body[PAYLOAD_BYTES:-64]
    binding = _binding(item.origin, item.item_id, item.seq, item.expires_ms)
    if len(item.body) != BODY_BYTES or not payload.startswith(binding):
        return "body does not name the item"
    maker = payload[len(binding) : len(binding) + 32]
    if not verify(maker, KIND_BENCH, payload, maker_signature):
        return "bad maker signature"
    if not verify(item.origin, KIND_BENCH, payload + maker_signature, item.body[-64:]):
        return "bad validator signature"
    return None


# --- the simulator ---------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    latency_ms: float = 0.5
    message_cost_ms: float = 0.05
    verify_cost_ms: float = 0.1


@dataclass
class Tally:
    """Per item: when it was published, when each node stored it, what was sent."""

    published_ms: dict[bytes, float] = field(default_factory=dict)
    stored_ms: dict[bytes, dict[int, float]] = field(default_factory=dict)
    copies: dict[bytes, int] = field(default_factory=dict)
    haves: dict[bytes, int] = field(default_factory=dict)
    wants: dict[bytes, int] = field(default_factory=dict)


class Simulation:
    """N engines, FIFO single-server nodes, links with a fixed one-way latency."""

    def __init__(
        self, n: int, edges: list[Edge], signer: Signer, model: Model, fanout: int | None
    ) -> None:
        self.keys = signer.keys
        self.index = {key: i for i, key in enumerate(self.keys)}
        self.model = model
        self.verifications = 0
        neighbours: dict[int, list[int]] = {i: [] for i in range(n)}
        for a, b in edges:
            neighbours[a].append(b)
            neighbours[b].append(a)
        self.engines = [
            GossipEngine(self.keys[i], [self.keys[p] for p in neighbours[i]], self._verify, fanout)
            for i in range(n)
        ]
        self.busy_ms = [0.0] * n
        self.events: list[tuple[float, int, Callable[[float], None]]] = []
        self.counter = 0
        self.cut: set[tuple[int, int]] = set()
        self.tally = Tally()

    def _verify(self, item: GossipItem) -> str | None:
        self.verifications += 1
        return verify_item(item)

    def at(self, time_ms: float, action: Callable[[float], None]) -> None:
        self.counter += 1
        heapq.heappush(self.events, (time_ms, self.counter, action))

    def run_until(self, end_ms: float) -> None:
        while self.events and self.events[0][0] <= end_ms:
            time_ms, _, action = heapq.heappop(self.events)
            action(time_ms)

    def handle(self, node: int, event: Input, arrival_ms: float, cost_ms: float) -> None:
        start_ms = max(arrival_ms, self.busy_ms[node])
        verified = self.verifications
        effects = self.engines[node].handle(event, START_MS + int(start_ms))
        done_ms = start_ms + cost_ms + (self.verifications - verified) * self.model.verify_cost_ms
        self.busy_ms[node] = done_ms
        self._carry_out(node, effects, done_ms)

    def _carry_out(self, node: int, effects: list[Effect], done_ms: float) -> None:
        for effect in effects:
            if isinstance(effect, NotifyStored):
                self.tally.stored_ms.setdefault(effect.item.item_id, {})[node] = done_ms
            elif isinstance(effect, SendToPeer):
                peer = self.index[effect.peer]
                if (min(node, peer), max(node, peer)) not in self.cut:
                    self.at(done_ms + self.model.latency_ms, self._deliver(node, peer, effect))

    def _deliver(self, node: int, peer: int, send: SendToPeer) -> Callable[[float], None]:
        def deliver(time_ms: float) -> None:
            self._count(send.message)
            event = receive(self.keys[node], send.message)
            self.handle(peer, event, time_ms, self.model.message_cost_ms)

        return deliver

    def _count(self, message: GossipMessage) -> None:
        tally = self.tally
        if isinstance(message, GossipItems):
            for item in message.items:
                tally.copies[item.item_id] = tally.copies.get(item.item_id, 0) + 1
        elif isinstance(message, GossipHave):
            for name, _ in message.entries:
                tally.haves[name[2]] = tally.haves.get(name[2], 0) + 1
        elif isinstance(message, GossipWant):
            for name in message.names:
                tally.wants[name[2]] = tally.wants.get(name[2], 0) + 1

    def publish(self, node: int, item: GossipItem, time_ms: float) -> None:
        def action(now_ms: float) -> None:
            self.tally.published_ms[item.item_id] = now_ms
            self.tally.stored_ms.setdefault(item.item_id, {})
            self.handle(node, ActionPublish(item), now_ms, self.model.message_cost_ms)

        self.at(time_ms, action)

    def tick_from(self, time_ms: float) -> None:
        def tick(now_ms: float) -> None:
            for node in range(len(self.engines)):
                self.handle(node, TimerTick(), now_ms, 0.0)
            self.at(now_ms + TICK_INTERVAL_MS, tick)

        self.at(time_ms, tick)

    def heal(self, time_ms: float) -> None:
        def action(now_ms: float) -> None:
            links, self.cut = sorted(self.cut), set()
            for a, b in links:
                self.handle(a, PeerConnected(self.keys[b]), now_ms, self.model.message_cost_ms)
                self.handle(b, PeerConnected(self.keys[a]), now_ms, self.model.message_cost_ms)

        self.at(time_ms, action)


# --- one run: spread, then partition and heal -------------------------------------------


@dataclass(frozen=True)
class Settings:
    nodes: int
    seed: int
    items: int
    interval_ms: float
    partition_items: int
    partition_ms: float
    model: Model


def run_mode(edges: list[Edge], settings: Settings, fanout: int | None) -> dict[str, Any]:
    n, rng = settings.nodes, random.Random(settings.seed)
    signer = Signer(n, settings.seed)
    sim = Simulation(n, edges, signer, settings.model, fanout)
    sim.tick_from(0.0)
    spread_ids = []
    for number in range(settings.items):
        time_ms = number * settings.interval_ms
        origin = rng.randrange(n)
        sim.publish(origin, signer.item(origin, number, START_MS + int(time_ms)), time_ms)
        spread_ids.append(number.to_bytes(8))
    settle_ms = settings.items * settings.interval_ms + 1_000
    sim.run_until(settle_ms)
    spread = _spread_figures(sim.tally, spread_ids, n, settings.model)
    heal_ms = settle_ms + settings.partition_ms
    sim.cut = {(a, b) for a, b in edges if (a < n // 2) != (b < n // 2)}
    cut_links = len(sim.cut)
    partition_ids = []
    for number in range(settings.partition_items):
        side = range(0, n // 2) if number % 2 == 0 else range(n // 2, n)
        origin = rng.choice(side)
        time_ms = settle_ms + (number + 1) * settings.partition_ms / (settings.partition_items + 2)
        item = signer.item(origin, settings.items + number, START_MS + int(time_ms))
        sim.publish(origin, item, time_ms)
        partition_ids.append(item.item_id)
    sim.heal(heal_ms)
    sim.run_until(heal_ms + 30_000)
    catch_up = _catch_up_figures(sim.tally, partition_ids, n, heal_ms)
    return {"spread": spread, "partition": {"cut_links": cut_links, **catch_up}}


def _spread_figures(tally: Tally, ids: list[bytes], n: int, model: Model) -> dict[str, Any]:
    reach = []
    for item_id in ids:
        stored = tally.stored_ms[item_id]
        if len(stored) == n:
            reach.append(max(stored.values()) - tally.published_ms[item_id])
    deliveries = len(ids) * (n - 1)
    round_trip_ms = 2 * model.latency_ms
    p50, p99 = _percentile(reach, 50), _percentile(reach, 99)
    return {
        "items": len(ids),
        "complete": len(reach),
        "reach_all_ms_p50": round(p50, 3),
        "reach_all_ms_p99": round(p99, 3),
        "reach_all_round_trips_p50": round(p50 / round_trip_ms, 2),
        "reach_all_round_trips_p99": round(p99 / round_trip_ms, 2),
        "copies_per_delivery": round(sum(tally.copies.get(i, 0) for i in ids) / deliveries, 3),
        "copies_per_node_per_item": round(
            sum(tally.copies.get(i, 0) for i in ids) / (len(ids) * n), 3
        ),
        "have_entries_per_delivery": round(sum(tally.haves.get(i, 0) for i in ids) / deliveries, 3),
        "want_names_per_delivery": round(sum(tally.wants.get(i, 0) for i in ids) / deliveries, 3),
    }


def _catch_up_figures(tally: Tally, ids: list[bytes], n: int, heal_ms: float) -> dict[str, Any]:
    complete = all(len(tally.stored_ms[i]) == n for i in ids)
    last_ms = max(max(tally.stored_ms[i].values()) for i in ids) if ids else heal_ms
    copies = sum(tally.copies.get(i, 0) for i in ids)
    return {
        "items": len(ids),
        "complete": complete,
        "catch_up_ms": round(max(0.0, last_ms - heal_ms), 3) if complete else None,
        "copies_per_delivery": round(copies / max(1, len(ids) * (n - 1)), 3),
    }


def _percentile(values: list[float], percent: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


# --- gossipsub, in its own venv --------------------------------------------------------


def run_gossipsub(
    n: int, edges: list[Edge], seed: int, messages: int, interval_ms: float
) -> dict[str, Any] | None:
    """tools/gossipsub_peer.py under .venv-gossipsub's python; None without the venv."""
    if not GOSSIPSUB_PYTHON.exists():
        return None
    rng = random.Random(seed)
    job = {
        "nodes": n,
        "edges": edges,
        "origins": [rng.randrange(n) for _ in range(messages)],
        "interval_ms": interval_ms,
        "body_bytes": BODY_BYTES,
        "warmup_s": 4,
        "settle_s": 3,
    }
    done = subprocess.run(
        [str(GOSSIPSUB_PYTHON), str(GOSSIPSUB_PEER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- the command -----------------------------------------------------------------------

TOPOLOGIES: dict[str, Callable[[int, int], list[Edge]]] = {
    "earlier3": topology,
    "degree4to6": degree_graph,
}


def parse_counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not like 2,3,4") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: positive integers, comma-separated")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--nodes", type=int, default=100)
    add("--seed", type=int, default=1)
    add("--items", type=int, default=100, help="published in the spread phase")
    add("--interval-ms", type=float, default=10.0, help="between two publishes")
    add("--fanout", type=parse_counts, default=[GOSSIP_EAGER_FANOUT], help="e.g. 2,3,4")
    add("--latency-ms", type=float, default=Model.latency_ms, help="one way, per link")
    add("--message-cost-ms", type=float, default=Model.message_cost_ms)
    add("--verify-cost-ms", type=float, default=Model.verify_cost_ms, help="per item verified")
    add("--partition-ms", type=float, default=2_000.0)
    add("--partition-items", type=int, default=20)
    add("--topologies", default="earlier3,degree4to6")
    add("--gossipsub-nodes", type=parse_counts, default=[10, 20], help="one process: keep small")
    add("--gossipsub-messages", type=int, default=30)
    add("--gossipsub-interval-ms", type=float, default=200.0, help="below this it queues")
    add("--skip-gossipsub", action="store_true")
    add("--json", action="store_true")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    model = Model(args.latency_ms, args.message_cost_ms, args.verify_cost_ms)
    settings = Settings(
        args.nodes,
        args.seed,
        args.items,
        args.interval_ms,
        args.partition_items,
        args.partition_ms,
        model,
    )
    results: dict[str, Any] = {"settings": {**vars(args), "fanout": args.fanout}}
    for name in args.topologies.split(","):
        edges = TOPOLOGIES[name](args.nodes, args.seed)
        modes: dict[str, Any] = {"flood": run_mode(edges, settings, None)}
        for fanout in args.fanout:
            modes[f"eager{fanout}"] = run_mode(edges, settings, fanout)
        degrees = [sum(node in edge for edge in edges) for node in range(args.nodes)]
        results[name] = {
            "links": len(edges),
            "degree_min": min(degrees),
            "degree_mean": round(2 * len(edges) / args.nodes, 2),
            "degree_max": max(degrees),
            "modes": modes,
        }
    if not args.skip_gossipsub:
        results["gossipsub"] = [side_by_side(args, settings, n) for n in args.gossipsub_nodes]
    return results


def side_by_side(args: argparse.Namespace, settings: Settings, n: int) -> dict[str, Any]:
    """gossipsub and our engine on the same ``earlier3`` graph of ``n`` nodes."""
    edges = topology(n, args.seed)
    ours = dataclasses.replace(settings, nodes=n, partition_items=0)
    gossipsub = run_gossipsub(
        n, edges, args.seed, args.gossipsub_messages, args.gossipsub_interval_ms
    )
    return {
        "nodes": n,
        "gossipsub": gossipsub,
        "flood": run_mode(edges, ours, None)["spread"],
        "eager": run_mode(edges, ours, args.fanout[0])["spread"],
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"{args.nodes} nodes, seed {args.seed}, {args.items} items every {args.interval_ms} ms;"
        f" latency {args.latency_ms} ms one way (1 RT = {2 * args.latency_ms} ms),"
        f" {args.message_cost_ms} ms per message + {args.verify_cost_ms} ms per item verified"
    )
    for name in args.topologies.split(","):
        graph = results[name]
        print(
            f"\n{name}: {graph['links']} links, degree {graph['degree_min']}.."
            f"{graph['degree_max']} (mean {graph['degree_mean']})"
        )
        print(
            f"  {'mode':8} {'all p50 RT':>10} {'p99 RT':>7} {'p50 ms':>7} {'p99 ms':>7}"
            f" {'copies':>7} {'HAVE':>6} {'WANT':>6} {'catch-up ms':>11} {'heal copies':>11}"
        )
        for mode, figures in graph["modes"].items():
            spread, cut = figures["spread"], figures["partition"]
            print(
                f"  {mode:8} {spread['reach_all_round_trips_p50']:>10} "
                f"{spread['reach_all_round_trips_p99']:>7} {spread['reach_all_ms_p50']:>7} "
                f"{spread['reach_all_ms_p99']:>7} {spread['copies_per_delivery']:>7} "
                f"{spread['have_entries_per_delivery']:>6} {spread['want_names_per_delivery']:>6} "
                f"{cut['catch_up_ms']!s:>11} {cut['copies_per_delivery']:>11}"
            )
    for row in results.get("gossipsub", []):
        print(
            f"\nearlier3, {row['nodes']} nodes: gossipsub (real loopback) next to ours (simulated)"
        )
        gossipsub = row["gossipsub"]
        if gossipsub is None:
            print("  gossipsub: no .venv-gossipsub (see the module docstring)")
        elif "error" in gossipsub:
            print(f"  gossipsub: {gossipsub['error']}")
        else:
            print(
                f"  gossipsub  all p50 {gossipsub['reach_all_ms_p50']} ms, p99"
                f" {gossipsub['reach_all_ms_p99']} ms, {gossipsub['complete']}/"
                f"{gossipsub['messages']} complete, copies {gossipsub['copies_per_delivery']}"
            )
        for mode in ("flood", "eager"):
            spread = row[mode]
            print(
                f"  {mode:10} all p50 {spread['reach_all_ms_p50']} ms"
                f" ({spread['reach_all_round_trips_p50']} RT), p99 {spread['reach_all_ms_p99']}"
                f" ms, copies {spread['copies_per_delivery']}"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = measure(args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
