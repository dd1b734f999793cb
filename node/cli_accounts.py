"""CLI commands for customers, assets, federation, chains and evidence.

Operator commands (``user new``, ``asset define``, ``deposit``...) read the
node directory for its address and the operator key. Customer commands
(``transfer``, ``chain pull``) connect with the customer's own key file and
sign on the customer's side: the node never sees a customer's private key.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from node.api.client import ApiClient, open_api_client
from node.api.protocol import ApiError
from node.config import load_config
from node.crypto import (
    KeyFileError,
    NodeKey,
    generate_key,
    load_key_file,
    parse_public_key,
    write_key_file,
)
from node.federation import decode_record
from node.ledger.chain import entry_from_wire
from node.ledger.codec import domain_of, valid_address, valid_uai
from node.ledger.files import (
    ChainFile,
    check_evidence,
    decode_chain_file,
    encode_chain_file,
    verify_chain_file,
)
from node.ledger.signed import (
    Identity,
    Instruction,
    SignedIdentity,
    SignedInstruction,
    Transfer,
)
from node.limits import KYC_LEVEL_MAX
from node.offers.evidence import (
    OFFER_EVIDENCE_TYPE,
    EvidenceVerdict,
    check_offer_evidence,
    evidence_type,
)
from node.offers.unsettled import UNSETTLED_EVIDENCE_TYPE, check_unsettled_evidence
from node.units import AmountError
from node.wire import DecodeError, pack, unpack

Handler = Callable[[argparse.Namespace], Any]


class CommandError(Exception):
    """A command fails with this one-line message (exit status 1)."""


def _run(directory: Path, key: NodeKey | None, go: Callable[[ApiClient], Any]) -> Any:
    async def main() -> Any:
        async with open_api_client(directory, key=key) as client:
            return await go(client)

    return trio.run(main)


def _call(directory: Path, op: str, **args: Any) -> Any:
    async def go(client: ApiClient) -> Any:
        return await client.call(op, **args)

    return _run(directory, None, go)


def sign_for_api(key: NodeKey, instruction: Instruction) -> bytes:
    """``instruction`` signed by ``key``, packed as the API takes it."""
    request = instruction.signing_request()
    signed = SignedInstruction(instruction, key.public_key, key.sign(request.kind, request.payload))
    return pack(signed.to_wire())


def _address(text: str) -> str:
    if not valid_address(text):
        raise CommandError(f"{text!r} is not a user address like alice@bank-a.test")
    return text


# --- amounts in an asset's decimals -------------------------------------------------


def parse_asset_amount(text: str, decimals: int) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"amount {text!r} is not a number") from None
    scaled = value.scaleb(decimals) if value.is_finite() else value
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise AmountError(f"amount {text} has more than {decimals} decimals")
    amount = int(scaled)
    if amount <= 0:
        raise AmountError(f"amount {text} must be positive")
    return amount


def format_asset_amount(amount: int, decimals: int) -> str:
    if decimals == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


async def _decimals(client: ApiClient, uai: str) -> int:
    if not valid_uai(uai):
        raise CommandError(f"{uai!r} is not an asset like bank-a.test/USD")
    for asset in await client.call("assets"):
        if asset["uai"] == uai:
            return int(asset["decimals"])
    raise CommandError(f"asset {uai} is not defined at this validator")


def _balances_for_people(balances: dict[str, int], decimals: dict[str, int]) -> dict[str, str]:
    return {
        uai: format_asset_amount(amount, decimals.get(uai, 0))
        for uai, amount in sorted(balances.items())
    }


# --- users -----------------------------------------------------------------------


def cmd_user_new(args: argparse.Namespace) -> Any:
    address = _address(args.address)
    config = load_config(args.node)
    if domain_of(address) != config.name:
        raise CommandError(f"{address} is not a user of {config.name}")
    if args.out.exists():
        raise CommandError(f"{args.out} exists; choose another --out")
    attributes = {}
    for text in args.attribute:
        name, equals, value = text.partition("=")
        if not equals:
            raise CommandError(f"--attribute {text!r} is not NAME=VALUE")
        attributes[name] = value
    user_key = generate_key()
    identity = Identity(address, user_key.public_key)
    request = identity.signing_request()
    signed = SignedIdentity(identity, user_key.sign(request.kind, request.payload))
    result = _call(
        args.node,
        "user_register",
        identity=pack(signed.to_wire()),
        kyc_level=args.kyc_level,
        attributes=attributes,
    )
    write_key_file(args.out, user_key)
    result["key_file"] = str(args.out)
    if not args.json:
        del result["federation"]  # the signed record, for machines
    return result


def cmd_user_freeze(args: argparse.Namespace) -> Any:
    return _call(args.node, "user_freeze", address=_address(args.address), frozen=not args.unfreeze)


def cmd_users(args: argparse.Namespace) -> Any:
    return _call(args.dir, "users")


def cmd_resolve(args: argparse.Namespace) -> Any:
    result = _call(args.node, "resolve", address=_address(args.address))
    record = decode_record(result["record"])
    if not record.verifies(record.record.validator_key):
        raise CommandError("the federation record does not verify")
    if not args.json:
        del result["record"]  # the signed record, for machines
    return result


# --- assets and issuance ------------------------------------------------------------


def cmd_asset_define(args: argparse.Namespace) -> Any:
    if not 0 <= args.kyc_level <= KYC_LEVEL_MAX:
        raise CommandError(f"--kyc-level must be 0..{KYC_LEVEL_MAX}")
    max_supply = None
    if args.max_supply is not None:
        max_supply = parse_asset_amount(args.max_supply, args.decimals)
    return _call(
        args.dir,
        "asset_define",
        code=args.code,
        decimals=args.decimals,
        kyc_level=args.kyc_level,
        max_supply=max_supply,
    )


def cmd_assets(args: argparse.Namespace) -> Any:
    return _call(args.dir, "assets")


def _issue(args: argparse.Namespace, op: str) -> Any:
    address = _address(args.user)

    async def go(client: ApiClient) -> Any:
        decimals = await _decimals(client, args.asset)
        amount = parse_asset_amount(args.amount, decimals)
        result = await client.call(op, address=address, uai=args.asset, amount=amount)
        result["balances"] = _balances_for_people(result["balances"], {args.asset: decimals})
        return result

    return _run(args.dir, None, go)


def cmd_deposit(args: argparse.Namespace) -> Any:
    return _issue(args, "deposit")


def cmd_withdraw(args: argparse.Namespace) -> Any:
    return _issue(args, "withdraw")


def cmd_account(args: argparse.Namespace) -> Any:
    return _call(args.dir, "account", address=_address(args.user))


# --- customers -------------------------------------------------------------------


def _user_key(path: Path) -> NodeKey:
    return load_key_file(path)


def cmd_transfer(args: argparse.Namespace) -> Any:
    to = _address(args.to)
    config = load_config(args.node)
    if domain_of(to) != config.name:
        from node.cli_transfer import cross_transfer  # it builds on this module

        return cross_transfer(args, to)
    user_key = _user_key(args.user_key)

    async def go(client: ApiClient) -> Any:
        account = await client.call("account")
        decimals = await _decimals(client, args.asset)
        amount = parse_asset_amount(args.amount, decimals)
        transfer = Transfer(
            account["address"],
            to,
            args.asset,
            amount,
            account["last_nonce"] + 1,
            int(time.time() * 1000),
        )
        result = await client.call("ledger_transfer", instruction=sign_for_api(user_key, transfer))
        result["balances"] = _balances_for_people(result["balances"], {args.asset: decimals})
        return result

    return _run(args.node, user_key, go)


def cmd_chain_pull(args: argparse.Namespace) -> Any:
    user_key = _user_key(args.user_key)

    async def go(client: ApiClient) -> Any:
        entries: list[Any] = []
        first: dict[str, Any] | None = None
        while True:
            page = await client.call("chain_pull", from_seq=len(entries))
            first = first or page
            entries += [entry_from_wire(unpack(raw, len(raw))) for raw in page["entries"]]
            if len(entries) >= page["length"] or not page["entries"]:
                break
        assert first is not None
        federation = decode_record(first["federation"]) if first["federation"] else None
        return ChainFile(first["validator_key"], federation, tuple(entries))

    chain_file: ChainFile = _run(args.node, user_key, go)
    args.out.write_bytes(encode_chain_file(chain_file))
    return {"out": str(args.out), "entries": len(chain_file.entries)}


def cmd_chain_verify(args: argparse.Namespace) -> Any:
    try:
        raw = args.file.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {args.file}: {error.strerror}") from None
    try:
        chain_file = decode_chain_file(raw)
    except DecodeError as error:
        raise CommandError(f"{args.file}: not a valid chain file: {error}") from None
    trusted = None
    if args.validator_key is not None:
        trusted = parse_public_key(args.validator_key)
    elif args.node is not None:
        trusted = load_config(args.node).public_key
    report = verify_chain_file(chain_file, trusted)
    if not report.ok:
        raise CommandError(f"{args.file}: does not verify: {report.problem}")
    return {
        "ok": True,
        "ubi": report.ubi,
        "entries": report.entries,
        "balances_in_smallest_units": dict(sorted(report.balances.items())),
        "held_in_smallest_units": dict(sorted(report.held.items())),
        "head_hash": report.head_hash,
        "validator_key": chain_file.validator_key,
        "pinned": trusted is not None,
    }


def cmd_evidence_check(args: argparse.Namespace) -> Any:
    try:
        raw = args.file.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {args.file}: {error.strerror}") from None
    kind = evidence_type(raw)
    if kind == OFFER_EVIDENCE_TYPE:
        return _offer_verdict(args.file, kind, check_offer_evidence(raw))
    if kind == UNSETTLED_EVIDENCE_TYPE:
        now_ms = int(time.time() * 1000) if args.now is None else args.now
        return _offer_verdict(args.file, kind, check_unsettled_evidence(raw, now_ms))
    verdict = check_evidence(raw)
    result = {
        "valid": verdict.valid,
        "reason": verdict.reason,
        "incriminates": verdict.validator_key,
        "ubi": verdict.ubi,
        "seq": verdict.seq,
        "detail": verdict.detail,
    }
    if not verdict.valid:
        raise CommandError(f"{args.file}: not a proof of fraud: {verdict.reason} {verdict.detail}")
    return result


# What a valid file of each kind shows. An over-fill is proven by M's signatures
# alone; an exchange never settled cannot be (docs/OFFERS.md, "Evidence").
_STANDING = {
    OFFER_EVIDENCE_TYPE: "proof of fraud",
    UNSETTLED_EVIDENCE_TYPE: "claim",
}
_UNSETTLED_CAVEAT = (
    "the maker's validator accepted, confirmed the taker's leg A held and cannot show the "
    "exchange settled; a taker's validator that stalled or refused leg B can make the same "
    "file, so it is a claim the maker's validator answers with the secret or its logs, not "
    "a proof of fraud"
)


def _offer_verdict(file: Path, kind: str, verdict: EvidenceVerdict) -> dict[str, Any]:
    """The answer of ``evidence check`` for an offer's evidence (overfill, unsettled)."""
    standing = _STANDING[kind]
    if not verdict.valid or verdict.validator_key is None:
        what = "a valid claim" if kind == UNSETTLED_EVIDENCE_TYPE else "a proof of fraud"
        raise CommandError(f"{file}: not {what}: {verdict.detail}")
    result = {
        "valid": True,
        "reason": kind,
        "standing": standing,
        "incriminates": verdict.validator_key.hex(),
        "detail": verdict.detail,
    }
    if kind == UNSETTLED_EVIDENCE_TYPE:
        result["caveat"] = _UNSETTLED_CAVEAT
    return result


