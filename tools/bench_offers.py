"""Offers over real QUIC: spread, copies, catch-up and search on real node processes.

Starts --nodes real ``ledgermesh run`` processes on loopback, linked as
``tools.bench_gossip.topology(n, seed)`` (node i trusts 3 random earlier nodes,
with USD and EUR credit both ways), one customer with a USD deposit at every
node, and waits until the validator endorsements have spread (before that, a
node refuses offers of validators it does not trust yet). Then, in one run:

1. Spread: --offers offers, each from the customer of a random node (the seeded
   origins gossipsub gets too), one every --interval-ms, through the customer
   API (``offer_create`` with a signed ``Offer``). Nothing polls the nodes
   while they spread: every node journals the offer with the time of the pass
   that stored it (``offers_changes``' ``at_ms``; one machine, one clock), read
   afterwards. Reach-all is the last node's ``at_ms`` minus the origin's
   (p50, p99; in ms and in round trips); one hop is a direct neighbour's.
   Copies: the nodes' ``status`` ``gossip_received.offer`` counters (full items
   received, duplicates included; HAVE entries; WANT names), per delivery (one
   node other than the origin getting one offer) and per node per offer.
2. Round trip: p50 of --round-trips operator ``status`` calls on one open
   QUIC connection (client to node and back, plus one pass of the node's loop;
   the kernel's loopback alone is tens of microseconds). Reach times are also
   given in these round trips.
3. Catch-up: the last quarter of the nodes (the rest, an earlier prefix of the
   graph, stays connected) is frozen with SIGSTOP; --partition-offers offers are
   made on the running side; after --freeze-s the frozen nodes get SIGCONT.
   Catch-up is the time from SIGCONT until every thawed node has stored every
   one of them (their ``at_ms``).
4. Search: ``offers_search`` through the API of a real node whose book holds
   --search-offers offers from 4 validators (API round trip and the node's
   pass included), next to ``tools.bench_book`` (the in-process ``OrderBook``
   with --book-offers live offers: the search itself). While the book fills
   (every node verifying every offer), an operator ``status`` call to the
   searched node every LOAD_STATUS_INTERVAL_S times its API under gossip load.
5. libp2p gossipsub (tools/gossipsub_peer.py under .venv-gossipsub, D=6/4/12,
   1 s heartbeat, eclipse protection off) on the same graph, the same origins
   and interval, after our nodes are stopped: reach-all and copies per
   delivery, side by side with ratios.

    python -m tools.bench_offers [--nodes 20] [--offers 30] [--seed 1] [--json] [--no-gossipsub]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.api.client import ApiClient, open_api_client
from node.api.protocol import ApiError
from node.crypto import NodeKey, generate_key
from node.ledger.signed import Identity, Offer, SignedIdentity, SignedInstruction
from node.logs import configure_logging
from node.wire import pack
from tools.bench_gossip import Edge, run_gossipsub, topology
from tools.mesh import LocalNode, free_udp_ports

UNITS = ("1E-2 USD", "1E-2 EUR")
CREDIT = "100000.00"
DEPOSIT = 10_000_000  # 100,000.00 USD per customer: every offer reserves what it sells
HOUR_MS = 3_600_000
SEARCH_VALIDATORS = 4
SEARCH_MAKERS_PER_VALIDATOR = 10  # OFFERS_LIVE_PER_MAKER_MAX and OFFERS_OPEN_PER_USER_MAX: 100
SEARCH_PACE_S = 0.2  # per validator: 20 offers/s in all, each verified by every node
LOAD_STATUS_INTERVAL_S = 0.1  # status calls to the searched node while the book fills


def now_ms() -> int:
    return int(time.time() * 1000)


# --- the mesh --------------------------------------------------------------------------


@dataclass
class Maker:
    address: str
    key: NodeKey
    node: LocalNode
    nonce: int  # the last one used


@dataclass
class Mesh:
    nodes: list[LocalNode]
    edges: list[Edge]
    makers: list[Maker]  # one at every node
    asset: str  # every offer buys it, so one ``offers_changes`` feed sees them all

    def neighbours(self, index: int) -> list[int]:
        return [b if a == index else a for a, b in self.edges if index in (a, b)]


def _in_parallel(jobs: Iterable[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def make_mesh(base: Path, n: int, edges: list[Edge]) -> list[LocalNode]:
    """Directories, trust with USD and EUR credit on every link, and [units]."""
    names = [f"bank-{i:02d}.test" for i in range(n)]
    nodes = [
        LocalNode(name, base / name, port)
        for name, port in zip(names, free_udp_ports(n), strict=True)
    ]
    _in_parallel(node.init for node in nodes)
    peers: dict[int, list[int]] = {i: [] for i in range(n)}
    for a, b in edges:
        peers[a].append(b)
        peers[b].append(a)
    limits = [f"{unit}={CREDIT}" for unit in UNITS]

    def trust_all(i: int) -> Callable[[], None]:
        def job() -> None:
            for j in peers[i]:
                for attempt in range(3):  # a peer's config may be mid-rewrite by its own job
                    try:
                        nodes[i].trust(nodes[j], *limits)
                        break
                    except RuntimeError:
                        if attempt == 2:
                            raise
                        time.sleep(0.2)

        return job

    _in_parallel(trust_all(i) for i in range(n))
    for node in nodes:
        config = node.directory / "node.toml"
        units = "".join(f'"{unit}" = "{node.name}/{unit[-3:]}"\n' for unit in UNITS)
        config.write_text(config.read_text() + "\n[units]\n" + units)
    return nodes


def freeze(node: LocalNode) -> None:
    """SIGSTOP: the process keeps its sockets; datagrams wait in the kernel."""
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)


def thaw(node: LocalNode) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGCONT)


async def start(nodes: list[LocalNode]) -> None:
    for node in nodes:
        node.start("warning")
    for node in nodes:
        await node.wait_ready(timeout_s=180)
    for node in nodes:
        for code in ("USD", "EUR"):
            await node.call("asset_define", code=code, decimals=2)


async def register(node: LocalNode, who: str) -> Maker:
    key, address = generate_key(), f"{who}@{node.name}"
    identity = Identity(address, key.public_key)
    request = identity.signing_request()
    signed = SignedIdentity(identity, key.sign(request.kind, request.payload))
    await node.call("user_register", identity=pack(signed.to_wire()), kyc_level=0)
    await node.call("deposit", address=address, uai=f"{node.name}/USD", amount=DEPOSIT)
    async with open_api_client(node.directory, key=key) as client:
        account = await client.call("account")
    return Maker(address, key, node, account["last_nonce"])


async def wait_endorsed(nodes: list[LocalNode], edges: list[Edge], timeout_s: float) -> float:
    """Seconds until every node stored every endorsement (one per node per peer)."""
    started, wanted = time.monotonic(), 2 * len(edges)
    with trio.move_on_after(timeout_s):
        while True:
            counts = [await gossip_counts(node, "validator") for node in nodes]
            if all(count["stored"] >= wanted for count in counts):
                break
            await trio.sleep(0.5)
    return round(time.monotonic() - started, 1)


async def gossip_counts(node: LocalNode, kind: str) -> dict[str, int]:
    status = await node.call("status")
    zero = {"items": 0, "have_entries": 0, "want_names": 0, "stored": 0}
    counts: dict[str, int] = status.get("gossip_received", {}).get(kind, zero)
    return counts


# --- offers ----------------------------------------------------------------------------


async def create_offer(client: ApiClient, maker: Maker, sell: int, buy_uai: str, buy: int) -> str:
    """One offer through the customer API (``client`` is the maker's); its id."""
    made_ms = now_ms()
    offer = Offer(
        maker.address, f"{maker.node.name}/USD", sell, buy_uai, buy, 1, 0,
        made_ms + HOUR_MS, maker.nonce + 1, made_ms,
    )  # fmt: skip
    request = offer.signing_request()
    key = maker.key
    signed = SignedInstruction(offer, key.public_key, key.sign(request.kind, request.payload))
    view = await client.call("offer_create", instruction=pack(signed.to_wire()))
    maker.nonce += 1
    offer_id: str = view["offer_id"]
    return offer_id


async def create_one(maker: Maker, number: int, buy_uai: str) -> str:
    async with open_api_client(maker.node.directory, key=maker.key) as client:
        return await create_offer(client, maker, 100 + number, buy_uai, 110 + number)


async def arrivals(client: ApiClient, asset: str, after: int) -> dict[str, int]:
    """Offer id -> ``at_ms`` of its first journal entry after cursor ``after``."""
    seen: dict[str, int] = {}
    while True:
        answer = await client.call("offers_changes", asset=asset, after=after)
        for change in answer["changes"]:
            if change["change"] == "new":
                seen.setdefault(change["offer"]["offer_id"], change["at_ms"])
        if not answer["changes"]:
            return seen
        after = answer["cursor"]


async def cursor_of(node: LocalNode, asset: str) -> int:
    cursor: int = (await node.call("offers_changes", asset=asset))["cursor"]
    return cursor


async def wait_arrivals(
    nodes: list[LocalNode], asset: str, cursors: list[int], ids: list[str], timeout_s: float
) -> list[dict[str, int]]:
    """Each node's arrivals of ``ids`` once all have them (or at the deadline)."""
    found: list[dict[str, int]] = [{} for _ in nodes]
    with trio.move_on_after(timeout_s):
        while True:
            for index, node in enumerate(nodes):
                if len(found[index]) < len(ids):
                    async with node.client() as client:
                        seen = await arrivals(client, asset, cursors[index])
                    found[index] = {i: seen[i] for i in ids if i in seen}
            if all(len(seen) == len(ids) for seen in found):
                break
            await trio.sleep(0.2)
    return found


def percentile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- 1. spread -------------------------------------------------------------------------


async def counters(nodes: list[LocalNode]) -> list[dict[str, int]]:
    return [await gossip_counts(node, "offer") for node in nodes]


def counted(before: list[dict[str, int]], after: list[dict[str, int]], name: str) -> int:
    return sum(later[name] - earlier[name] for earlier, later in zip(before, after, strict=True))


async def spread(mesh: Mesh, origins: list[int], interval_s: float) -> dict[str, Any]:
    nodes, n = mesh.nodes, len(mesh.nodes)
    cursors = [await cursor_of(node, mesh.asset) for node in nodes]
    before = await counters(nodes)
    ids = []
    for number, origin in enumerate(origins):
        deadline = trio.current_time() + interval_s
        ids.append(await create_one(mesh.makers[origin], number, mesh.asset))
        await trio.sleep_until(deadline)
    found = await wait_arrivals(nodes, mesh.asset, cursors, ids, 60)
    after = await counters(nodes)
    reach_ms, hop_ms = [], []
    for offer_id, origin in zip(ids, origins, strict=True):
        if all(offer_id in seen for seen in found):
            start_ms = found[origin][offer_id]
            reach_ms.append(float(max(seen[offer_id] for seen in found) - start_ms))
            hop_ms += [float(found[j][offer_id] - start_ms) for j in mesh.neighbours(origin)]
    deliveries = len(ids) * (n - 1)
    return {
        "offers": len(ids),
        "complete": len(reach_ms),
        "reach_all_ms": reach_ms,
        "reach_all_ms_p50": rounded(percentile(reach_ms, 50), 1),
        "reach_all_ms_p99": rounded(percentile(reach_ms, 99), 1),
        "one_hop_ms_p50": rounded(percentile(hop_ms, 50), 1),
        "copies_per_delivery": round(counted(before, after, "items") / deliveries, 3),
        "copies_per_node_per_offer": round(counted(before, after, "items") / (len(ids) * n), 3),
        "have_entries_per_delivery": round(counted(before, after, "have_entries") / deliveries, 3),
        "want_names_per_delivery": round(counted(before, after, "want_names") / deliveries, 3),
    }


# --- 2. round trip ---------------------------------------------------------------------


async def timed_calls(client: ApiClient, count: int, op: str, **arguments: Any) -> list[float]:
    """Milliseconds of ``count`` sequential calls on one open connection."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await client.call(op, **arguments)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def round_trip(node: LocalNode, count: int) -> dict[str, Any]:
    async with node.client() as client:
        await timed_calls(client, 5, "status")  # warm the connection
        times = await timed_calls(client, count, "status")
    return {
        "calls": count,
        "round_trip_ms_p50": rounded(percentile(times, 50), 3),
        "round_trip_ms_p99": rounded(percentile(times, 99), 3),
    }


# --- 3. catch-up after a partition heals ----------------------------------------------


async def partition(
    mesh: Mesh, count: int, interval_s: float, freeze_s: float, rng: random.Random
) -> dict[str, Any]:
    """Freeze the last quarter, make offers on the rest, thaw, time the catch-up."""
    nodes, n = mesh.nodes, len(mesh.nodes)
    cut = n - max(1, n // 4)
    running, frozen = nodes[:cut], nodes[cut:]
    cursors = [await cursor_of(node, mesh.asset) for node in nodes]
    before = await counters(frozen)
    cut_links = sum(1 for a, b in mesh.edges if (a < cut) != (b < cut))
    for node in frozen:
        freeze(node)
    frozen_at = trio.current_time()
    ids = []
    for number in range(count):
        deadline = trio.current_time() + interval_s
        ids.append(await create_one(mesh.makers[rng.randrange(cut)], 1_000 + number, mesh.asset))
        await trio.sleep_until(deadline)
    on_running = await wait_arrivals(running, mesh.asset, cursors[:cut], ids, 30)
    await trio.sleep_until(frozen_at + freeze_s)
    for node in frozen:
        thaw(node)
    healed_ms = now_ms()
    found = await wait_arrivals(frozen, mesh.asset, cursors[cut:], ids, 120)
    after = await counters(frozen)
    complete = all(len(seen) == len(ids) for seen in found)
    last_ms = max((at for seen in found for at in seen.values()), default=healed_ms)
    deliveries = len(ids) * len(frozen)
    return {
        "frozen_nodes": len(frozen),
        "cut_links": cut_links,
        "frozen_s": freeze_s,
        "offers": len(ids),
        "running_side_complete": all(len(seen) == len(ids) for seen in on_running),
        "complete": complete,
        "catch_up_ms": max(0, last_ms - healed_ms) if complete else None,
        "copies_per_delivery": round(counted(before, after, "items") / max(1, deliveries), 3),
    }


# --- 4. search ---------------------------------------------------------------------------


async def fill_book(
    mesh: Mesh, total: int, rng: random.Random, failures: list[str]
) -> list[LocalNode]:
    """``total`` offers from SEARCH_VALIDATORS validators, their customers' in parallel;
    the codes of the calls that failed go to ``failures``."""
    validators = mesh.nodes[1 : 1 + SEARCH_VALIDATORS]
    per_maker = total // (len(validators) * SEARCH_MAKERS_PER_VALIDATOR)
    makers = [
        await register(node, f"maker{number}")
        for node in validators
        for number in range(SEARCH_MAKERS_PER_VALIDATOR)
    ]

    async def make(node: LocalNode) -> None:
        own = [maker for maker in makers if maker.node is node]
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(open_api_client(node.directory, key=maker.key))
                for maker in own
            ]
            for _ in range(per_maker):
                for client, maker in zip(clients, own, strict=True):
                    sell = rng.randint(100, 10_000)
                    buy = sell * rng.randint(80, 120) // 100
                    try:
                        await create_offer(client, maker, sell, mesh.asset, buy)
                    except ApiError as error:  # a slow answer on a loaded machine: go on
                        failures.append(error.code)
                        maker.nonce = (await client.call("account"))["last_nonce"]
                    await trio.sleep(SEARCH_PACE_S)

    async with trio.open_nursery() as nursery:
        for node in validators:
            nursery.start_soon(make, node)
    return validators


async def status_under_load(node: LocalNode, done: trio.Event, times: list[float]) -> None:
    """Time ``status`` calls to ``node`` until ``done``; a call that times out counts
    with the time it was given."""
    async with open_api_client(node.directory) as client:
        while not done.is_set():
            started = time.perf_counter()
            try:
                await client.call("status")
            except ApiError as error:
                if error.code != "timeout":
                    raise
            times.append((time.perf_counter() - started) * 1000)
            await trio.sleep(LOAD_STATUS_INTERVAL_S)


async def search(mesh: Mesh, total: int, searches: int, rng: random.Random) -> dict[str, Any]:
    searched = mesh.nodes[0]
    stored_before = (await gossip_counts(searched, "offer"))["stored"]
    started = time.monotonic()
    failures: list[str] = []
    under_load: list[float] = []
    filled = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(status_under_load, searched, filled, under_load)
        validators = await fill_book(mesh, total, rng, failures)
        filled.set()
    made_s = time.monotonic() - started
    with trio.move_on_after(60):
        while (await gossip_counts(searched, "offer"))["stored"] - stored_before < total:
            await trio.sleep(0.5)
    held = (await gossip_counts(searched, "offer"))["stored"] - stored_before
    sell = f"{validators[0].name}/USD"
    async with searched.client() as client:
        await timed_calls(client, 5, "status")
        bare = await timed_calls(client, searches, "status")
        by_pair = await timed_calls(
            client, searches, "offers_search", sell=sell, buy=mesh.asset, limit=20
        )
        by_asset = await timed_calls(client, searches, "offers_search", asset=mesh.asset, limit=20)
    return {
        "offers_made": total,
        "create_failures": len(failures),
        "made_per_s": round(total / made_s, 1),
        "offers_held": held,
        "searches": searches,
        "status_under_load_calls": len(under_load),
        "status_under_load_ms_p50": rounded(percentile(under_load, 50), 1),
        "status_under_load_ms_p99": rounded(percentile(under_load, 99), 1),
        "status_under_load_ms_max": rounded(max(under_load, default=None), 1),
        "status_ms_p50": rounded(percentile(bare, 50), 3),
        "by_pair_ms_p50": rounded(percentile(by_pair, 50), 3),
        "by_pair_ms_p99": rounded(percentile(by_pair, 99), 3),
        "by_asset_ms_p50": rounded(percentile(by_asset, 50), 3),
        "by_asset_ms_p99": rounded(percentile(by_asset, 99), 3),
    }


def book_search(offers: int) -> dict[str, Any]:
    """tools.bench_book in a subprocess: the in-process book's search with ``offers``."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bench_book",
            "--json",
            "--offers",
            str(offers),
            "--baseline-searches",
            "10",
            "--verify-items",
            "200",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    result = json.loads(done.stdout)
    return {
        "offers": result["offers"],
        "by_pair_us_p50": result["search"]["by_pair"]["book"]["p50_us"],
        "by_pair_us_p99": result["search"]["by_pair"]["book"]["p99_us"],
        "by_asset_us_p50": result["search"]["by_asset"]["book"]["p50_us"],
        "by_asset_us_p99": result["search"]["by_asset"]["book"]["p99_us"],
        "verify_us_per_item": result["verify_us_per_item"],
    }


# --- the run -----------------------------------------------------------------------------


async def run_ledgermesh(
    args: argparse.Namespace, base: Path, origins: list[int]
) -> dict[str, Any]:
    edges = topology(args.nodes, args.seed)
    started = time.monotonic()
    nodes = make_mesh(base, args.nodes, edges)
    try:
        await start(nodes)
        results: dict[str, Any] = {"setup_s": round(time.monotonic() - started, 1)}
        results["endorsed_s"] = await wait_endorsed(nodes, edges, 180)
        makers = [await register(node, "alice") for node in nodes]
        mesh = Mesh(nodes, edges, makers, f"{nodes[0].name}/EUR")
        interval_s = args.interval_ms / 1000
        rng = random.Random(args.seed + 1)
        phases: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
            ("round_trip", lambda: round_trip(nodes[0], args.round_trips)),
            ("spread", lambda: spread(mesh, origins, interval_s)),
            (
                "partition",
                lambda: partition(mesh, args.partition_offers, interval_s, args.freeze_s, rng),
            ),
            ("search", lambda: search(mesh, args.search_offers, args.searches, rng)),
        ]
        for name, phase in phases:
            if name != "search" or args.search_offers > 0:
                results[name] = await run_phase(name, phase)
        return results
    finally:
        for node in nodes:
            if node.alive():
                thaw(node)
            node.stop()


