"""The operator API: requests and responses between the CLI and a running node.

Rules:
- The operator's client connects over the node's QUIC endpoint with the
  operator key; the handshake authenticates it, so requests carry no
  signature of their own. Only the operator key named in ``node.toml`` is
  let in.
- A request is ``{"id": int, "op": str, "args": map}``; the answer is
  ``{"id": int, "ok": true, "result": ...}`` or
  ``{"id": int, "ok": false, "error": {"code": str, "message": str}}``.
- Requests are decoded strictly, like everything from outside: an unknown op
  or a bad argument is an ``ApiError`` with a code, never a crash.
- A node answers a request that changed state only after the change is
  durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    API_FRAME_BYTES_MAX,
    ASSET_DECIMALS_MAX,
    HASH_BYTES,
    KYC_LEVEL_MAX,
    LEDGER_TRANSFERS_PER_REQUEST_MAX,
    NAME_LENGTH_MAX,
    OFFER_ID_PREFIX_MIN,
    OFFER_SEARCH_RESULTS_MAX,
    PAY_BATCH_TRANSFERS_MAX,
    PAYMENT_ID_LENGTH_MAX,
    UAI_LENGTH_MAX,
)
from node.wire import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    pack,
    require_bytes,
    require_int,
    require_str,
    unpack,
    valid_unit,
)

REQUEST_ID_MAX = 2**63 - 1


class ApiError(Exception):
    """Raised (and sent back as an error answer) when a request cannot be served.

    ``code`` is stable and machine-readable; ``message`` is for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    request_id: int
    op: str
    args: dict[str, Any]


# op -> (required args, optional args). Operator operations need the operator key.
OPERATIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "status": (frozenset(), frozenset()),
    "peers": (frozenset(), frozenset()),
    "balances": (frozenset(), frozenset({"peer"})),
    "pay": (
        frozenset({"amount", "unit"}),
        frozenset({"peer", "condition", "expires_at_ms", "to", "payment_id", "max_fee", "wait"}),
    ),
    "payment": (frozenset({"payment_id"}), frozenset()),
    "payments": (frozenset(), frozenset()),
    "route": (frozenset({"to", "amount", "unit"}), frozenset({"max_fee"})),
    "invoice": (frozenset({"amount", "unit"}), frozenset()),
    "transfer": (frozenset({"peer", "direction", "msg_id"}), frozenset()),
    "pay_batch": (frozenset({"peer", "unit", "amounts"}), frozenset()),
    "user_register": (frozenset({"identity", "kyc_level"}), frozenset({"attributes"})),
    "user_freeze": (frozenset({"address", "frozen"}), frozenset()),
    "users": (frozenset(), frozenset()),
    "asset_define": (frozenset({"code", "decimals"}), frozenset({"kyc_level", "max_supply"})),
    "assets": (frozenset(), frozenset()),
    "deposit": (frozenset({"address", "uai", "amount"}), frozenset()),
    "withdraw": (frozenset({"address", "uai", "amount"}), frozenset()),
    "account": (frozenset(), frozenset({"address"})),
    "resolve": (frozenset({"address"}), frozenset()),
    # customer operations: the connection's key is the customer
    "ledger_transfer": (frozenset({"instruction"}), frozenset()),
    "ledger_transfers": (frozenset({"instructions"}), frozenset()),
    "chain_pull": (frozenset(), frozenset({"from_seq"})),
    "cross_transfer": (frozenset({"instruction"}), frozenset()),
    "transfer_status": (frozenset({"payment_id"}), frozenset({"wait"})),
    "asset_info": (frozenset({"uai"}), frozenset()),
    "offer_create": (frozenset({"instruction"}), frozenset()),
    "offer_cancel": (frozenset({"instruction"}), frozenset()),
    "offer_take": (frozenset({"instruction"}), frozenset()),
    "take_status": (frozenset({"take_id"}), frozenset()),
    "offer": (frozenset({"offer_id"}), frozenset()),
    "offers_search": (frozenset({"limit"}), frozenset({"sell", "buy", "asset"})),
    "offers_changes": (frozenset({"asset"}), frozenset({"after"})),
}
OFFER_OPERATIONS = frozenset(
    {
        "asset_info",
        "offer_create",
        "offer_cancel",
        "offer_take",
        "take_status",
        "offer",
        "offers_search",
        "offers_changes",
    }
)
CUSTOMER_OPERATIONS = frozenset(
    {
        "account",
        "resolve",
        "ledger_transfer",
        "ledger_transfers",
        "chain_pull",
        "assets",
        "cross_transfer",
        "transfer_status",
        *OFFER_OPERATIONS,
    }
)


