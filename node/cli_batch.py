"""``ledgermesh transfer-batch``: a file of payments by one customer (a payroll).

The file is CSV, one payment per line: ``payee,amount`` (the amount in the
asset's decimals); blank lines and lines starting with ``#`` are skipped, and
so is a first line ``to,amount``. Every line is checked before anything is
sent: a bad line stops the command with its line number and nothing is paid.
Each payment is signed by the customer with its own nonce and submitted
LEDGER_TRANSFERS_PER_REQUEST_MAX to a request (``ledger_transfers``); the
validator decides each on its own, in file order, so a refusal (say, the
money ran out at line 812) refuses that line only. The command prints one
outcome per line (``--json``: a list), a progress bar on stderr, and exits
non-zero when any line was refused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from node.api.client import ApiClient
from node.cli_accounts import (
    CommandError,
    Handler,
    _balances_for_people,
    _decimals,
    _run,
    add_command,
    parse_asset_amount,
    sign_for_api,
)
from node.crypto import load_key_file
from node.ledger.codec import valid_address
from node.ledger.signed import Transfer
from node.limits import LEDGER_TRANSFERS_PER_REQUEST_MAX, TRANSFER_BATCH_LINES_MAX

HEADER = ("to", "amount")


def read_batch(path: Path) -> list[tuple[int, str, str]]:
    """(line number, payee, amount text) per payment. Raises CommandError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read {path}: {error}") from None
    rows: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = tuple(field.strip() for field in stripped.split(","))
        if not rows and fields == HEADER:
            continue
        if len(fields) != 2:
            raise CommandError(f"{path}:{number}: expected 'payee,amount', got {stripped!r}")
        if not valid_address(fields[0]):
            raise CommandError(f"{path}:{number}: {fields[0]!r} is not an address like a@bank.test")
        rows.append((number, fields[0], fields[1]))
        if len(rows) > TRANSFER_BATCH_LINES_MAX:
            raise CommandError(f"{path}: more than {TRANSFER_BATCH_LINES_MAX:,} payments")
    if not rows:
        raise CommandError(f"{path}: no payments in the file")
    return rows


def cmd_transfer_batch(args: argparse.Namespace) -> Any:
    rows = read_batch(args.file)
    user_key = load_key_file(args.user_key)
    show_progress = not args.json and sys.stderr.isatty()

    async def go(client: ApiClient) -> Any:
        account = await client.call("account")
        decimals = await _decimals(client, args.asset)
        amounts = []
        for number, _, text in rows:
            try:
                amounts.append(parse_asset_amount(text, decimals))
            except ValueError as error:  # AmountError
                raise CommandError(f"{args.file}:{number}: {error}") from None
        nonce, now_ms = account["last_nonce"], int(time.time() * 1000)
        instructions = []
        for (_, payee, _), amount in zip(rows, amounts, strict=True):
            nonce += 1
            transfer = Transfer(account["address"], payee, args.asset, amount, nonce, now_ms)
            instructions.append(sign_for_api(user_key, transfer))
        outcomes: list[dict[str, Any]] = []
        balances: dict[str, int] = {}
        for start in range(0, len(instructions), LEDGER_TRANSFERS_PER_REQUEST_MAX):
            chunk = instructions[start : start + LEDGER_TRANSFERS_PER_REQUEST_MAX]
            answer = await client.call("ledger_transfers", instructions=chunk)
            balances = answer["balances"]
            for offset, result in enumerate(answer["results"]):
                number, payee, text = rows[start + offset]
                outcome = {"line": number, "to": payee, "amount": text}
                if "refused" in result:
                    outcome.update(refused=result["refused"], detail=result["detail"])
                else:
                    outcome.update(seq=result["entry"]["seq"], hash=result["entry"]["hash"].hex())
                outcomes.append(outcome)
            if show_progress:
                done = len(outcomes)
                bar = "#" * (30 * done // len(rows))
                print(f"\r[{bar:<30}] {done:,}/{len(rows):,}", end="", file=sys.stderr, flush=True)
        if show_progress:
            print(file=sys.stderr)
        refused = [outcome for outcome in outcomes if "refused" in outcome]
        return {
            "payments": len(outcomes),
            "paid": len(outcomes) - len(refused),
            "refused": len(refused),
            "outcomes": outcomes,
            "balances": _balances_for_people(balances, {args.asset: decimals}),
        }

    result = _run(args.node, user_key, go)
    if result["refused"]:
        for outcome in result["outcomes"]:
            if "refused" in outcome:
                print(
                    f"{args.file}:{outcome['line']}: {outcome['to']} {outcome['amount']}: "
                    f"refused ({outcome['refused']}: {outcome['detail']})",
                    file=sys.stderr,
                )
        result["exit_code"] = 1
    return result


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    handler: Handler = cmd_transfer_batch
    sub = add_command(
        commands, common, "transfer-batch", handler, "pay many customers from a CSV file"
    )
    sub.add_argument("file", type=Path, metavar="FILE.csv", help="lines of payee,amount")
    sub.add_argument("--user-key", type=Path, required=True, help="your key file")
    sub.add_argument("--node", type=Path, required=True, help="your validator's directory")
    sub.add_argument("--asset", required=True, help="the asset paid, e.g. bank-a.test/USD")
