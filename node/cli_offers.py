"""CLI commands for exchange offers: make, find, watch, take and cancel them.

The maker and the taker sign on their side (``--user-key``); the validator
checks, reserves or holds, co-signs and answers once its records are durable.
Search and watch ask a validator what its order book holds: with
``--user-key`` as that customer, else with the node's operator key.

Amounts are typed and shown in the asset's decimals. A validator knows the
decimals of its own assets and of any asset whose code has a unit in its
``[units]`` (that is how it is paid across validators); the node answers
them with every offer it lists (``sell_decimals``, ``buy_decimals``).

``offer claim`` writes the taker's claim against a maker's validator that
accepted a take and never settled it (``node.offers.unsettled``), from what
the taker's validator kept of the take; ``evidence check`` verifies it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from node.api.client import ApiClient
from node.api.protocol import ApiError
from node.cli_accounts import (
    CommandError,
    _run,
    _user_key,
    add_command,
    format_asset_amount,
    parse_asset_amount,
    sign_for_api,
)
from node.crypto import NodeKey
from node.ledger.codec import valid_uai
from node.ledger.signed import (
    Offer,
    OfferCancel,
    Take,
    pay_for,
)
from node.limits import MAX_FEE_PPM_DEFAULT, OFFER_SEARCH_RESULTS_MAX
from node.offers.unsettled import (
    check_unsettled_evidence,
    decode_unsettled_evidence,
    settlement_window_end_ms,
    unsettled_claim,
)

Handler = Callable[[argparse.Namespace], Any]

POLL_INTERVAL_S = 0.05
WATCH_POLL_INTERVAL_S = 0.25
TAKE_WAIT_S_DEFAULT = 120.0  # past both legs' payments and the slower leg's expiry
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class TakeFailed(ApiError):
    """Raised when a take ends without an exchange: ``code`` is the reason."""


def parse_duration_ms(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``2d`` -> milliseconds."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise CommandError(f"duration {text!r} is not like 90s, 15m, 1h or 2d")
    return int(match.group(1)) * _DURATION_MS[match.group(2)]


def _uai(text: str) -> str:
    if not valid_uai(text):
        raise CommandError(f"{text!r} is not an asset like bank-a.test/USD")
    return text


def _offer_id(text: str) -> str:
    text = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{8,64}", text):
        raise CommandError(f"offer id {text!r} is not 8..64 hex digits (a prefix will do)")
    return text


def _client_key(args: argparse.Namespace) -> NodeKey | None:
    return None if getattr(args, "user_key", None) is None else _user_key(args.user_key)


def _money(amount: int, decimals: int | None, uai: str) -> str:
    return f"{amount if decimals is None else format_asset_amount(amount, decimals)} {uai}"


def offer_for_people(offer: dict[str, Any]) -> dict[str, Any]:
    """A node's view of an offer, amounts in decimals next to the raw integers."""
    sell_d, buy_d = offer.get("sell_decimals"), offer.get("buy_decimals")
    shown = dict(offer)
    shown["sell"] = _money(offer["sell_amount"], sell_d, offer["sell_uai"])
    shown["buy"] = _money(offer["buy_amount"], buy_d, offer["buy_uai"])
    shown["left_shown"] = _money(offer["left"], sell_d, offer["sell_uai"])
    return shown


# --- offer create / cancel / take -----------------------------------------------------


