"""CLI commands for multi-hop payments between validators.

``ledgermesh pay DIR --to DOMAIN`` (in node/cli.py, next to the direct
``--peer`` form) starts a payment and polls ``payment`` until it ends or
``--wait`` passes; ``payment status``, ``payments`` and ``route`` read the
node's view. Amounts are typed in the currency; a bare code means the
configured unit of that code.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import trio

from node import units
from node.api.client import open_api_client
from node.api.protocol import ApiError
from node.cli_accounts import add_command
from node.config import load_config
from node.limits import API_WAIT_MARGIN_S

Handler = Callable[[argparse.Namespace], Any]


class PaymentError(ApiError):
    """Raised when a payment ends failed: ``code`` is its reason (``fee-too-high``,
    ``insufficient-credit``, ...), the message names the payment and the failed hop."""


def _call(directory: Path, op: str, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with open_api_client(directory) as client:
            return await client.call(op, **kwargs)

    return trio.run(go)


def amount_and_unit(directory: Path, amount: str, unit: str) -> tuple[int, str]:
    config = load_config(directory)
    known = sorted({unit for peer in config.peers for unit in peer.limits})
    resolved = units.resolve_unit(unit, known)
    return units.parse_amount(amount, resolved), resolved


def parse_fee(text: str, unit: str) -> int:
    """A fee bound in the currency: like an amount, but zero ("no fee at all") is allowed."""
    try:
        if Decimal(text.strip()) == 0:
            return 0
    except InvalidOperation:
        pass  # parse_amount says what is wrong with it
    return units.parse_amount(text, unit)


def pay_to(args: argparse.Namespace) -> Any:
    amount, unit = amount_and_unit(args.dir, args.amount, args.unit)
    max_fee = None if args.max_fee is None else parse_fee(args.max_fee, unit)

    # Our own id when none is given: if --wait runs out, we still know what to ask for.
    payment_id = args.payment_id or secrets.token_hex(8)

    async def go() -> Any:
        # The node answers a waiting `pay` when the payment has ended; past --wait,
        # the payment's view as it stands (pending) is the answer.
        async with open_api_client(args.dir) as client:
            view = None
            with trio.move_on_after(args.wait):
                view = await client.call_within(
                    args.wait + API_WAIT_MARGIN_S,
                    "pay",
                    to=args.to,
                    amount=amount,
                    unit=unit,
                    payment_id=payment_id,
                    max_fee=max_fee,
                    wait=True,
                )
                while view["status"] == "pending":  # the node had too many waiting
                    await trio.sleep(0.05)
                    view = await client.call("payment", payment_id=payment_id)
            if view is None:
                try:
                    view = await client.call("payment", payment_id=payment_id)
                except ApiError as error:
                    if error.code != "not-found":
                        raise
                    raise ApiError(
                        "not-started", f"payment {payment_id} was not started within --wait"
                    ) from None
            return view

    view = trio.run(go)
    if view["status"] == "failed":
        hop = f" at {view['failed_hop']}" if view["failed_hop"] else ""
        reason = view["reason"] or "failed"
        raise PaymentError(reason, f"payment {view['payment_id']} failed: {reason}{hop}")
    return view


def cmd_payment_status(args: argparse.Namespace) -> Any:
    return _call(args.node, "payment", payment_id=args.payment_id)


def cmd_payments(args: argparse.Namespace) -> Any:
    return _call(args.node, "payments")


def cmd_route(args: argparse.Namespace) -> Any:
    amount, unit = amount_and_unit(args.node, args.amount, args.unit)
    return _call(args.node, "route", to=args.to, amount=amount, unit=unit)


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = add_command(parent, common, name, handler, help_text)
        sub.add_argument("--node", type=Path, required=True, metavar="DIR")
        return sub

    payment = commands.add_parser("payment", help="one multi-hop payment").add_subparsers(
        dest="payment_command", required=True, metavar="COMMAND"
    )
    sub = add(payment, "status", cmd_payment_status, "where a payment stands (proof if paid)")
    sub.add_argument("payment_id", metavar="ID")
    add(commands, "payments", cmd_payments, "list this node's payments")
    sub = add(commands, "route", cmd_route, "show the paths a payment would take")
    sub.add_argument("--to", required=True, help="the payee's domain (or name@domain)")
    sub.add_argument("--amount", required=True, help="in the currency, e.g. 12.50")
    sub.add_argument("--unit", required=True, help="e.g. USD or '1E-2 USD'")


EXPECTED_ERRORS = (PaymentError, units.AmountError)