# --- parser --------------------------------------------------------------------------


def add_command(
    parent: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    name: str,
    handler: Handler,
    help_text: str,
) -> argparse.ArgumentParser:
    """A subcommand with the common options (``--json``) that runs ``handler``."""
    sub = parent.add_parser(name, help=help_text, description=help_text, parents=[common])
    sub.set_defaults(handler=handler)
    return sub


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
        return add_command(parent, common, name, handler, help_text)

    user = commands.add_parser("user", help="customers of a validator").add_subparsers(
        dest="user_command", required=True, metavar="COMMAND"
    )
    sub = add(user, "new", cmd_user_new, "make a user key and register the user")
    sub.add_argument("address", help="name@domain, the domain being the node's")
    sub.add_argument("--node", type=Path, required=True, help="the node directory")
    sub.add_argument("--out", type=Path, required=True, help="where to write the user key")
    sub.add_argument("--kyc-level", type=int, default=0, help=f"0..{KYC_LEVEL_MAX}")
    sub.add_argument("--attribute", action="append", default=[], metavar="NAME=VALUE")
    sub = add(user, "freeze", cmd_user_freeze, "freeze (or --unfreeze) a user's account")
    sub.add_argument("address")
    sub.add_argument("--node", type=Path, required=True)
    sub.add_argument("--unfreeze", action="store_true")

    sub = add(commands, "users", cmd_users, "list the validator's users")
    sub.add_argument("dir", type=Path, metavar="DIR")

    sub = add(commands, "resolve", cmd_resolve, "resolve name@domain through the mesh")
    sub.add_argument("address")
    sub.add_argument("--node", type=Path, required=True)

    asset = commands.add_parser("asset", help="assets the validator issues").add_subparsers(
        dest="asset_command", required=True, metavar="COMMAND"
    )
    sub = add(asset, "define", cmd_asset_define, "define an asset this validator issues")
    sub.add_argument("dir", type=Path, metavar="DIR")
    sub.add_argument("--code", required=True, help="e.g. USD: the UAI is DOMAIN/CODE")
    sub.add_argument("--decimals", type=int, required=True)
    sub.add_argument("--kyc-level", type=int, default=0, help="needed to hold it")
    sub.add_argument("--max-supply", help="in the asset's decimals")
    sub = add(commands, "assets", cmd_assets, "list the validator's assets")
    sub.add_argument("dir", type=Path, metavar="DIR")

    for name, handler, help_text in (
        ("deposit", cmd_deposit, "emit an asset onto a user's ledger"),
        ("withdraw", cmd_withdraw, "redeem an asset from a user's ledger"),
    ):
        sub = add(commands, name, handler, help_text)
        sub.add_argument("dir", type=Path, metavar="DIR")
        sub.add_argument("--user", required=True, help="name@domain")
        sub.add_argument("--amount", required=True, help="in the asset's decimals, e.g. 100.00")
        sub.add_argument("--asset", required=True, help="e.g. bank-a.test/USD")
    sub.add_argument(
        "--payment-id", help="to another bank: your id for it (the same id never pays twice)"
    )
    sub.add_argument(
        "--max-fee", help="to another bank: the most you pay in fees (default 1 %% of the amount)"
    )
    sub.add_argument(
        "--wait", type=float, default=90.0, help="to another bank: seconds to wait for the outcome"
    )

    sub = add(commands, "account", cmd_account, "a user's balances and chain length")
    sub.add_argument("dir", type=Path, metavar="DIR")
    sub.add_argument("--user", required=True)

    sub = add(commands, "transfer", cmd_transfer, "pay another customer (signed by you)")
    _transfer_arguments(sub)

    chain = commands.add_parser("chain", help="a customer's own ledger").add_subparsers(
        dest="chain_command", required=True, metavar="COMMAND"
    )
    sub = add(chain, "pull", cmd_chain_pull, "fetch your ledger into a file")
    sub.add_argument("--user-key", type=Path, required=True)
    sub.add_argument("--node", type=Path, required=True)
    sub.add_argument("--out", type=Path, required=True)
    sub = add(chain, "verify", cmd_chain_verify, "verify a chain file offline")
    sub.add_argument("file", type=Path, metavar="FILE")
    sub.add_argument("--validator-key", help="pin the validator's key (hex)")
    sub.add_argument("--node", type=Path, help="pin the key of this node directory")

    evidence = commands.add_parser("evidence", help="proofs of fraud").add_subparsers(
        dest="evidence_command", required=True, metavar="COMMAND"
    )
    sub = add(evidence, "check", cmd_evidence_check, "verify a proof of fraud")
    sub.add_argument("file", type=Path, metavar="FILE")
    sub.add_argument(
        "--now",
        type=int,
        metavar="MS",
        help="check as of this time, ms since the epoch (default: now); a claim that a"
        " take was never settled holds only once its settlement window has passed",
    )


def _transfer_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--user-key", type=Path, required=True, help="your key file")
    sub.add_argument("--node", type=Path, required=True, help="your validator's directory")
    sub.add_argument("--to", required=True, help="name@domain")
    sub.add_argument("--amount", required=True, help="in the asset's decimals, e.g. 12.50")
    sub.add_argument("--asset", required=True, help="e.g. bank-a.test/USD")
    sub.add_argument(
        "--payment-id", help="to another bank: your id for it (the same id never pays twice)"
    )
    sub.add_argument(
        "--max-fee", help="to another bank: the most you pay in fees (default 1 %% of the amount)"
    )
    sub.add_argument(
        "--wait", type=float, default=90.0, help="to another bank: seconds to wait for the outcome"
    )


EXPECTED_ERRORS = (CommandError, KeyFileError, ApiError, DecodeError, AmountError)