def cmd_offer_create(args: argparse.Namespace) -> Any:
    key = _user_key(args.user_key)
    sell_uai, buy_uai = _uai(args.sell[1]), _uai(args.buy[1])
    expires_in_ms = parse_duration_ms(args.expires_in)

    async def go(client: ApiClient) -> Any:
        account = await client.call("account")
        sell_d = (await client.call("asset_info", uai=sell_uai))["decimals"]
        buy_d = (await client.call("asset_info", uai=buy_uai))["decimals"]
        sell_amount = parse_asset_amount(args.sell[0], sell_d)
        buy_amount = parse_asset_amount(args.buy[0], buy_d)
        min_fill = 1 if args.min_fill is None else parse_asset_amount(args.min_fill, sell_d)
        if args.max_fee is None:
            max_fee = -(-sell_amount * MAX_FEE_PPM_DEFAULT // 1_000_000)
        else:
            max_fee = 0 if float(args.max_fee) == 0 else parse_asset_amount(args.max_fee, sell_d)
        now_ms = int(time.time() * 1000)
        offer = Offer(
            account["address"],
            sell_uai,
            sell_amount,
            buy_uai,
            buy_amount,
            min_fill,
            max_fee,
            now_ms + expires_in_ms,
            account["last_nonce"] + 1,
            now_ms,
        )
        return await client.call("offer_create", instruction=sign_for_api(key, offer))

    return offer_for_people(_run(args.node, key, go))


def cmd_offer_cancel(args: argparse.Namespace) -> Any:
    key = _user_key(args.user_key)
    wanted = _offer_id(args.offer_id)

    async def go(client: ApiClient) -> Any:
        account = await client.call("account")
        offer = await client.call("offer", offer_id=wanted)
        cancel = OfferCancel(
            account["address"], bytes.fromhex(offer["offer_id"]), account["last_nonce"] + 1
        )
        return await client.call("offer_cancel", instruction=sign_for_api(key, cancel))

    return offer_for_people(_run(args.node, key, go))


def take_of(
    offer: dict[str, Any], taker: str, nonce: int, amount: int, max_fee: int | None = None
) -> Take:
    """A take of ``amount`` of ``offer`` (a node's view of it, as the ``offer`` op
    answers), paying what the offer's price asks; ``max_fee`` None: the default
    share (MAX_FEE_PPM_DEFAULT) of the pay."""
    terms = Offer(
        offer["maker"],
        offer["sell_uai"],
        offer["sell_amount"],
        offer["buy_uai"],
        offer["buy_amount"],
        offer["min_fill"],
        *(0, 0, 1, 0),  # only the price and the minimum matter here
    )
    pay = pay_for(terms, amount)
    if max_fee is None:
        max_fee = -(-pay * MAX_FEE_PPM_DEFAULT // 1_000_000)
    return Take(
        taker,
        bytes.fromhex(offer["offer_id"]),
        offer["maker"],
        offer["sell_uai"],
        offer["buy_uai"],
        amount,
        pay,
        max_fee,
        nonce,
        int(time.time() * 1000),
    )


def cmd_offer_take(args: argparse.Namespace) -> Any:
    key = _user_key(args.user_key)
    wanted = _offer_id(args.offer_id)
    quiet = bool(args.json)

    def progress(text: str) -> None:
        if not quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    async def go(client: ApiClient) -> Any:
        started = time.monotonic()
        account = await client.call("account")
        offer = await client.call("offer", offer_id=wanted)
        sell_d, buy_d = offer["sell_decimals"], offer["buy_decimals"]
        if sell_d is None or buy_d is None:
            raise CommandError("this validator does not know the decimals of that offer's assets")
        amount = offer["left"] if args.amount is None else parse_asset_amount(args.amount, sell_d)
        same_bank = offer["validator"] == account["address"].partition("@")[2]
        max_fee: int | None = None  # the default share of the pay
        if same_bank:
            max_fee = 0
        elif args.max_fee is not None:
            max_fee = 0 if float(args.max_fee) == 0 else parse_asset_amount(args.max_fee, buy_d)
        take = take_of(offer, account["address"], account["last_nonce"] + 1, amount, max_fee)
        pay = take.pay
        progress(
            f"taking {_money(amount, sell_d, offer['sell_uai'])} "
            f"for {_money(pay, buy_d, offer['buy_uai'])} from {offer['maker']}"
        )
        status = await client.call("offer_take", instruction=sign_for_api(key, take))
        seen: set[str] = set()
        with trio.move_on_after(args.wait):
            while status["state"] not in ("settled", "failed"):
                if status["state"] not in seen:
                    seen.add(status["state"])
                    progress(status["state"])
                await trio.sleep(POLL_INTERVAL_S)
                status = await client.call("take_status", take_id=status["take_id"])
        status["time_ms"] = round((time.monotonic() - started) * 1000)
        status["amount_shown"] = _money(amount, sell_d, offer["sell_uai"])
        status["pay_shown"] = _money(pay, buy_d, offer["buy_uai"])
        return status

    result: dict[str, Any] = _run(args.node, key, go)
    if result["state"] == "failed":
        reason = result.get("reason") or "failed"
        raise TakeFailed(reason, f"take {result['take_id'][:16]} failed: {reason}")
    if result["state"] != "settled":
        raise TakeFailed("pending", f"take {result['take_id'][:16]} still {result['state']}")
    return result


# --- offer claim -------------------------------------------------------------------------


def claim_of_status(status: dict[str, Any]) -> bytes:
    """The claim file of a take, from its status as the taker's validator answers
    it (``take_status``). Raises CommandError when there is nothing to claim."""
    take_id, state = status["take_id"], status["state"]
    if status.get("acceptance") is None:
        raise CommandError(
            f"take {take_id[:16]} has no acceptance ({state}): "
            "the maker's validator signed nothing to claim against"
        )
    if state == "settled":
        raise CommandError(f"take {take_id[:16]} is settled: nothing to claim")
    if status.get("held") is None:
        raise CommandError(
            f"take {take_id[:16]} ({state}): the maker's validator never confirmed your "
            "leg A held, so there is nothing to claim (leg A did not reach it, it refused "
            "it, or it stalled before paying leg B; a take from before receipts has none); "
            "your hold is released when leg A fails or expires"
        )
    if status.get("take") is None or status.get("offer") is None:
        raise CommandError(
            f"take {take_id[:16]}: your validator did not keep the maker's signed offer "
            "(gossip no longer held it when you took it, or the validator predates claims)"
        )
    return unsettled_claim(
        bytes.fromhex(status["offer"]),
        bytes.fromhex(status["take"]),
        bytes.fromhex(status["acceptance"]),
        bytes.fromhex(status["held"]),
    )


def cmd_offer_claim(args: argparse.Namespace) -> Any:
    key = _user_key(args.user_key)
    take_id = args.take_id.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", take_id):
        raise CommandError(f"take id {take_id!r} is not 64 hex digits (offer take shows it)")

    async def go(client: ApiClient) -> Any:
        return await client.call("take_status", take_id=take_id)

    claim = claim_of_status(_run(args.node, key, go))
    try:
        args.out.write_bytes(claim)
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error.strerror}") from None
    evidence = decode_unsettled_evidence(claim)
    now_ms = int(time.time() * 1000)
    verdict = check_unsettled_evidence(claim, now_ms)
    return {
        "out": str(args.out),
        "take_id": take_id,
        "incriminates": evidence.acceptance.acceptance.validator_key.hex(),
        "validator": evidence.acceptance.acceptance.validator,
        "proof_from_ms": settlement_window_end_ms(evidence) + 1,
        "proof_now": verdict.valid,
        "detail": verdict.detail,
    }


# --- offers search / watch ---------------------------------------------------------------


def _search_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.asset is None and (args.sell is None or args.buy is None):
        raise CommandError("give --sell UAI and --buy UAI, or --asset UAI")
    if args.asset is not None and (args.sell is not None or args.buy is not None):
        raise CommandError("--asset lists every offer of an asset: give it alone")
    found: dict[str, Any] = {"limit": args.limit}
    if args.asset is not None:
        found["asset"] = _uai(args.asset)
    else:
        # The searcher sells what the maker buys: offers selling --buy for --sell.
        found["sell"] = _uai(args.buy)
        found["buy"] = _uai(args.sell)
    return found


def cmd_offers_search(args: argparse.Namespace) -> Any:
    query = _search_args(args)

    async def go(client: ApiClient) -> Any:
        return await client.call("offers_search", **query)

    found = [offer_for_people(offer) for offer in _run(args.node, _client_key(args), go)]
    if args.json:
        return found
    return [_row(offer) for offer in found] or "no offers"


def _row(offer: dict[str, Any]) -> dict[str, str]:
    """One line of the human table: what is left, the price, who, until when."""
    left_s = max(0, (offer["expires_ms"] - int(time.time() * 1000)) // 1000)
    expires = (
        f"{left_s // 3600}h{left_s % 3600 // 60:02d}m"
        if left_s >= 3600
        else f"{left_s // 60}m{left_s % 60:02d}s"
    )
    sell_d, buy_d = offer.get("sell_decimals"), offer.get("buy_decimals")
    price = offer["buy_amount"] / offer["sell_amount"]
    if sell_d is not None and buy_d is not None:
        price *= 10 ** (sell_d - buy_d)
    return {
        "offer": offer["offer_id"][:16],
        "selling": offer["left_shown"],
        "price": f"{price:.6g} {offer['buy_uai']}",
        "min fill": _money(offer["min_fill"], sell_d, "").strip(),
        "maker": offer["maker"],
        "expires in": expires,
    }


def cmd_offers_watch(args: argparse.Namespace) -> Any:
    asset = _uai(args.asset)
    shown = 0

    def show(change: dict[str, Any]) -> None:
        offer = offer_for_people(change["offer"])
        if args.json:
            print(json.dumps({"change": change["change"], "offer": offer}), flush=True)
        else:
            print(
                f"{change['change']:<8} {offer['offer_id'][:16]}  sell {offer['left_shown']}"
                f" (of {offer['sell']}) for {offer['buy']}  maker {offer['maker']}",
                flush=True,
            )

    async def go(client: ApiClient) -> None:
        nonlocal shown
        answer = await client.call("offers_changes", asset=asset, after=None)
        if not args.json:
            print(f"watching {asset} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        for offer in answer["current"]:
            show({"change": "live", "offer": offer})
        cursor = answer["cursor"]
        with trio.move_on_after(args.duration if args.duration is not None else float("inf")):
            while args.count is None or shown < args.count:
                await trio.sleep(WATCH_POLL_INTERVAL_S)
                answer = await client.call("offers_changes", asset=asset, after=cursor)
                if answer["gap"]:
                    print("(changes were missed: the node's journal moved on)", file=sys.stderr)
                for change in answer["changes"]:
                    show(change)
                    shown += 1
                cursor = answer["cursor"]

    _run(args.node, _client_key(args), go)
    return None


def cmd_offer_show(args: argparse.Namespace) -> Any:
    wanted = _offer_id(args.offer_id)

    async def go(client: ApiClient) -> Any:
        return await client.call("offer", offer_id=wanted)

    return offer_for_people(_run(args.node, _client_key(args), go))


# --- the parser ----------------------------------------------------------------------------


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
        *,
        user_key_required: bool,
    ) -> argparse.ArgumentParser:
        sub = add_command(parent, common, name, handler, help_text)
        sub.add_argument("--node", type=Path, required=True, metavar="DIR", help="your validator")
        sub.add_argument(
            "--user-key",
            type=Path,
            required=user_key_required,
            help="your key file"
            if user_key_required
            else "ask as this customer (default: operator)",
        )
        return sub

    offer = commands.add_parser("offer", help="one exchange offer").add_subparsers(
        dest="offer_command", required=True, metavar="COMMAND"
    )
    sub = add(
        offer,
        "create",
        cmd_offer_create,
        "sign an offer; your validator reserves and gossips it",
        user_key_required=True,
    )
    sub.add_argument(
        "--sell",
        nargs=2,
        required=True,
        metavar=("AMOUNT", "UAI"),
        help="what you give, e.g. 100.00 bank-a.test/EUR",
    )
    sub.add_argument(
        "--buy",
        nargs=2,
        required=True,
        metavar=("AMOUNT", "UAI"),
        help="what you want for all of it, e.g. 110.00 bank-b.test/USD",
    )
    sub.add_argument("--expires-in", required=True, help="e.g. 90s, 15m, 1h, 2d")
    sub.add_argument("--min-fill", help="the least of --sell one take may buy (default: any)")
    sub.add_argument("--max-fee", help="mesh fees you pay for fills to other banks (default 1 %%)")
    sub = add(
        offer,
        "cancel",
        cmd_offer_cancel,
        "cancel your offer; the reserve comes back",
        user_key_required=True,
    )
    sub.add_argument("offer_id", metavar="OFFER_ID", help="hex, or a unique prefix of 8+ digits")
    sub = add(
        offer,
        "take",
        cmd_offer_take,
        "take an offer: both legs settle or neither",
        user_key_required=True,
    )
    sub.add_argument("offer_id", metavar="OFFER_ID", help="hex, or a unique prefix of 8+ digits")
    sub.add_argument(
        "--amount", help="how much of what the offer sells (default: all that is left)"
    )
    sub.add_argument("--max-fee", help="mesh fees you pay for your leg (default 1 %%)")
    sub.add_argument(
        "--wait", type=float, default=TAKE_WAIT_S_DEFAULT, help="seconds to wait for the outcome"
    )
    sub = add(
        offer,
        "claim",
        cmd_offer_claim,
        "write your claim against a maker's validator that accepted your take, confirmed"
        " your payment held, and never settled (check it with: evidence check FILE)",
        user_key_required=True,
    )
    sub.add_argument("take_id", metavar="TAKE_ID", help="the take's id, 64 hex digits")
    sub.add_argument("--out", type=Path, required=True, help="where to write the claim file")
    sub = add(
        offer,
        "show",
        cmd_offer_show,
        "one offer as this validator knows it",
        user_key_required=False,
    )
    sub.add_argument("offer_id", metavar="OFFER_ID")

    offers = commands.add_parser("offers", help="find exchange offers").add_subparsers(
        dest="offers_command", required=True, metavar="COMMAND"
    )
    sub = add(
        offers,
        "search",
        cmd_offers_search,
        "offers for a pair, best price first",
        user_key_required=False,
    )
    sub.add_argument("--sell", help="the asset you would give (UAI)")
    sub.add_argument("--buy", help="the asset you want (UAI)")
    sub.add_argument("--asset", help="every offer that mentions this asset")
    sub.add_argument(
        "--limit", type=int, default=20, help=f"at most this many (<= {OFFER_SEARCH_RESULTS_MAX})"
    )
    sub = add(
        offers,
        "watch",
        cmd_offers_watch,
        "stream new, changed and removed offers of an asset",
        user_key_required=False,
    )
    sub.add_argument("--asset", required=True, help="the asset (UAI) to watch")
    sub.add_argument("--count", type=int, help="stop after this many changes")
    sub.add_argument("--duration", type=float, help="stop after this many seconds")


EXPECTED_ERRORS = (TakeFailed,)
