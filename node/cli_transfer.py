"""``ledgermesh transfer`` to a customer of another validator.

The customer signs a ``CrossTransfer`` on its side (payee address, asset,
amount, payment id, max fee, nonce) and submits it over its own QUIC
connection; its validator holds the funds and pays through the mesh. The
command prints progress on stderr (unless ``--json``), waits until the hold
is settled or released (one ``transfer_status`` call with ``wait``; a
progress query every PROGRESS_INTERVAL_S meanwhile), and ends with the
outcome, the path, the fee paid and the time taken. The same ``--payment-id``
never pays twice: a repeat reports the payment it names. A failed payment
exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from node.api.client import ApiClient
from node.api.protocol import ApiError
from node.cli_accounts import (
    _balances_for_people,
    _decimals,
    _run,
    _user_key,
    format_asset_amount,
    parse_asset_amount,
    sign_for_api,
)
from node.ledger.signed import CrossTransfer
from node.limits import API_WAIT_MARGIN_S, MAX_FEE_PPM_DEFAULT
from node.nurseries import collapse_single_exception_group

POLL_INTERVAL_S = 0.05  # when the node has too many waiting requests to take ours
PROGRESS_INTERVAL_S = 0.25
WAIT_S_DEFAULT = 90.0  # past the payment's deadline (60 s) and its last hop's expiry


class TransferFailed(ApiError):
    """Raised when a cross-bank transfer ends failed (its hold released):
    ``code`` is the reason, the message names the payment and the failed hop."""


def _max_fee(text: str | None, amount: int, decimals: int) -> int:
    if text is None:
        return -(-amount * MAX_FEE_PPM_DEFAULT // 1_000_000)
    try:
        if Decimal(text.strip()) == 0:
            return 0
    except InvalidOperation:
        pass  # parse_asset_amount says what is wrong with it
    return parse_asset_amount(text, decimals)


def _path(view: dict[str, Any] | None, origin: str) -> str | None:
    if view is None:
        return None
    parts = [part for part in view["parts"] if part["state"] == "accepted"] or view["parts"][-1:]
    paths = [" > ".join([origin, *(hop["to"] for hop in part["hops"])]) for part in parts]
    return " | ".join(paths) or None


def cross_transfer(args: argparse.Namespace, to: str) -> Any:
    user_key = _user_key(args.user_key)
    payment_id = args.payment_id or secrets.token_hex(8)
    quiet = bool(getattr(args, "json", False))

    def progress(text: str) -> None:
        if not quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    async def go(client: ApiClient) -> dict[str, Any]:
        started = time.monotonic()
        account = await client.call("account")
        decimals = await _decimals(client, args.asset)
        amount = parse_asset_amount(args.amount, decimals)
        max_fee = _max_fee(args.max_fee, amount, decimals)
        transfer = CrossTransfer(
            account["address"],
            to,
            args.asset,
            amount,
            max_fee,
            payment_id,
            account["last_nonce"] + 1,
            int(time.time() * 1000),
        )
        status = await client.call("cross_transfer", instruction=sign_for_api(user_key, transfer))

        def money(value: int) -> str:
            return f"{format_asset_amount(value, decimals)} {args.asset}"

        progress(f"payment {payment_id}: {money(status['held'])} held (amount + max fee)")
        seen: set[str] = set()

        def show(status: dict[str, Any]) -> None:
            view = status["payment"]
            line = "waiting for the payee's invoice"
            if view is not None and view["parts"]:
                line = f"proposed along {_path(view, account['address'].split('@')[1])}"
            if status["hold"] == "open" and line not in seen:
                seen.add(line)
                progress(line)

        async def follow() -> None:
            """Progress lines, best effort: the waiting call reports any failure."""
            with contextlib.suppress(ApiError):
                while True:
                    await trio.sleep(PROGRESS_INTERVAL_S)
                    show(await client.call("transfer_status", payment_id=payment_id))

        show(status)
        with trio.move_on_after(args.wait), collapse_single_exception_group():
            async with trio.open_nursery() as nursery:
                if not quiet:
                    nursery.start_soon(follow)
                while status["hold"] == "open":
                    status = await client.call_within(
                        args.wait + API_WAIT_MARGIN_S,
                        "transfer_status",
                        payment_id=payment_id,
                        wait=True,
                    )
                    if status["hold"] == "open":  # the node had too many waiting
                        await trio.sleep(POLL_INTERVAL_S)
                nursery.cancel_scope.cancel()
        if status["hold"] == "open":  # --wait ran out: where it stands now
            status = await client.call("transfer_status", payment_id=payment_id)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        view = status["payment"]
        outcome = {"settled": "succeeded", "released": "failed"}.get(status["hold"], "pending")
        fee = status["fee"]
        return {
            "payment_id": payment_id,
            "outcome": outcome,
            "from": account["address"],
            "to": to,
            "amount": money(status["amount"]),
            "fee": None if fee is None else money(fee),
            "max_fee": money(status["max_fee"]),
            "path": _path(view, account["address"].split("@")[1]),
            "reason": status["reason"] if outcome == "failed" else None,
            "failed_hop": None if view is None else view["failed_hop"],
            "preimage": None if view is None else view["preimage"],
            "time_ms": elapsed_ms,
            "balances": _balances_for_people(status["balances"], {args.asset: decimals}),
        }

    result: dict[str, Any] = _run(args.node, user_key, go)
    if result["outcome"] == "failed":
        hop = f" at {result['failed_hop']}" if result["failed_hop"] else ""
        reason = result["reason"] or "failed"
        raise TransferFailed(
            reason, f"payment {payment_id} failed: {reason}{hop}; the hold is released"
        )
    if result["outcome"] == "pending":
        raise TransferFailed("pending", f"payment {payment_id} still pending after {args.wait} s")
    return result
