"""Customer-ledger benchmark: intra-bank transfers per second through one validator.

Customers' signed transfer instructions are submitted over the validator's
QUIC endpoint, many in flight; the validator verifies each, co-signs the two
chain entries, logs them durably and answers. The instructions are signed
before the clock starts: the customers' signing is their machines' work, not
the validator's.

Printed next to the ed25519 bound measured in the same run: what one core
could do if a transfer cost nothing but its signatures at the validator (one
verify of the customer's signature, one sign per chain entry, two entries).

    python -m tools.bench_ledger [--transfers 20000] [--customers 8] [--in-flight 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nacl.signing
import trio

from node.api.client import open_api_client
from node.crypto import load_key_file
from node.ledger.signed import SignedInstruction, Transfer
from node.logs import configure_logging
from node.wire import pack
from tools.bench_snap import progress, timed_rate
from tools.mesh import cli, local_mesh

ASSET = "bank-a.test/USD"


def signature_bound() -> dict[str, float]:
    key = nacl.signing.SigningKey.generate()
    message = b"x" * 200
    signed = key.sign(message)
    sign_per_s = timed_rate(lambda: key.sign(message))
    verify_per_s = timed_rate(lambda: key.verify_key.verify(signed))
    per_transfer_s = 1 / verify_per_s + 2 / sign_per_s
    return {
        "sign_per_s": sign_per_s,
        "verify_per_s": verify_per_s,
        "transfers_per_s": 1 / per_transfer_s,
    }


def signed_transfers(key_file: Path, payer: str, payee: str, count: int) -> list[bytes]:
    key = load_key_file(key_file)
    instructions = []
    for nonce in range(1, count + 1):
        transfer = Transfer(payer, payee, ASSET, 1, nonce, 1_800_000_000_000)
        request = transfer.signing_request()
        signature = key.sign(request.kind, request.payload)
        instructions.append(pack(SignedInstruction(transfer, key.public_key, signature).to_wire()))
    return instructions


async def run(base: Path, transfers: int, customers: int, in_flight: int) -> dict[str, Any]:
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
            batches.append((key_file, signed_transfers(key_file, payer, payee, per_customer)))
        progress("submitting")
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for key_file, instructions in batches:
                nursery.start_soon(
                    submit, bank.directory, key_file, instructions, in_flight // customers
                )
        elapsed = time.perf_counter() - started
        progress("")
        status = await bank.call("status")
    return {
        "transfers": per_customer * customers,
        "seconds": elapsed,
        "transfers_per_s": per_customer * customers / elapsed,
        "refusals": status["refusals"],
    }


async def submit(directory: Path, key_file: Path, instructions: list[bytes], window: int) -> None:
    """One customer's connection, ``window`` requests in flight, in nonce order."""
    limiter = trio.Semaphore(max(1, window))
    async with open_api_client(directory, key=load_key_file(key_file), timeout_s=60) as client:

        async def one(instruction: bytes) -> None:
            try:
                await client.call("ledger_transfer", instruction=instruction)
            finally:
                limiter.release()

        async with trio.open_nursery() as nursery:
            for instruction in instructions:
                await limiter.acquire()
                nursery.start_soon(one, instruction)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transfers", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=8)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning")
    bound = signature_bound()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as temporary:
        figures = trio.run(run, Path(temporary), args.transfers, args.customers, args.in_flight)
    ratio = figures["transfers_per_s"] / bound["transfers_per_s"]
    if args.json:
        print(json.dumps({"validator": figures, "ed25519_bound": bound, "ratio": ratio}, indent=2))
        return 0
    print(
        f"intra-bank transfers/s through one validator: {figures['transfers_per_s']:,.0f} "
        f"({figures['transfers']:,} in {figures['seconds']:.1f} s, durable, co-signed)"
    )
    print(
        f"  ed25519 bound (1 verify + 2 signs per transfer): "
        f"{bound['transfers_per_s']:,.0f}/s -> {ratio:.0%} of the bound"
    )
    if figures["refusals"]:
        print(f"  refusals: {figures['refusals']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