def encode_request(request: Request) -> bytes:
    return pack({"id": request.request_id, "op": request.op, "args": request.args})


def decode_request(payload: bytes) -> Request:
    """Decode and check a request. Raises ApiError("bad-request", ...)."""
    try:
        fields = unpack(payload, API_FRAME_BYTES_MAX)
        if type(fields) is not dict:
            raise DecodeError("malformed", "a request must be a map")
        check_fields(fields, frozenset({"id", "op", "args"}), frozenset())
        request_id = require_int(fields["id"], "id", 0, REQUEST_ID_MAX)
        op = require_str(fields["op"], "op", 32)
        args = fields["args"]
        if type(args) is not dict:
            raise DecodeError("bad-field", "args must be a map")
        if op not in OPERATIONS:
            raise ApiError("unknown-op", f"no operation {op!r}")
        required, optional = OPERATIONS[op]
        check_fields(args, required, optional)
        _check_args(op, args)
    except DecodeError as error:
        raise ApiError("bad-request", str(error)) from None
    return Request(request_id, op, args)


def _check_args(op: str, args: dict[str, Any]) -> None:
    if "peer" in args and args["peer"] is not None:
        require_str(args["peer"], "peer", NAME_LENGTH_MAX)
    if "amount" in args:
        require_int(args["amount"], "amount", 1, AMOUNT_MAX)
    if "unit" in args:
        unit = require_str(args["unit"], "unit", 32)
        if not valid_unit(unit):
            raise DecodeError("bad-field", f"unit {unit!r} is not like '1E-2 USD'")
    if args.get("condition") is not None:
        require_bytes(args["condition"], "condition", HASH_BYTES)
    if args.get("expires_at_ms") is not None:
        require_int(args["expires_at_ms"], "expires_at_ms", 0, TIME_MS_MAX)
    if op == "pay" and (args.get("condition") is None) != (args.get("expires_at_ms") is None):
        raise DecodeError("bad-field", "condition and expires_at_ms come together")
    if op == "pay" and (args.get("peer") is None) == (args.get("to") is None):
        raise DecodeError("bad-field", "pay takes a peer (direct) or a to (multi-hop)")
    if op == "pay" and args.get("to") is not None and args.get("condition") is not None:
        raise DecodeError("bad-field", "a multi-hop payment gets its condition from the payee")
    if args.get("to") is not None:
        require_str(args["to"], "to", ADDRESS_LENGTH_MAX)
    if args.get("payment_id") is not None:
        payment_id = require_str(args["payment_id"], "payment_id", PAYMENT_ID_LENGTH_MAX)
        if not payment_id:
            raise DecodeError("bad-field", "a payment id is not empty")
    if args.get("max_fee") is not None:
        require_int(args["max_fee"], "max_fee", 0, AMOUNT_MAX)
    for name in ("address", "code"):
        if name in args:
            require_str(args[name], name, ADDRESS_LENGTH_MAX)
    if "uai" in args:
        require_str(args["uai"], "uai", UAI_LENGTH_MAX)
    for name in ("identity", "instruction"):
        if name in args and (
            type(args[name]) is not bytes or len(args[name]) > API_FRAME_BYTES_MAX
        ):
            raise DecodeError("bad-field", f"{name} must be bytes")
    for name, high in (("kyc_level", KYC_LEVEL_MAX), ("decimals", ASSET_DECIMALS_MAX)):
        if args.get(name) is not None:
            require_int(args[name], name, 0, high)
    if args.get("max_supply") is not None:
        require_int(args["max_supply"], "max_supply", 1, AMOUNT_MAX)
    if args.get("from_seq") is not None:
        require_int(args["from_seq"], "from_seq", 0, AMOUNT_MAX)
    if "frozen" in args and type(args["frozen"]) is not bool:
        raise DecodeError("bad-field", "frozen must be true or false")
    if "wait" in args and type(args["wait"]) is not bool:
        raise DecodeError("bad-field", "wait must be true or false")
    if op == "pay" and args.get("wait") and args.get("to") is None:
        raise DecodeError("bad-field", "wait is for a multi-hop payment (to)")
    if "attributes" in args and args["attributes"] is not None:
        attributes = args["attributes"]
        if type(attributes) is not dict or not all(
            type(k) is str and type(v) is str for k, v in attributes.items()
        ):
            raise DecodeError("bad-field", "attributes must map strings to strings")
    if op == "pay_batch":
        amounts = args["amounts"]
        if type(amounts) is not list or not 0 < len(amounts) <= PAY_BATCH_TRANSFERS_MAX:
            raise DecodeError(
                "bad-field", f"amounts must be a list of 1..{PAY_BATCH_TRANSFERS_MAX}"
            )
        for amount in amounts:
            require_int(amount, "amount", 1, AMOUNT_MAX)
    if op == "ledger_transfers":
        instructions = args["instructions"]
        if type(instructions) is not list or not (
            0 < len(instructions) <= LEDGER_TRANSFERS_PER_REQUEST_MAX
        ):
            raise DecodeError(
                "bad-field", f"instructions must be a list of 1..{LEDGER_TRANSFERS_PER_REQUEST_MAX}"
            )
        if not all(type(item) is bytes for item in instructions):
            raise DecodeError("bad-field", "each instruction must be bytes")
    _check_offer_args(args)
    if op == "transfer":
        if args["direction"] not in ("out", "in"):
            raise DecodeError("bad-field", "direction must be 'out' or 'in'")
        require_int(args["msg_id"], "msg_id", 0, MSG_ID_MAX)