async def run_phase(name: str, phase: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """One phase's figures (also on stderr, as they come), or the error that ended it."""
    try:
        figures = await phase()
    except (ApiError, trio.TooSlowError, ExceptionGroup) as error:
        leaves = error.exceptions if isinstance(error, ExceptionGroup) else (error,)
        while any(isinstance(leaf, ExceptionGroup) for leaf in leaves):
            leaves = tuple(
                inner
                for leaf in leaves
                for inner in (leaf.exceptions if isinstance(leaf, ExceptionGroup) else (leaf,))
            )
        figures = {"error": "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves)}
    print(f"{name}: {json.dumps(figures)}", file=sys.stderr, flush=True)
    return figures


def measure(args: argparse.Namespace) -> dict[str, Any]:
    n = args.nodes
    edges = topology(n, args.seed)
    rng = random.Random(args.seed)  # the origins run_gossipsub draws from the same seed
    origins = [rng.randrange(n) for _ in range(args.offers)]
    degrees = [sum(node in edge for edge in edges) for node in range(n)]
    results: dict[str, Any] = {
        "settings": vars(args),
        "graph": {"links": len(edges), "degree_min": min(degrees), "degree_max": max(degrees)},
    }
    with tempfile.TemporaryDirectory(prefix="bench-offers-") as base:
        results["ledgermesh"] = trio.run(run_ledgermesh, args, Path(base), origins)
    in_round_trips(results["ledgermesh"])
    if args.book_offers > 0:
        results["book"] = book_search(args.book_offers)
    if not args.no_gossipsub:
        results["gossipsub"] = run_gossipsub(n, edges, args.seed, args.offers, args.interval_ms)
    return results


def in_round_trips(ours: dict[str, Any]) -> None:
    """Reach times in round trips, when both were measured."""
    spread, trip = ours.get("spread", {}), ours.get("round_trip", {})
    round_trip_ms = trip.get("round_trip_ms_p50")
    for percent in (50, 99):
        value = spread.get(f"reach_all_ms_p{percent}")
        if value is not None and round_trip_ms:
            spread[f"reach_all_round_trips_p{percent}"] = round(value / round_trip_ms, 1)


# --- the report --------------------------------------------------------------------------


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    graph, ours = results["graph"], results["ledgermesh"]
    failed = [
        name for name, figures in ours.items() if isinstance(figures, dict) and "error" in figures
    ]
    for name in failed:
        print(f"{name}: {ours.pop(name)['error']}")
    if "spread" not in ours or "round_trip" not in ours or "partition" not in ours:
        print(json.dumps(results, indent=2))
        return
    spread, trip = ours["spread"], ours["round_trip"]
    print(
        f"{args.nodes} real nodes on loopback QUIC, seed {args.seed}: {graph['links']} links,"
        f" degree {graph['degree_min']}..{graph['degree_max']}; setup {ours['setup_s']} s,"
        f" endorsements everywhere after {ours['endorsed_s']} s more"
    )
    print(
        f"round trip (operator status call, one connection): p50 {trip['round_trip_ms_p50']} ms,"
        f" p99 {trip['round_trip_ms_p99']} ms"
    )
    print(
        f"\nspread: {spread['offers']} offers, one every {args.interval_ms} ms,"
        f" {spread['complete']} reached every node"
    )
    print(
        f"  reach all  p50 {spread['reach_all_ms_p50']} ms ({spread['reach_all_round_trips_p50']}"
        f" RT)  p99 {spread['reach_all_ms_p99']} ms ({spread['reach_all_round_trips_p99']} RT);"
        f" one hop p50 {spread['one_hop_ms_p50']} ms"
    )
    print(
        f"  copies per delivery {spread['copies_per_delivery']}, per node per offer"
        f" {spread['copies_per_node_per_offer']};"
        f" HAVE entries {spread['have_entries_per_delivery']},"
        f" WANT names {spread['want_names_per_delivery']} per delivery"
    )
    cut = ours["partition"]
    print(
        f"\ncatch-up: {cut['frozen_nodes']} nodes frozen ({cut['cut_links']} links cut) for"
        f" {cut['frozen_s']} s, {cut['offers']} offers made meanwhile: all at the thawed nodes"
        f" {cut['catch_up_ms']} ms after SIGCONT, {cut['copies_per_delivery']} copies per delivery"
    )
    if "search" in ours:
        found = ours["search"]
        print(
            f"\nsearch through the API of a real node holding {found['offers_held']} offers"
            f" (made at {found['made_per_s']}/s): by pair p50 {found['by_pair_ms_p50']} ms,"
            f" p99 {found['by_pair_ms_p99']} ms; by asset p50 {found['by_asset_ms_p50']} ms,"
            f" p99 {found['by_asset_ms_p99']} ms;"
            f" a bare status call p50 {found['status_ms_p50']} ms"
        )
        print(
            f"  while the book filled, {found['status_under_load_calls']} status calls:"
            f" p50 {found['status_under_load_ms_p50']} ms,"
            f" p99 {found['status_under_load_ms_p99']} ms,"
            f" max {found['status_under_load_ms_max']} ms"
        )
    book = results.get("book")
    if book is not None and "error" not in book:
        print(
            f"search in the in-process book with {book['offers']} live offers (tools.bench_book):"
            f" by pair p50 {book['by_pair_us_p50']} us, p99 {book['by_pair_us_p99']} us;"
            f" by asset p50 {book['by_asset_us_p50']} us, p99 {book['by_asset_us_p99']} us;"
            f" verifying one offer item {book['verify_us_per_item']} us"
        )
    report_gossipsub(results.get("gossipsub"), spread, args)


def report_gossipsub(
    gossipsub: dict[str, Any] | None, spread: dict[str, Any], args: argparse.Namespace
) -> None:
    if args.no_gossipsub:
        return
    if gossipsub is None:
        print("\ngossipsub: no .venv-gossipsub (see tools/bench_gossip.py)")
        return
    if "error" in gossipsub:
        print(f"\ngossipsub: {gossipsub['error']}")
        return
    print(f"\nsame graph, origins and interval: {'':12} {'ledgermesh':>10} {'gossipsub':>10} ratio")
    for label, name in (
        ("reach all p50 ms", "reach_all_ms_p50"),
        ("reach all p99 ms", "reach_all_ms_p99"),
        ("copies per delivery", "copies_per_delivery"),
    ):
        mine, theirs = spread[name], gossipsub[name]
        print(f"  {label:42} {mine!s:>10} {theirs!s:>10} {ratio(mine, theirs)}")
    print(
        f"  complete {'':33} {spread['complete']:>7}/{spread['offers']}"
        f" {gossipsub['complete']:>7}/{gossipsub['messages']}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--nodes", type=int, default=20)
    add("--offers", type=int, default=30, help="in the spread phase")
    add("--seed", type=int, default=1)
    add("--interval-ms", type=float, default=400.0, help="between two offers (both systems)")
    add("--round-trips", type=int, default=200, help="status calls timed")
    add("--partition-offers", type=int, default=10)
    add("--freeze-s", type=float, default=5.0, help="how long the cut lasts")
    add("--search-offers", type=int, default=1_000, help="in a real node's book; 0: skip")
    add("--searches", type=int, default=300)
    add("--book-offers", type=int, default=100_000, help="tools.bench_book; 0: skip")
    add("--no-gossipsub", action="store_true")
    add("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.nodes < 4:
        parser.error("--nodes: at least 4 (a quarter is frozen)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning")
    results = measure(args)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
