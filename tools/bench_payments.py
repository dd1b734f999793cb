"""Multi-hop payments benchmark: payments/s and latency over 1, 2 and 3 hops, next to Interledger.

Four validators in a line a-b-c-d, each a real ``ledgermesh run`` process with
its own log and QUIC endpoint on loopback. The payer's operator starts each
payment with ``pay`` (``to`` = b, c or d: 1, 2 or 3 hops) and ``wait``, which
the node answers when the payment has ended (``--poll``: without ``wait``,
polling ``payment`` until it ends, as before); a payment is an invoice request
along the path, a conditional SNAP transfer per hop with expiries decreasing
towards the payee, the payee's preimage back upstream, every message in signed
frames and every decision fsync'd before it leaves a node. Latency is from the
``pay`` call to the first answer showing the payment succeeded, so it includes
the operator API round trip (and with ``--poll`` up to one polling interval,
max(--poll-ms, 10 % of the payment's age)); the idle API round trip and this
disk's fsync time are measured in the same run and printed.

In the same run, alternating with it, the Interledger reference connector
(npm ``ilp-connector`` 23.0.2, BTP over WebSocket, in memory, unsigned, not
durable): sender -> connector -> connector -> receiver, four node processes on
loopback, conditional ILP packets (prepare; the receiver fulfills with the
preimage; the sender checks it). The peer is installed into tools/ilp/node_modules
with ``npm install`` when ``npm`` is present; without it only ledgermesh runs.

Every cell runs ``--payments`` payments split over ``--rounds`` rounds; each
round runs every cell, the order reversed every other round, ledgermesh and
ILP side by side at each in-flight level, because the machine is shared and
noisy and only figures measured together compare.

    python -m tools.bench_payments [--payments 600] [--in-flight 1,8,32] [--hops 1,2,3]
                                   [--rounds 2] [--poll] [--poll-ms 2] [--skip-ilp] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import trio

from node.api.client import ApiClient
from node.api.protocol import ApiError
from node.crypto import generate_key
from node.logs import configure_logging
from node.net.base import PeerUp, Received
from node.net.quic import open_quic_endpoint
from tools.bench_snap import progress
from tools.mesh import LocalNode, free_udp_ports

UNIT = "1E-2 USD"
AMOUNT = 10_000  # 100.00 USD: the default max fee (1 %) covers two forwarders' 0.1 %
CREDIT = f"{UNIT}=100000000.00"  # each way, per link: never the limit here
NAMES = ["bank-a.test", "bank-b.test", "bank-c.test", "bank-d.test"]
ENDED = ("succeeded", "failed")
WARMUP_PAYMENTS = 20  # per hop count, before anything is timed
WARMUP_PACKETS = 1_000  # ILP: node's JIT warms up
FLOOR_MESSAGE_BYTES = 330  # about a signed PROPOSE or ACCEPT frame
POLL_FRACTION = 0.1  # a pending payment is polled again after 10 % of its age (or --poll-ms)

ILP_DIRECTORY = Path(__file__).resolve().parent / "ilp"
ILP_PINNED = {
    "ilp-connector": "23.0.2",
    "ilp-plugin-btp": "1.5.0",
    "ilp-plugin-mini-accounts": "4.2.0",
    "ilp-packet": "3.1.3",
}
ILP_ASSET = {"assetCode": "USD", "assetScale": 2}
ILP_RATE_LIMIT = {"refillCount": 10_000_000, "capacity": 10_000_000}  # default: 10,000/minute

TARGET_THROUGHPUT_RATIO = 1 / 3  # 3-hop payments/s at least a third of 1-hop
TARGET_LATENCY_RATIO = 3.5  # 3-hop latency at most 3.5x 1-hop


# --- figures ----------------------------------------------------------------------------


@dataclass
class Cell:
    """One system at one hop count and in-flight level, summed over rounds."""

    payments: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, seconds: float, latencies_ms: list[float], failures: Counter[str]) -> None:
        self.payments += len(latencies_ms) + sum(failures.values())
        self.seconds += seconds
        self.latencies_ms += latencies_ms
        self.failures += failures

    @property
    def per_s(self) -> float:
        """Payments that succeeded per second of the cell's wall time."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Nearest rank; NaN without a succeeded payment."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

    def summary(self) -> dict[str, Any]:
        return {
            "payments": self.payments,
            "succeeded": len(self.latencies_ms),
            "failures": dict(self.failures),
            "seconds": self.seconds,
            "per_s": self.per_s,
            "p50_ms": self.percentile(0.50),
            "p99_ms": self.percentile(0.99),
        }


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not like 1,8,32") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: positive integers, comma-separated")
    return levels