def request_id_of(payload: bytes) -> int | None:
    """The ``id`` of a request or answer that failed to decode, if it can be read."""
    try:
        fields = unpack(payload, API_FRAME_BYTES_MAX)
    except DecodeError:
        return None
    request_id = fields.get("id") if isinstance(fields, dict) else None
    return request_id if type(request_id) is int and 0 <= request_id <= REQUEST_ID_MAX else None


def encode_result(request_id: int, result: object) -> bytes:
    return pack({"id": request_id, "ok": True, "result": result})


def encode_error(request_id: int, code: str, message: str) -> bytes:
    return pack({"id": request_id, "ok": False, "error": {"code": code, "message": message}})


def decode_response(payload: bytes) -> tuple[int, Any]:
    """Decode an answer: (request id, result), raising ApiError for an error answer."""
    try:
        fields = unpack(payload, API_FRAME_BYTES_MAX)
        if type(fields) is not dict:
            raise DecodeError("malformed", "an answer must be a map")
        request_id = require_int(fields.get("id"), "id", 0, REQUEST_ID_MAX)
    except DecodeError as error:
        raise ApiError("bad-answer", str(error)) from None
    if fields.get("ok") is True:
        return request_id, fields.get("result")
    error_fields = fields.get("error")
    if not isinstance(error_fields, dict):
        raise ApiError("bad-answer", "error answer without an error")
    raise ApiError(str(error_fields.get("code")), str(error_fields.get("message")))


def _check_offer_args(args: dict[str, Any]) -> None:
    for name in ("sell", "buy", "asset"):
        if args.get(name) is not None:
            require_str(args[name], name, UAI_LENGTH_MAX)
    if "offer_id" in args:
        offer_id = require_str(args["offer_id"], "offer_id", 2 * HASH_BYTES)
        if len(offer_id) < OFFER_ID_PREFIX_MIN or not _is_hex(offer_id):
            raise DecodeError("bad-field", f"offer_id: {OFFER_ID_PREFIX_MIN}..64 hex digits")
    if "take_id" in args:
        take_id = require_str(args["take_id"], "take_id", 2 * HASH_BYTES)
        if len(take_id) != 2 * HASH_BYTES or not _is_hex(take_id):
            raise DecodeError("bad-field", "take_id: 64 hex digits")
    if "limit" in args:
        require_int(args["limit"], "limit", 1, OFFER_SEARCH_RESULTS_MAX)
    if args.get("after") is not None:
        require_int(args["after"], "after", 0, REQUEST_ID_MAX)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
