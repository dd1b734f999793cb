"""Customer-ledger benchmark: intra-bank transfers per second through one validator.

Customers' signed transfer instructions are submitted over the validator's
QUIC endpoint, many in flight; the validator verifies each, co-signs the two
chain entries, logs them durably and answers. The instructions are signed
before the clock starts: the customers' signing is their machines' work, not
the validator's.

Printed next to the ed25519 bound measured in the same run: what one core
could do if a transfer cost nothing but its signatures at the validator: one
verify of the customer's signature and one sign (the validator signs both
chain entries of a transfer at once), as issue 3 states it.

Two ways in, measured in the same run: one request per transfer
(``ledger_transfer``, ``--in-flight`` requests in flight over all customers),
and a customer's transfers in requests of ``--batch`` (``ledger_transfers``,
two requests in flight per customer): what a bank's app relaying its users'
payments, or a payroll, would use.

    python -m tools.bench_ledger [--transfers 20000] [--customers 8] [--in-flight 64]
                                 [--batch 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing
import trio

from node.api.client import open_api_client
from node.cli_accounts import sign_for_api
from node.crypto import load_key_file
from node.ledger.signed import Transfer
from node.limits import LEDGER_TRANSFERS_PER_REQUEST_MAX
from node.logs import configure_logging
from tools.bench_snap import progress, timed_rate
from tools.mesh import cli, local_mesh

ASSET = "bank-a.test/USD"


def signature_bound() -> dict[str, float]:
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 200
    signed = key.sign(message)
    sign_per_s = timed_rate(lambda: key.sign(message))
    verify_per_s = timed_rate(lambda: key.verify_key.verify(signed))
    per_transfer_s = 1 / verify_per_s + 1 / sign_per_s
    return {
        "sign_per_s": sign_per_s,
        "verify_per_s": verify_per_s,
        "transfers_per_s": 1 / per_transfer_s,
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its children (the node's signature
    checker) have used so far (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def signed_transfers(key_file: Path, payer: str, payee: str, count: int) -> list[bytes]:
    key = load_key_file(key_file)
    instructions = []
    for nonce in range(1, count + 1):
        transfer = Transfer(payer, payee, ASSET, 1, nonce, 1_800_000_000_000)
        instructions.append(sign_for_api(key, transfer))
    return instructions


async def run(
    base: Path, transfers: int, customers: int, in_flight: int, batch: int
) -> dict[str, Any]:
    with local_mesh(base, ["bank-a.test"]) as nodes:
        bank = nodes[0]
        directory = str(bank.directory)
        bank.start("warning")
        await bank.wait_answering()
        cli("asset", "define", directory, "--code", "USD", "--decimals", "2")
        per_customer = transfers // customers
        batches = []
        for index in range(customers):
            payer, payee = f"payer{index}@bank-a.test", f"payee{index}@bank-a.test"
            for address in (payer, payee):
                key_file = base / f"{address}.key"
                cli("user", "new", address, "--node", directory, "--out", str(key_file))
            cli(
                "deposit",
                directory,
                "--user",
                payer,
                "--amount",
                str(per_customer),
                "--asset",
                ASSET,
            )
            progress(f"signing {per_customer:,} transfers for customer {index + 1}")
            key_file = base / f"{payer}.key"
            instructions = signed_transfers(key_file, payer, payee, 2 * per_customer)
            batches.append((key_file, instructions[:per_customer], instructions[per_customer:]))
        figures: dict[str, Any] = {"transfers": per_customer * customers}
        for mode in ("one_per_request", "batched"):
            progress(f"submitting ({mode.replace('_', ' ')})")
            assert bank.process is not None
            node_cpu, client_cpu = cpu_seconds(bank.process.pid), time.process_time()
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for key_file, singles, batched in batches:
                    requests: list[dict[str, Any]]
                    if mode == "batched":
                        chunks = [batched[i : i + batch] for i in range(0, len(batched), batch)]
                        requests = [{"instructions": chunk} for chunk in chunks]
                        op, window = "ledger_transfers", 2
                    else:
                        requests = [{"instruction": one} for one in singles]
                        op, window = "ledger_transfer", in_flight // customers
                    nursery.start_soon(submit, bank.directory, key_file, op, requests, window)
            elapsed = time.perf_counter() - started
            count = per_customer * customers
            figures[mode] = {
                "seconds": elapsed,
                "transfers_per_s": count / elapsed,
                # CPU per transfer: both share this machine's cores.
                "node_cpu_us": 1e6 * (cpu_seconds(bank.process.pid) - node_cpu) / count,
                "client_cpu_us": 1e6 * (time.process_time() - client_cpu) / count,
            }
        progress("")
        status = await bank.call("status")
    figures["refusals"] = status["refusals"]
    return figures


async def submit(
    directory: Path, key_file: Path, op: str, requests: list[dict[str, Any]], window: int
) -> None:
    """One customer's connection: its ``op`` requests in order, ``window`` in flight.
    Nothing may be refused (a batch's answer lists a result per transfer)."""
    limiter = trio.Semaphore(max(1, window))
    async with open_api_client(directory, key=load_key_file(key_file), timeout_s=60) as client:

        async def one(args: dict[str, Any]) -> None:
            try:
                answer = await client.call(op, **args)
                refused = [r for r in answer.get("results", ()) if "refused" in r]
                assert not refused, refused[:3]
            finally:
                limiter.release()

        async with trio.open_nursery() as nursery:
            for args in requests:
                await limiter.acquire()
                nursery.start_soon(one, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=8)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100, help="transfers per batched request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.batch <= LEDGER_TRANSFERS_PER_REQUEST_MAX:
        parser.error(f"--batch must be 1..{LEDGER_TRANSFERS_PER_REQUEST_MAX}")
    configure_logging("warning")
    bound = signature_bound()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as temporary:
        figures = trio.run(
            run, Path(temporary), args.transfers, args.customers, args.in_flight, args.batch
        )
    ratios = {
        mode: figures[mode]["transfers_per_s"] / bound["transfers_per_s"]
        for mode in ("one_per_request", "batched")
    }
    if args.json:
        print(json.dumps({"validator": figures, "ed25519_bound": bound, "ratio": ratios}, indent=2))
        return 0
    print(
        f"intra-bank transfers/s through one validator ({figures['transfers']:,} each way, "
        f"durable, co-signed); ed25519 bound (1 verify + 1 sign per transfer, one core): "
        f"{bound['transfers_per_s']:,.0f}/s"
    )
    for mode, label in (
        ("one_per_request", f"one per request, {args.in_flight} in flight"),
        ("batched", f"{args.batch} per request, 2 in flight per customer"),
    ):
        row = figures[mode]
        print(
            f"  {label:<44} {row['transfers_per_s']:>8,.0f}/s  "
            f"({row['seconds']:.1f} s) -> {ratios[mode]:.0%} of the bound; CPU per transfer: "
            f"node {row['node_cpu_us']:.0f} us, client {row['client_cpu_us']:.0f} us"
        )
    if figures["refusals"]:
        print(f"  refusals: {figures['refusals']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
