"""SNAP benchmark: durable transfers per second between two node processes over QUIC.

Printed next to three baselines measured in the same run, because this machine
is shared and noisy and only ratios travel:

(a) the ed25519 bound: transfers/s if each of a transfer's three messages
    (PROPOSE, ACCEPT, ACK) were signed and verified on its own;
(b) SQLite in WAL mode with synchronous=FULL, one transaction per transfer;
(c) the log's own group-commit append rate.

Then the restart time of a node whose log holds N transfers (default 1,000,000),
made by the real SNAP core and the real log, with snapshots as the runtime
takes them.

    python -m tools.bench_snap [--transfers 60000] [--restart-transfers 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing
import trio

from node.config import LOG_DIRECTORY, load_config
from node.engine import identity_of, recover_state
from node.limits import SNAPSHOT_EVERY_RECORDS
from node.logs import configure_logging
from node.runtime import open_log
from node.snap.events import (
    ActionPropose,
    Effect,
    PersistRecord,
    ReceiveMessages,
    SendMessages,
)
from node.snap.ledger import BilateralLedger
from node.state import NodeState, snap_log_record
from node.storage.disk import RealDisk
from node.storage.log import AppendLog
from tools.mesh import LocalNode, local_mesh

UNIT = "1E-2 USD"
MESSAGES_PER_TRANSFER = 3  # PROPOSE, ACCEPT, ACK


def progress(text: str) -> None:
    print(f"\r{text:<70}", end="", file=sys.stderr, flush=True)


def timed_rate(operation: Any, seconds: float = 1.0) -> float:
    """Operations per second of ``operation`` (called in batches of 100)."""
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            operation()
        count += 100
    return count / (time.perf_counter() - started)


def signature_bound() -> dict[str, float]:
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 200
    signed = key.sign(message)
    verify_key = key.verify_key
    sign_per_s = timed_rate(lambda: key.sign(message))
    verify_per_s = timed_rate(lambda: verify_key.verify(signed))
    per_transfer_s = MESSAGES_PER_TRANSFER * (1 / sign_per_s + 1 / verify_per_s)
    return {
        "sign_per_s": sign_per_s,
        "verify_per_s": verify_per_s,
        "transfers_per_s": 1 / per_transfer_s,
    }


def sqlite_per_transfer(directory: Path, seconds: float = 2.0) -> float:
    connection = sqlite3.connect(directory / "bench.sqlite", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE transfers (msg_id INTEGER PRIMARY KEY, amount INTEGER, unit TEXT)"
    )
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        connection.execute("BEGIN")
        connection.execute("INSERT INTO transfers VALUES (?, ?, ?)", (count, 100 + count, UNIT))
        connection.execute("COMMIT")
        count += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def log_group_commit(directory: Path, seconds: float = 2.0) -> float:
    """Records/s appending ~150-byte records with one fsync per 256 records."""
    (directory / "log").mkdir()
    log, _ = AppendLog.open(RealDisk(directory / "log"))
    record = b"r" * 150
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(256):
            log.append(record)
        log.sync()
        count += 256
    elapsed = time.perf_counter() - started
    log.close()
    return count / elapsed


async def wait_accepted(node: LocalNode, count: int, timeout_s: float) -> None:
    with trio.fail_after(timeout_s):
        async with node.client(timeout_s=30) as client:
            while True:
                status = await client.call("status")
                progress(f"{node.name}: {status['accepted']:,} of {count:,} accepted")
                if status["accepted"] >= count and status["pending"] == 0:
                    return
                await trio.sleep(0.05)


async def two_nodes(directory: Path, transfers: int, batch: int, in_flight: int) -> dict[str, Any]:
    with local_mesh(directory, ["bank-a.test", "bank-b.test"], "USD=100000000000.00") as nodes:
        payer, payee = nodes
        for node in nodes:
            node.start("warning")
        for node in nodes:
            await node.wait_ready()
        limiter = trio.Semaphore(in_flight)
        started = time.perf_counter()
        async with payer.client(timeout_s=60) as client:

            async def send(amounts: list[int]) -> None:
                """Submit; amounts refused for too many pending are resubmitted (backpressure)."""
                try:
                    while amounts:
                        answer = await client.call(
                            "pay_batch", peer=payee.name, unit=UNIT, amounts=amounts
                        )
                        refused = [t for t in answer["transfers"] if "refused" in t]
                        assert all(t["refused"] == "too-many-pending" for t in refused)
                        amounts = [t["amount"] for t in refused]
                        if amounts:
                            await trio.sleep(0.02)
                finally:
                    limiter.release()

            async with trio.open_nursery() as nursery:
                for start in range(0, transfers, batch):
                    await limiter.acquire()
                    nursery.start_soon(send, [1] * min(batch, transfers - start))
            acknowledged_s = time.perf_counter() - started
        await wait_accepted(payee, transfers, timeout_s=600)
        settled_s = time.perf_counter() - started
        status = await payer.call("status")
    progress("")
    return {
        "transfers": transfers,
        "acknowledged_per_s": transfers / acknowledged_s,
        "settled_per_s": transfers / settled_s,
        "settled_s": settled_s,
        "payer_log_records": status["log"]["next_lsn"],
    }


def _deliver(ledger: BilateralLedger, effects: list[Effect], now_ms: int) -> list[Effect]:
    messages = [m for e in effects if isinstance(e, SendMessages) for m in e.messages]
    if not messages:
        return []
    return ledger.handle(ReceiveMessages(tuple(messages), b""), now_ms)


def build_history(directory: Path, transfers: int) -> None:
    """A node directory whose log holds ``transfers`` accepted transfers to its peer.

    The records are what the real SNAP core emits for each transfer, in the
    runtime's log format, synced in passes, with a snapshot every
    SNAPSHOT_EVERY_RECORDS records, as the runtime does.
    """
    config = load_config(directory)
    peer = config.peers[0]
    state = NodeState({peer.public_key: peer.limits}, identity_of(config))
    ours = state.ledger(peer.public_key)
    theirs = BilateralLedger({UNIT: None})
    log, _ = open_log(directory)
    since_snapshot, now_ms, batch = 0, 1_800_000_000_000, 500
    for start in range(0, transfers, batch):
        effects: list[Effect] = []
        for _ in range(min(batch, transfers - start)):
            effects += ours.handle(ActionPropose(1, UNIT, None, None), now_ms)
        replies = _deliver(theirs, effects, now_ms)  # their records and ACCEPTs
        answers = _deliver(ours, replies, now_ms)  # our records and ACKs
        _deliver(theirs, answers, now_ms)
        effects += answers
        for effect in effects:
            if isinstance(effect, PersistRecord):
                log.append(snap_log_record(peer.public_key, effect.record))
                since_snapshot += 1
        log.sync()
        if since_snapshot >= SNAPSHOT_EVERY_RECORDS:
            log.write_snapshot(log.next_lsn, state.to_snapshot())
            since_snapshot = 0
        if start % 20_000 == 0:
            progress(f"building history: {start:,} of {transfers:,} transfers")
    log.close()
    progress("")


async def restart(directory: Path, transfers: int) -> dict[str, Any]:
    with local_mesh(directory, ["bank-a.test", "bank-b.test"], "USD=100000000000.00") as nodes:
        node = nodes[0]
        build_history(node.directory, transfers)
        started = time.perf_counter()
        log, _ = AppendLog.open(RealDisk(node.directory / LOG_DIRECTORY))
        state, replayed = recover_state(log, load_config(node.directory))
        recovery_s = time.perf_counter() - started
        totals = state.ledger(load_config(node.directory).peers[0].public_key).totals()
        log.close()
        assert totals[UNIT].accepted_out_count == transfers, totals
        started = time.perf_counter()
        node.start("warning")
        await node.wait_answering(timeout_s=120)
        process_s = time.perf_counter() - started
    return {
        "transfers": transfers,
        "recover_state_s": recovery_s,
        "records_replayed_after_snapshot": replayed,
        "process_start_to_answering_s": process_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=500, help="transfers per pay_batch")
    parser.add_argument("--in-flight", type=int, default=8, help="pay_batch requests in flight")
    # Just over a million transfers (two records each), stopping 1,000 records short of
    # the next snapshot: the worst case of the replay after it.
    parser.add_argument("--restart-transfers", type=int, default=1_024_500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning")
    with tempfile.TemporaryDirectory(prefix="bench-snap-") as temporary:
        base = Path(temporary)
        progress("baseline: ed25519")
        signatures = signature_bound()
        progress("baseline: sqlite")
        (base / "sqlite").mkdir()
        sqlite_rate = sqlite_per_transfer(base / "sqlite")
        progress("baseline: log group commit")
        (base / "log").mkdir()
        log_rate = log_group_commit(base / "log")
        progress("two nodes over QUIC")
        (base / "mesh").mkdir()
        mesh = trio.run(two_nodes, base / "mesh", args.transfers, args.batch, args.in_flight)
        (base / "restart").mkdir()
        restart_figures = trio.run(restart, base / "restart", args.restart_transfers)
    results = {
        "two_nodes": mesh,
        "baselines": {
            "ed25519_bound_transfers_per_s": signatures["transfers_per_s"],
            "ed25519_sign_per_s": signatures["sign_per_s"],
            "ed25519_verify_per_s": signatures["verify_per_s"],
            "sqlite_wal_full_transfers_per_s": sqlite_rate,
            "log_group_commit_records_per_s": log_rate,
        },
        "restart": restart_figures,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    settled = mesh["settled_per_s"]
    print(f"durable transfers/s, two processes over QUIC: {settled:,.0f} settled")
    print(f"  ({mesh['transfers']:,} transfers in {mesh['settled_s']:.1f} s; ", end="")
    print(f"{mesh['acknowledged_per_s']:,.0f}/s acknowledged to the operator)")
    print(
        f"  vs ed25519 bound, 3 messages signed+verified each: "
        f"{signatures['transfers_per_s']:,.0f}/s -> x{settled / signatures['transfers_per_s']:.2f}"
    )
    print(
        f"  vs SQLite WAL synchronous=FULL, 1 transfer/commit: "
        f"{sqlite_rate:,.0f}/s -> x{settled / sqlite_rate:.2f}"
    )
    print(
        f"  log group commit alone: {log_rate:,.0f} records/s "
        f"(a transfer logs {mesh['payer_log_records'] / mesh['transfers']:.1f} records per side)"
    )
    print(
        f"restart with {restart_figures['transfers']:,} logged transfers: "
        f"state recovered in {restart_figures['recover_state_s']:.2f} s "
        f"({restart_figures['records_replayed_after_snapshot']:,} records after the snapshot); "
        f"process start to answering {restart_figures['process_start_to_answering_s']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