# --- ledgermesh -------------------------------------------------------------------------


def line_of_validators(base: Path) -> list[LocalNode]:
    """a-b-c-d, each link trusted both ways, routing defaults (0.1 % fee, 20 s delta)."""
    ports = free_udp_ports(len(NAMES))
    nodes = [LocalNode(name, base / name, port) for name, port in zip(NAMES, ports, strict=True)]
    for node in nodes:
        node.init()
    for left, right in itertools.pairwise(nodes):
        left.trust(right, CREDIT)
        right.trust(left, CREDIT)
    return nodes


async def wait_routes(payer: LocalNode, timeout_s: float = 60.0) -> None:
    """Until gossip has taught the payer a path to every other validator."""
    async with payer.client(timeout_s=30) as client:
        for payee in NAMES[1:]:
            with trio.fail_after(timeout_s):
                while True:
                    try:
                        await client.call("route", to=payee, amount=AMOUNT, unit=UNIT)
                        break
                    except ApiError:
                        await trio.sleep(0.2)


async def pay_and_wait(
    client: ApiClient, payee: str, poll_s: float, wait: bool = True
) -> tuple[float, str | None]:
    """(latency in ms, failure reason or None): ``pay`` with ``wait``, which the node
    answers when the payment has ended.

    Only when the node has too many waiting requests (PAYMENT_WAITERS_MAX) does
    the answer come at once, pending; then ``payment`` is polled until it ends.
    Polling costs the payer's node CPU and adds up to one interval to the
    latency: the interval is ``poll_s`` or a tenth of the payment's age, whichever
    is longer, so the error stays near 10 % at every latency."""
    started = time.perf_counter()
    if wait:
        view = await client.call("pay", to=payee, amount=AMOUNT, unit=UNIT, wait=True)
    else:
        view = await client.call("pay", to=payee, amount=AMOUNT, unit=UNIT)
    while view["status"] not in ENDED:
        await trio.sleep(max(poll_s, POLL_FRACTION * (time.perf_counter() - started)))
        view = await client.call("payment", payment_id=view["payment_id"])
    latency_ms = (time.perf_counter() - started) * 1000
    if view["status"] == "succeeded":
        return latency_ms, None
    return latency_ms, f"{view['reason']}@{view['failed_hop']}"


async def ledgermesh_cell(
    nodes: list[LocalNode],
    hops: int,
    payments: int,
    in_flight: int,
    poll_s: float,
    wait: bool = True,
) -> tuple[float, list[float], Counter[str]]:
    """``payments`` payments from a to the validator ``hops`` away, ``in_flight`` at a time."""
    payee = NAMES[hops]
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    remaining = iter(range(payments))
    async with nodes[0].client(timeout_s=120) as client:

        async def worker() -> None:
            for _ in remaining:
                try:
                    latency_ms, reason = await pay_and_wait(client, payee, poll_s, wait)
                except ApiError as error:
                    latency_ms, reason = 0.0, f"api:{error.code}"
                if reason is None:
                    latencies.append(latency_ms)
                else:
                    failures[reason] += 1

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(in_flight):
                nursery.start_soon(worker)
        seconds = time.perf_counter() - started
    # Between cells, every ledger settles its ACKs, so no cell inherits another's work.
    for node in nodes:
        await node.wait_quiet()
    return seconds, latencies, failures


