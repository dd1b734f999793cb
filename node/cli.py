"""The ``ledgermesh`` command line.

Every command has ``--help`` and ``--json``; a failure prints one clear line
on stderr and exits non-zero (1 for a refusal or operating failure, 2 for a
usage error).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from node import cli_accounts, cli_batch, cli_offers, cli_payments, units
from node.api.client import open_api_client
from node.api.protocol import ApiError
from node.cli_accounts import CommandError
from node.config import (
    CONFIG_FILE,
    KEY_FILE,
    LOG_DIRECTORY,
    OPERATOR_KEY_FILE,
    ConfigError,
    NodeConfig,
    PeerConfig,
    load_config,
    parse_address,
    save_config,
)
from node.crypto import KeyFileError, generate_key, parse_public_key, write_key_file
from node.logs import LEVELS, configure_logging
from node.net.base import TransportError
from node.runtime import StartupError, run_node_forever
from node.storage.log import CorruptLogError, CorruptSnapshotError
from node.wire import DecodeError
from simulations import cli as simulations_cli

Handler = Callable[[argparse.Namespace], Any]


AMOUNT_FIELDS = frozenset(
    {"amount", "current", "payable", "receivable", "accepted_in", "accepted_out"}
)


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def _for_people(value: Any, unit: str | None = None) -> Any:
    """Amounts in the currency's decimals, bytes as hex: what a person reads."""
    if isinstance(value, dict):
        unit = value.get("unit", unit) if isinstance(value.get("unit", unit), str) else unit
        return {
            key: (
                units.format_amount(item, unit)
                if key in AMOUNT_FIELDS and type(item) is int and unit is not None
                else _for_people(item, unit)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_for_people(item, unit) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _print(args: argparse.Namespace, result: Any, text: Callable[[Any], str]) -> None:
    if args.json:
        print(json.dumps(result, indent=None, sort_keys=True, default=_json_default))
    else:
        print(text(_for_people(result)))


def _call(directory: Path, op: str, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with open_api_client(directory) as client:
            return await client.call(op, **kwargs)

    return trio.run(go)


# --- init and trust ------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> dict[str, Any]:
    directory: Path = args.dir
    if (directory / CONFIG_FILE).exists():
        raise CommandError(f"{directory} already holds a node ({CONFIG_FILE} exists)")
    listen = parse_address(args.listen)
    directory.mkdir(parents=True, exist_ok=True)
    node_key, operator_key = generate_key(), generate_key()
    write_key_file(directory / KEY_FILE, node_key)
    write_key_file(directory / OPERATOR_KEY_FILE, operator_key)
    (directory / LOG_DIRECTORY).mkdir(exist_ok=True)
    config = NodeConfig(args.name, listen, node_key.public_key, operator_key.public_key)
    save_config(directory, config)
    return {
        "dir": str(directory),
        "name": args.name,
        "listen": args.listen,
        "public_key": node_key.public_key.hex(),
        "operator_key": operator_key.public_key.hex(),
    }


def _parse_limits(texts: list[str]) -> dict[str, int]:
    limits: dict[str, int] = {}
    for text in texts:
        unit_text, separator, amount_text = text.rpartition("=")
        if not separator:
            raise CommandError(f"--limit {text!r} is not UNIT=AMOUNT (e.g. USD=1000.00)")
        unit = units.normalize_unit(unit_text)
        limits[unit] = units.parse_amount(amount_text, unit)
    return limits


def cmd_trust(args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(args.dir)
    address: tuple[str, int] | None
    if args.peer_dir is not None:
        other = load_config(args.peer_dir)
        name, key, address = other.name, other.public_key, other.listen
    else:
        if not (args.peer_key and args.peer_name):
            raise CommandError(
                "give --peer-dir, or --peer-key and --peer-name (and --peer-address)"
            )
        name, key = args.peer_name, parse_public_key(args.peer_key)
        address = parse_address(args.peer_address) if args.peer_address else None
    if key == config.public_key:
        raise CommandError("a node cannot trust itself")
    previous = config.peer_by_key(key)
    limits = dict(previous.limits) if previous is not None else {}
    limits.update(_parse_limits(args.limit))
    save_config(args.dir, config.with_peer(PeerConfig(name, key, address, limits)))
    return {
        "peer": name,
        "public_key": key.hex(),
        "address": f"{address[0]}:{address[1]}" if address else None,
        "limits": {unit: units.format_amount(amount, unit) for unit, amount in limits.items()},
        "note": "restart the node for the change to take effect",
    }


# --- the running node -------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> None:
    configure_logging(args.log_level)
    run_node_forever(args.dir)


def cmd_status(args: argparse.Namespace) -> Any:
    return _call(args.dir, "status")


def cmd_peers(args: argparse.Namespace) -> Any:
    return _call(args.dir, "peers")


def cmd_balances(args: argparse.Namespace) -> Any:
    return _call(args.dir, "balances", peer=args.peer)


def cmd_invoice(args: argparse.Namespace) -> Any:
    config = load_config(args.dir)
    known = sorted({unit for peer in config.peers for unit in peer.limits})
    unit = units.resolve_unit(args.unit, known)
    amount = units.parse_amount(args.amount, unit)
    return _call(args.dir, "invoice", amount=amount, unit=unit)


def _parse_condition(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        condition = bytes.fromhex(text)
    except ValueError:
        raise CommandError("--condition must be 64 hex digits") from None
    if len(condition) != 32:
        raise CommandError("--condition must be 32 bytes (64 hex digits)")
    return condition


def cmd_pay(args: argparse.Namespace) -> Any:
    if (args.peer is None) == (args.to is None):
        raise CommandError("pay needs --peer (a direct transfer) or --to (multi-hop)")
    if args.to is not None:
        if args.condition is not None:
            raise CommandError("--to gets its condition from the payee: drop --condition")
        return cli_payments.pay_to(args)
    config = load_config(args.dir)
    peer = config.peer_by_name(args.peer)
    if peer is None:
        known = ", ".join(p.name for p in config.peers) or "none"
        raise CommandError(f"unknown peer {args.peer!r} (trusted peers: {known})")
    unit = units.resolve_unit(args.unit, sorted(peer.limits))
    amount = units.parse_amount(args.amount, unit)
    condition = _parse_condition(args.condition)
    expires_at_ms = None
    if condition is not None:
        expires_at_ms = int(time.time() * 1000 + args.expires_in * 1000)
    elif args.expires_in is not None:
        raise CommandError("--expires-in needs --condition")
    if condition is not None and args.expires_in is None:
        raise CommandError("--condition needs --expires-in SECONDS")

    async def go() -> Any:
        async with open_api_client(args.dir) as client:
            sent = await client.call(
                "pay",
                peer=peer.name,
                amount=amount,
                unit=unit,
                condition=condition,
                expires_at_ms=expires_at_ms,
            )
            if args.no_wait:
                return sent
            with trio.move_on_after(args.wait):
                while True:
                    view = await client.call(
                        "transfer", peer=peer.name, direction="out", msg_id=sent["msg_id"]
                    )
                    if view["state"] != "pending":
                        return view
                    await trio.sleep(0.05)
            return await client.call(
                "transfer", peer=peer.name, direction="out", msg_id=sent["msg_id"]
            )

    outcome = trio.run(go)
    if outcome.get("state") == "rejected":
        raise CommandError(
            f"transfer {outcome['msg_id']} to {peer.name} rejected: {outcome['reason']}"
        )
    return outcome


# --- log and transcript tools -------------------------------------------------


def cmd_log_inspect(args: argparse.Namespace) -> None:
    from node.inspect import inspect_log

    try:
        for line in inspect_log(args.dir / LOG_DIRECTORY):
            print(json.dumps(line, sort_keys=True))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def cmd_log_verify(args: argparse.Namespace) -> Any:
    from node.inspect import verify_log_directory

    report = verify_log_directory(args.dir, progress=not args.json)
    if not report["ok"]:
        _print(args, report, _text_of)
        raise CommandError(f"log verification failed: {report['problems'][0]}")
    return report


def _parse_party_limits(texts: list[str]) -> dict[str, dict[str, int]]:
    limits: dict[str, dict[str, int]] = {}
    for text in texts:
        party, separator, rest = text.partition(":")
        unit, equals, amount = rest.rpartition("=")
        if not separator or not equals or party not in ("alice", "bob"):
            raise CommandError(f"--limit {text!r} is not alice:UNIT=N or bob:UNIT=N")
        try:
            limits.setdefault(party, {})[unit] = int(amount)
        except ValueError:
            raise CommandError(f"--limit {text!r}: N must be an integer") from None
    return limits


def cmd_snap_replay(args: argparse.Namespace) -> Any:
    from node.snap.transcript import replay_transcript

    lines: list[Any] = []
    try:
        text = args.file.read_text()
    except OSError as error:
        raise CommandError(f"cannot read {args.file}: {error.strerror}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise CommandError(f"{args.file}:{number}: not JSON ({error.msg})") from None
    if args.now is None:
        now_ms = int(time.time() * 1000)
    else:
        try:
            moment = datetime.datetime.fromisoformat(args.now)
        except ValueError:
            raise CommandError(f"--now {args.now!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        now_ms = int(moment.timestamp() * 1000)
    report = replay_transcript(lines, _parse_party_limits(args.limit), now_ms)
    return report.to_json()


# --- text rendering -----------------------------------------------------------


def _text_of(result: Any) -> str:
    """A readable rendering of any result: key: value lines, tables for lists of dicts."""
    if isinstance(result, list):
        if result and all(isinstance(item, dict) for item in result):
            return _table(result)
        return "\n".join(str(item) for item in result) or "(none)"
    if isinstance(result, dict):
        lines = []
        for key, value in result.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f"{key}:")
                lines.append(_indent(_table(value)))
            elif isinstance(value, dict):
                lines.append(f"{key}:")
                lines.append(_indent(_text_of(value)))
            else:
                lines.append(f"{key}: {value}")
        return "\n".join(lines)
    return str(result)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _flat(item: dict[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in item.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                flat[f"{key}.{inner}"] = str(inner_value)
        else:
            flat[key] = "" if value is None else str(value)
    return flat


def _table(items: list[dict[str, Any]]) -> str:
    rows = [_flat(item) for item in items]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(row.get(c, "")) for row in rows)) for c in columns}
    header = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(row.get(c, "").ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join([header, *body])


# --- parser ------------------------------------------------------------------


def _directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, metavar="DIR", help="the node's directory")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    parser = argparse.ArgumentParser(
        prog="ledgermesh",
        description="A validator node of the ledgermesh financial mesh.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        return cli_accounts.add_command(commands, common, name, handler, help_text)

    sub = add("init", cmd_init, "create a node directory: key files and config")
    _directory(sub)
    sub.add_argument("--name", required=True, help="the node's domain, e.g. bank-a.test")
    sub.add_argument("--listen", required=True, help="HOST:PORT of the QUIC endpoint")

    sub = add("trust", cmd_trust, "trust a peer validator and set the credit extended to it")
    _directory(sub)
    sub.add_argument("--peer-dir", type=Path, help="the peer's node directory (same machine)")
    sub.add_argument("--peer-key", help="the peer's public key (hex)")
    sub.add_argument("--peer-address", help="the peer's HOST:PORT")
    sub.add_argument("--peer-name", help="the peer's domain")
    sub.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="UNIT=AMOUNT",
        help="credit extended to the peer, e.g. USD=1000.00 (repeatable)",
    )

    sub = add("run", cmd_run, "run the node until interrupted")
    _directory(sub)
    sub.add_argument("--log-level", choices=LEVELS, default="info")

    _directory(add("status", cmd_status, "show the running node's status"))
    _directory(add("peers", cmd_peers, "show the trusted peers and their links"))

    sub = add("balances", cmd_balances, "show bilateral balances per peer and unit")
    _directory(sub)
    sub.add_argument("--peer", help="only this peer")

    sub = add("invoice", cmd_invoice, "make a preimage; print its condition")
    _directory(sub)
    sub.add_argument("--amount", required=True)
    sub.add_argument("--unit", required=True, help="e.g. USD or '1E-2 USD'")

    sub = add("pay", cmd_pay, "pay a peer directly (--peer) or any validator (--to), and wait")
    _directory(sub)
    sub.add_argument("--peer", help="a trusted peer's name: one bilateral transfer")
    sub.add_argument("--to", help="a validator's domain: a multi-hop payment")
    sub.add_argument(
        "--payment-id", metavar="ID", help="with --to: retrying an id never pays twice"
    )
    sub.add_argument("--max-fee", help="with --to: the most fee to pay, in the currency")
    sub.add_argument("--amount", required=True, help="in the currency, e.g. 12.50")
    sub.add_argument("--unit", required=True, help="e.g. USD or '1E-2 USD'")
    sub.add_argument("--condition", help="SHA-256 condition (hex) for a conditional transfer")
    sub.add_argument("--expires-in", type=float, metavar="SECONDS", help="expiry of the condition")
    sub.add_argument("--no-wait", action="store_true", help="return once the proposal is durable")
    sub.add_argument("--wait", type=float, default=10.0, metavar="SECONDS", help="wait at most")

    log = commands.add_parser("log", help="inspect or verify a node's log").add_subparsers(
        dest="log_command", required=True, metavar="COMMAND"
    )
    for name, handler, help_text in (
        ("inspect", cmd_log_inspect, "print every record as a JSON line"),
        ("verify", cmd_log_verify, "check every frame and the snapshot"),
    ):
        sub = log.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        _directory(sub)

    snap = commands.add_parser("snap", help="SNAP tools").add_subparsers(
        dest="snap_command", required=True, metavar="COMMAND"
    )
    help_text = "replay a SNAP transcript (JSON lines) and print balances and refusals"
    sub = snap.add_parser("replay", help=help_text, description=help_text, parents=[common])
    sub.set_defaults(handler=cmd_snap_replay)
    sub.add_argument("file", type=Path, metavar="FILE.jsonl")
    sub.add_argument("--limit", action="append", default=[], metavar="PARTY:UNIT=N")
    sub.add_argument("--now", help="the clock, ISO 8601 (default: now)")
    cli_accounts.register(commands, common)
    cli_batch.register(commands, common)
    simulations_cli.register(commands, common)
    cli_payments.register(commands, common)
    cli_offers.register(commands, common)
    return parser


EXPECTED_ERRORS = (
    CommandError,
    ConfigError,
    KeyFileError,
    ApiError,
    DecodeError,
    ValueError,
    StartupError,
    CorruptLogError,
    CorruptSnapshotError,
    TransportError,
    OSError,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.handler is not cmd_run:
        configure_logging("warning")
    try:
        result = args.handler(args)
    except (
        *EXPECTED_ERRORS,
        *cli_accounts.EXPECTED_ERRORS,
        *cli_payments.EXPECTED_ERRORS,
        *cli_offers.EXPECTED_ERRORS,
    ) as error:
        message = error.message if isinstance(error, ApiError) else str(error)
        if args.json:
            code = error.code if isinstance(error, ApiError) else type(error).__name__
            print(json.dumps({"error": {"code": code, "message": message}}), file=sys.stderr)
        else:
            print(f"ledgermesh: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    # A result may carry its own exit code: the command ran, and some of its work failed.
    exit_code = result.pop("exit_code", 0) if isinstance(result, dict) else 0
    try:
        if result is not None:
            _print(args, result, _text_of)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) has gone: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return int(exit_code)


if __name__ == "__main__":
    sys.exit(main())