async def api_round_trip_ms(node: LocalNode, count: int = 200) -> float:
    """Median ``status`` round trip on the payer's operator connection, idle."""
    async with node.client() as client:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await client.call("status")
            samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)[len(samples) // 2]


def fsync_median_ms(path: Path, count: int = 200) -> float:
    """Median time of a 200-byte append + fsync next to the nodes' logs (same disk)."""
    samples = []
    with open(path, "ab") as file:
        for _ in range(count):
            started = time.perf_counter()
            file.write(b"r" * 200)
            file.flush()
            os.fsync(file.fileno())
            samples.append((time.perf_counter() - started) * 1000)
    path.unlink()
    return sorted(samples)[len(samples) // 2]


def sequential_legs(hops: int) -> int:
    """Messages in sequence in a ``hops``-hop payment, each fsync'd by its sender
    before it leaves: the invoice request out along the path and the invoice
    back (2 x hops), then a PROPOSE and an ACCEPT per hop."""
    return 4 * hops


async def quic_one_way_ms(count: int = 300) -> float:
    """Median one-way time of a FLOOR_MESSAGE_BYTES message between two QUIC
    endpoints on loopback, in this process (half the ping-pong round trip):
    both ends' pure-Python QUIC work and the kernel, no deciding, no fsync."""
    key_a, key_b = generate_key(), generate_key()
    a, b = key_a.public_key, key_b.public_key
    payload = b"m" * FLOOR_MESSAGE_BYTES
    samples = []
    with trio.fail_after(60):
        async with (
            open_quic_endpoint(
                key_b, "floor-b", ("127.0.0.1", 0), {}, lambda key: key == a
            ) as endpoint_b,
            open_quic_endpoint(
                key_a,
                "floor-a",
                ("127.0.0.1", 0),
                {b: endpoint_b.local_address},
                lambda key: key == b,
            ) as endpoint_a,
        ):
            for endpoint in (endpoint_a, endpoint_b):
                while not isinstance(await endpoint.events.receive(), PeerUp):
                    pass
            for _ in range(count):
                started = time.perf_counter()
                for sender, receiver, to in (
                    (endpoint_a, endpoint_b, b),
                    (endpoint_b, endpoint_a, a),
                ):
                    assert sender.send_nowait(to, payload)
                    sender.flush()
                    while not isinstance(await receiver.events.receive(), Received):
                        pass
                samples.append((time.perf_counter() - started) * 1000 / 2)
    return sorted(samples)[len(samples) // 2]


# --- the Interledger peer ---------------------------------------------------------------


def ilp_installed() -> dict[str, str]:
    """Installed versions of the pinned packages (missing ones left out)."""
    versions = {}
    for name in ILP_PINNED:
        manifest = ILP_DIRECTORY / "node_modules" / name / "package.json"
        if manifest.exists():
            versions[name] = json.loads(manifest.read_text())["version"]
    return versions


def ensure_ilp() -> str | None:
    """Install the pinned ILP packages if needed; None when ready, else why not."""
    if shutil.which("node") is None:
        return "node not found: install Node.js 18+ with npm to run the ILP comparison"
    if ilp_installed() == ILP_PINNED:
        return None
    if shutil.which("npm") is None:
        return "npm not found, and tools/ilp/node_modules lacks the pinned packages"
    progress("installing the ILP peer: npm install in tools/ilp")
    pinned = ", ".join(f"{name}@{version}" for name, version in ILP_PINNED.items())
    print(
        f"\ninstalling the Interledger peer ({pinned}) into {ILP_DIRECTORY / 'node_modules'}",
        file=sys.stderr,
    )
    completed = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--omit=dev"],
        cwd=ILP_DIRECTORY,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        return f"npm install failed: {completed.stderr.strip().splitlines()[-1:]}"
    if ilp_installed() != ILP_PINNED:
        return f"npm installed {ilp_installed()}, not the pinned {ILP_PINNED}"
    return None


def free_tcp_ports(count: int) -> list[int]:
    probes = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def connector_configs(ports: list[int], secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """c1 (the sender's connector) and c2 (the receiver's), peered over BTP."""
    senders, peering, receivers = ports
    common: dict[str, Any] = {
        "store": "memory",
        "backend": "one-to-one",
        "spread": 0,
        "initialConnectTimeout": 3000,
        "routeBroadcastEnabled": True,  # off, the static routes are never loaded (F02)
    }

    def account(relation: str, plugin: str, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "relation": relation,
            "plugin": plugin,
            "options": options,
            "rateLimit": ILP_RATE_LIMIT,
            **ILP_ASSET,
        }

    c1 = {
        **common,
        "ilpAddress": "test.c1",
        "accounts": {
            "clients": account("child", "ilp-plugin-mini-accounts", {"port": senders}),
            "c2": account(
                "peer", "ilp-plugin-btp", {"listener": {"port": peering, "secret": secret}}
            ),
        },
        "routes": [{"targetPrefix": "test.c2", "peerId": "c2"}],
    }
    c2 = {
        **common,
        "ilpAddress": "test.c2",
        "accounts": {
            "c1": account(
                "peer", "ilp-plugin-btp", {"server": f"btp+ws://:{secret}@127.0.0.1:{peering}"}
            ),
            "clients": account("child", "ilp-plugin-mini-accounts", {"port": receivers}),
        },
        "routes": [{"targetPrefix": "test.c1", "peerId": "c1"}],
    }
    return c1, c2


class IlpChain:
    """sender -> c1 -> c2 -> receiver: four node processes on loopback."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.processes: list[subprocess.Popen[bytes]] = []
        self.files: list[IO[bytes]] = []
        self.sender: subprocess.Popen[bytes] | None = None
        self.destination = ""
        self.version = ilp_installed()["ilp-connector"]

    def _start(self, name: str, *arguments: str, pipe: bool = False) -> subprocess.Popen[bytes]:
        stdout = open(self.base / f"{name}.stdout", "wb")  # noqa: SIM115
        stderr = open(self.base / f"{name}.stderr", "wb")  # noqa: SIM115
        self.files += [stdout, stderr]
        process = subprocess.Popen(
            ["node", str(ILP_DIRECTORY / "ilp_peer.js"), *arguments],
            cwd=ILP_DIRECTORY,
            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else stdout,
            stderr=stderr,
        )
        self.processes.append(process)
        return process

    def _ready(self, name: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> Any:
        """The {"ready": ...} line a role prints (connectors log to stdout too)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"ILP {name} exited; see {self.base / name}.stderr")
            for line in (self.base / f"{name}.stdout").read_bytes().splitlines():
                if line.startswith(b'{"ready"'):
                    return json.loads(line)
            time.sleep(0.05)
        raise RuntimeError(f"ILP {name} not ready in {timeout_s:g} s; see {self.base / name}.*")

    def start(self) -> None:
        secret = secrets.token_hex(16)
        shared = secrets.token_hex(32)  # sender and receiver: fulfillment = HMAC(shared, data)
        senders, peering, receivers = free_tcp_ports(3)
        c1, c2 = connector_configs([senders, peering, receivers], secret)
        first = self._start("c1", "connector", json.dumps(c1))
        second = self._start("c2", "connector", json.dumps(c2))
        self._ready("c1", first)
        self._ready("c2", second)
        receiver = self._start(
            "receiver", "receiver", f"btp+ws://receiver:{secret}@127.0.0.1:{receivers}", shared
        )
        self.destination = self._ready("receiver", receiver)["address"]
        self.sender = self._start(
            "sender", "sender", f"btp+ws://sender:{secret}@127.0.0.1:{senders}", shared, pipe=True
        )
        assert self.sender.stdout is not None
        line = self.sender.stdout.readline()
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"ILP sender did not start; see {self.base}/sender.stderr")

    def run(self, payments: int, in_flight: int) -> tuple[float, list[float], Counter[str]]:
        """Blocking: one cell's packets through the chain; (seconds, latencies, failures)."""
        assert self.sender is not None and self.sender.stdin and self.sender.stdout
        command = {
            "destination": self.destination,
            "payments": payments,
            "in_flight": in_flight,
            "amount": str(AMOUNT),
        }
        self.sender.stdin.write(json.dumps(command).encode() + b"\n")
        self.sender.stdin.flush()
        line = self.sender.stdout.readline()
        if not line:
            raise RuntimeError(f"ILP sender exited; see {self.base}/sender.stderr")
        answer = json.loads(line)
        return answer["seconds"], answer["latencies_ms"], Counter(answer["reasons"])

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for file in self.files:
            file.close()


# --- the run ----------------------------------------------------------------------------


@dataclass
class Settings:
    payments: int
    in_flight: list[int]
    hops: list[int]
    rounds: int
    poll_s: float
    ilp: bool
    wait: bool = True


async def run(base: Path, settings: Settings) -> dict[str, Any]:
    nodes = line_of_validators(base / "mesh")
    chain: IlpChain | None = None
    cells = {(h, k): Cell() for h in settings.hops for k in settings.in_flight}
    ilp_cells = {k: Cell() for k in settings.in_flight}
    try:
        progress("starting 4 validators")
        for node in nodes:
            node.start("warning")
        for node in nodes:
            await node.wait_ready(timeout_s=60)
        progress("waiting for routes (gossip)")
        await wait_routes(nodes[0])
        if settings.ilp:
            progress("starting the ILP chain")
            (base / "ilp").mkdir()
            chain = IlpChain(base / "ilp")
            await trio.to_thread.run_sync(chain.start)
        progress("warming up")
        for warm in settings.hops:
            await ledgermesh_cell(nodes, warm, WARMUP_PAYMENTS, 4, settings.poll_s)
        if chain is not None:
            await trio.to_thread.run_sync(chain.run, WARMUP_PACKETS, 8)
        api_rtt_ms = await api_round_trip_ms(nodes[0])
        fsync_ms = fsync_median_ms(base / "fsync-probe")
        one_way_ms = await quic_one_way_ms()
        for round_index, share in enumerate(split(settings.payments, settings.rounds)):
            forward = round_index % 2 == 0
            hop_order = settings.hops if forward else list(reversed(settings.hops))
            for in_flight in settings.in_flight:
                steps: list[int | None] = [*hop_order, None] if forward else [None, *hop_order]
                for step in steps:
                    where = f"round {round_index + 1}/{settings.rounds}, {in_flight} in flight"
                    if step is None:
                        if chain is None:
                            continue
                        progress(f"{where}: ILP, {share} packets")
                        figures = await trio.to_thread.run_sync(chain.run, share, in_flight)
                        ilp_cells[in_flight].add(*figures)
                    else:
                        progress(f"{where}: ledgermesh {step} hop(s), {share} payments")
                        figures = await ledgermesh_cell(
                            nodes, step, share, in_flight, settings.poll_s, settings.wait
                        )
                        cells[(step, in_flight)].add(*figures)
        # The floor's probes again after the cells: the disk here is shared, and a
        # floor is a lower bound, so the quieter of the two is what it uses.
        floor_fsync_ms = min(fsync_ms, fsync_median_ms(base / "fsync-probe"))
        one_way_ms = min(one_way_ms, await quic_one_way_ms())
    finally:
        if chain is not None:
            chain.stop()
        for node in nodes:
            node.stop()
    progress("")
    return {
        "ledgermesh": {(h, k): cell.summary() for (h, k), cell in cells.items()},
        "ilp": {k: cell.summary() for k, cell in ilp_cells.items()} if chain else None,
        "ilp_version": chain.version if chain else None,
        "api_round_trip_ms": api_rtt_ms,
        "fsync_ms": fsync_ms,
        "floor_fsync_ms": floor_fsync_ms,
        "quic_one_way_ms": one_way_ms,
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def assess(figures: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Each target at each in-flight level: the figure, the bound, met or not."""
    lm, ilp = figures["ledgermesh"], figures["ilp"]
    targets: list[dict[str, Any]] = []
    have_1_and_3 = 1 in settings.hops and 3 in settings.hops
    for k in settings.in_flight:
        if have_1_and_3:
            one, three = lm[(1, k)], lm[(3, k)]
            value = ratio(three["per_s"], one["per_s"])
            targets.append(
                {
                    "target": "3-hop payments/s >= 1/3 of 1-hop",
                    "in_flight": k,
                    "value": value,
                    "met": value >= TARGET_THROUGHPUT_RATIO,
                }
            )
            for name in ("p50_ms", "p99_ms"):
                value = ratio(three[name], one[name])
                targets.append(
                    {
                        "target": f"3-hop {name[:3]} <= {TARGET_LATENCY_RATIO}x 1-hop",
                        "in_flight": k,
                        "value": value,
                        "met": value <= TARGET_LATENCY_RATIO,
                    }
                )
        if ilp is not None and 3 in settings.hops:
            value = ratio(lm[(3, k)]["per_s"], ilp[k]["per_s"])
            targets.append(
                {
                    "target": "ledgermesh 3-hop payments/s >= ILP packets/s",
                    "in_flight": k,
                    "value": value,
                    "met": value >= 1.0,
                }
            )
    return targets


def print_table(figures: dict[str, Any], settings: Settings, note: str | None) -> None:
    lm, ilp = figures["ledgermesh"], figures["ilp"]
    per_cell = settings.payments
    print(
        f"ledgermesh: 4 validator processes in a line over QUIC on loopback, {per_cell} payments "
        f"per cell over {settings.rounds} round(s), signed and fsync'd at every hop"
    )
    print(
        (
            "  latency: operator `pay` (wait) to its answer that the payment succeeded; "
            if settings.wait
            else f"  latency: operator `pay` to `payment` answering succeeded, polled every "
            f"max({settings.poll_s * 1000:g} ms, {POLL_FRACTION:.0%} of its age); "
        )
        + f"idle API round trip "
        f"{figures['api_round_trip_ms']:.2f} ms; fsync here {figures['fsync_ms']:.2f} ms (median)"
    )
    header = (
        f"{'hops':>4} {'in flight':>9} {'payments/s':>11} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'/s vs 1-hop':>12} {'p50 vs 1-hop':>13} {'p99 vs 1-hop':>13}"
    )
    print(header)
    for k in settings.in_flight:
        for h in settings.hops:
            cell, base = lm[(h, k)], lm.get((1, k))
            ratios = (
                f" {ratio(cell['per_s'], base['per_s']):>12.2f}"
                f" {ratio(cell['p50_ms'], base['p50_ms']):>13.2f}"
                f" {ratio(cell['p99_ms'], base['p99_ms']):>13.2f}"
                if base
                else ""
            )
            failed = (
                f"  ({cell['payments'] - cell['succeeded']} failed)" if cell["failures"] else ""
            )
            print(
                f"{h:>4} {k:>9} {cell['per_s']:>11,.0f} {cell['p50_ms']:>8.1f}"
                f" {cell['p99_ms']:>8.1f}{ratios}{failed}"
            )
    if ilp is None:
        print(f"Interledger: not run ({note or 'skipped'})")
    else:
        print(
            f"Interledger reference connector {figures['ilp_version']}: sender -> connector -> "
            f"connector -> receiver, BTP on loopback, in memory, unsigned, not durable"
        )
        print(
            f"{'in flight':>9} {'packets/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'ledgermesh 3-hop /s vs ILP':>27} {'p50 vs ILP':>11}"
        )
        for k in settings.in_flight:
            cell, three = ilp[k], lm.get((3, k))
            ratios = (
                f" {ratio(three['per_s'], cell['per_s']):>27.3f}"
                f" {ratio(three['p50_ms'], cell['p50_ms']):>11.1f}"
                if three
                else ""
            )
            failed = (
                f"  ({cell['payments'] - cell['succeeded']} failed)" if cell["failures"] else ""
            )
            print(
                f"{k:>9} {cell['per_s']:>10,.0f} {cell['p50_ms']:>8.2f} {cell['p99_ms']:>8.2f}"
                f"{ratios}{failed}"
            )
    print_floor(figures, settings)
    print("targets:")
    for target in figures["targets"]:
        print(
            f"  {target['target']:<46} at {target['in_flight']:>2} in flight: "
            f"{target['value']:>6.3f}  {'met' if target['met'] else 'NOT met'}"
        )
    failures = {f"{h} hops, {k} in flight": c["failures"] for (h, k), c in lm.items()}
    if ilp:
        failures |= {f"ILP, {k} in flight": c["failures"] for k, c in ilp.items()}
    for where, reasons in failures.items():
        if reasons:
            print(f"  failures ({where}): {reasons}")


def floor_ms(figures: dict[str, Any], hops: int) -> float:
    """The least a ``hops``-hop payment at 1 in flight can take under fsync-before-send
    on this machine: its sequential legs, each one fsync and one QUIC one-way
    message, as measured in this run (no deciding, signing or API round trip)."""
    leg_ms = float(figures["floor_fsync_ms"]) + float(figures["quic_one_way_ms"])
    return sequential_legs(hops) * leg_ms


def print_floor(figures: dict[str, Any], settings: Settings) -> None:
    hops = max(settings.hops)
    legs, floor = sequential_legs(hops), floor_ms(figures, hops)
    cell = figures["ledgermesh"].get((hops, 1))
    measured = f"; measured here {cell['p50_ms']:.1f} ms p50" if cell else ""
    ilp = figures["ilp"]
    versus = (
        f"; ILP's whole packet {ilp[1]['p50_ms']:.2f} ms p50"
        if ilp is not None and 1 in ilp
        else ""
    )
    print(
        f"sequential floor, {hops}-hop payment at 1 in flight: {legs} legs x (fsync "
        f"{figures['floor_fsync_ms']:.2f} + QUIC one-way {figures['quic_one_way_ms']:.2f} ms)"
        f" = {floor:.1f} ms before any deciding{measured}{versus}"
    )
    print(
        "  (medians, each the lower of a probe before and after the cells; one-way is half"
        " a ping-pong between two QUIC endpoints in this process)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=600, help="per cell (hops x in flight)")
    parser.add_argument("--in-flight", type=parse_levels, default=[1, 8, 32])
    parser.add_argument("--hops", type=parse_levels, default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=2, help="each cell's payments split so")
    parser.add_argument(
        "--poll-ms", type=float, default=2.0, help="shortest `payment` polling interval"
    )
    parser.add_argument(
        "--poll", action="store_true", help="poll `payment` instead of `pay` with wait"
    )
    parser.add_argument("--skip-ilp", action="store_true", help="ledgermesh only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if max(args.hops) > len(NAMES) - 1:
        parser.error(f"--hops: at most {len(NAMES) - 1}")
    if args.payments < args.rounds or args.rounds < 1:
        parser.error("--payments must be at least --rounds, and --rounds at least 1")
    configure_logging("warning")
    note = "--skip-ilp" if args.skip_ilp else ensure_ilp()
    if note and not args.skip_ilp:
        print(f"Interledger peer not run: {note}", file=sys.stderr)
    settings = Settings(
        args.payments,
        args.in_flight,
        args.hops,
        args.rounds,
        args.poll_ms / 1000,
        note is None,
        not args.poll,
    )
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-payments-") as temporary:
        figures = trio.run(run, Path(temporary), settings)
    figures["targets"] = assess(figures, settings)
    figures["machine"] = {
        "cpus": os.cpu_count(),
        "load_1min_before": load_before,
        "load_1min_after": os.getloadavg()[0],
        "run_seconds": time.perf_counter() - started,
    }
    if args.json:
        out = {
            **figures,
            "ledgermesh": [
                {"hops": h, "in_flight": k, **cell}
                for (h, k), cell in figures["ledgermesh"].items()
            ],
            "ilp": (
                [{"in_flight": k, **cell} for k, cell in figures["ilp"].items()]
                if figures["ilp"]
                else None
            ),
            "ilp_skipped": note,
            "settings": {**vars(args), "poll_ms": args.poll_ms},
        }
        print(json.dumps(out, indent=2))
        return 0
    print_table(figures, settings, note)
    machine = figures["machine"]
    print(
        f"({machine['cpus']} CPUs, 1-min load {machine['load_1min_before']:.1f} before, "
        f"{machine['load_1min_after']:.1f} after; run took {machine['run_seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
