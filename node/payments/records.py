"""The log codec of the payment core's records.

Rules:
- ``record_to_wire`` gives a msgpack-able map: ``{"kind": ..., field: value}``
  with the dataclass's own field names; ``record_from_wire`` is strict and
  raises ``DecodeError`` on anything ``record_to_wire`` could not have written
  (unknown kind, missing or unknown field, a value of the wrong type or out of
  range, a preimage that does not hash to its condition).
- One decoder per field name: a name means the same thing in every record
  (``_FIELD_DECODER`` names the few exceptions).
- A field in ``_OMITTED_WHEN_NONE`` (added after logs existed) is left out
  when None, so older logs still decode; written as None it is refused.
- An expectation's InvoiceCreated has ``preimage`` None; any other preimage
  must hash to its condition.
- ``outcomes-remembered`` and ``refs-reserved`` are written only in snapshots
  (retention, ``PaymentState.snapshot_records``); they decode anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from node.codec import (
    MSG_ID_MAX,
    TIME_MS_MAX,
    DecodeError,
    check_fields,
    require_bytes,
    require_int,
    require_str,
    valid_unit,
)
from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    HASH_BYTES,
    NAME_LENGTH_MAX,
    PAYMENT_FINAL_DELTA_MS,
    PAYMENT_ID_LENGTH_MAX,
    PAYMENT_OUTCOMES_PER_RECORD_MAX,
    REASON_LENGTH_MAX,
    UNIT_LENGTH_MAX,
)
from node.payments.events import (
    FINAL_DELTA_MS_MAX,
    IncomingClosed,
    IncomingOpened,
    InvoiceAbandoned,
    InvoiceCreated,
    InvoiceExpired,
    InvoiceLearned,
    OutcomeEntry,
    OutcomesRemembered,
    OutgoingClosed,
    OutgoingOpened,
    PaymentEnded,
    PaymentStarted,
    PreimageLearned,
    Record,
    RefsReserved,
)
from node.payments.messages import route_from_wire, route_to_wire
from node.signatures import sha256

KIND_FIELD = "kind"

_KINDS: dict[str, type[Record]] = {
    "payment-started": PaymentStarted,
    "invoice-learned": InvoiceLearned,
    "payment-ended": PaymentEnded,
    "invoice-created": InvoiceCreated,
    "invoice-abandoned": InvoiceAbandoned,
    "invoice-expired": InvoiceExpired,
    "outcomes-remembered": OutcomesRemembered,
    "refs-reserved": RefsReserved,
    "preimage-learned": PreimageLearned,
    "outgoing-opened": OutgoingOpened,
    "outgoing-closed": OutgoingClosed,
    "incoming-opened": IncomingOpened,
    "incoming-closed": IncomingClosed,
}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}
RECORD_TYPES = (
    PaymentStarted,
    InvoiceLearned,
    PaymentEnded,
    InvoiceCreated,
    InvoiceAbandoned,
    InvoiceExpired,
    OutcomesRemembered,
    RefsReserved,
    PreimageLearned,
    OutgoingOpened,
    OutgoingClosed,
    IncomingOpened,
    IncomingClosed,
)
assert set(RECORD_TYPES) == set(_KINDS.values())


def _text(length_max: int) -> Callable[[object, str], str]:
    def decode(value: object, name: str) -> str:
        return require_str(value, name, length_max)

    return decode


def _integer(high: int, low: int = 0) -> Callable[[object, str], int]:
    def decode(value: object, name: str) -> int:
        return require_int(value, name, low, high)

    return decode


def _hash(value: object, name: str) -> bytes:
    return require_bytes(value, name, HASH_BYTES)


def _unit(value: object, name: str) -> str:
    unit = require_str(value, name, UNIT_LENGTH_MAX)
    if not valid_unit(unit):
        raise DecodeError("bad-field", f"unit {unit!r} is not like '1E-2 USD'")
    return unit


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise DecodeError("bad-field", f"{name} must be a boolean")
    return value


def _optional(decode: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    def decode_optional(value: object, name: str) -> Any:
        return None if value is None else decode(value, name)

    return decode_optional


def _route(value: object, name: str) -> Any:
    return route_from_wire(value)


def _outcome_entries(value: object, name: str) -> tuple[OutcomeEntry, ...]:
    """OutcomesRemembered's entries: distinct ids; a preimage only for a success,
    a reason only for a failure."""
    if type(value) is not list or len(value) > PAYMENT_OUTCOMES_PER_RECORD_MAX:
        raise DecodeError("bad-field", f"{name}: at most {PAYMENT_OUTCOMES_PER_RECORD_MAX}")
    entries: list[OutcomeEntry] = []
    for item in value:
        if type(item) is not list or len(item) != 7:
            raise DecodeError("bad-field", f"{name}: an outcome has 7 values")
        payment_id = _DECODERS["payment_id"](item[0], "payment_id")
        succeeded = _bool(item[1], "succeeded")
        reason = _DECODERS["reason"](item[2], "reason")
        hop = _DECODERS["failed_hop"](item[3], "failed_hop")
        fee = _DECODERS["max_fee"](item[4], "fee")
        preimage = _optional(_hash)(item[5], "preimage")
        hold_id = _DECODERS["hold_id"](item[6], "hold_id")
        if succeeded != (preimage is not None) or (succeeded and reason is not None):
            raise DecodeError("bad-field", f"{name}: a success has its preimage, no reason")
        entries.append((payment_id, succeeded, reason, hop, fee, preimage, hold_id))
    if len({entry[0] for entry in entries}) != len(entries):
        raise DecodeError("bad-field", f"{name}: a payment id twice")
    return tuple(entries)


_DECODERS: dict[str, Callable[[object, str], Any]] = {
    "payment_id": _text(PAYMENT_ID_LENGTH_MAX),
    "payee": _text(ADDRESS_LENGTH_MAX),
    "payee_domain": _text(NAME_LENGTH_MAX),
    "payer": _text(NAME_LENGTH_MAX),
    "peer": _text(NAME_LENGTH_MAX),
    "amount": _integer(AMOUNT_MAX, 1),
    "max_fee": _integer(AMOUNT_MAX),
    "unit": _unit,
    "deadline_ms": _integer(TIME_MS_MAX),
    "expires_ms": _integer(TIME_MS_MAX),
    "expires_at_ms": _integer(TIME_MS_MAX),
    "hold_id": _optional(_text(PAYMENT_ID_LENGTH_MAX)),
    "condition": _hash,
    "preimage": _hash,
    "succeeded": _bool,
    "accepted": _bool,
    "reason": _optional(_text(REASON_LENGTH_MAX)),
    "failed_hop": _optional(_text(2 * NAME_LENGTH_MAX + 1)),
    "ref": _integer(MSG_ID_MAX),
    "msg_id": _integer(MSG_ID_MAX),
    "route": _route,
    "payment_id_or_none": _optional(_text(PAYMENT_ID_LENGTH_MAX)),
    "upstream_peer": _optional(_text(NAME_LENGTH_MAX)),
    "upstream_msg_id": _optional(_integer(MSG_ID_MAX)),
    "downstream_ref": _optional(_integer(MSG_ID_MAX)),
    "final_delta_ms": _integer(FINAL_DELTA_MS_MAX, PAYMENT_FINAL_DELTA_MS),
    "latest_expiry_ms": _integer(TIME_MS_MAX),
    "preimage_or_none": _optional(_hash),
    "reason_given": _text(REASON_LENGTH_MAX),
    "entries": _outcome_entries,
    "next_ref": _integer(MSG_ID_MAX + 1),
}
_FIELD_DECODER: dict[tuple[type[Record], str], str] = {
    (OutgoingOpened, "payment_id"): "payment_id_or_none",  # a forwarded one has none
    (InvoiceCreated, "preimage"): "preimage_or_none",  # an expectation's
    (InvoiceAbandoned, "reason"): "reason_given",
}
_OMITTED_WHEN_NONE = frozenset(
    {
        (PaymentStarted, "condition"),
        (PaymentStarted, "final_delta_ms"),
        (PaymentStarted, "latest_expiry_ms"),
    }
)


def record_to_wire(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {KIND_FIELD: _KIND_OF[type(record)]}
    for field in fields(record):
        value = getattr(record, field.name)
        if value is None and (type(record), field.name) in _OMITTED_WHEN_NONE:
            continue
        if field.name == "route":
            value = route_to_wire(value)
        elif field.name == "entries":
            value = [list(entry) for entry in value]
        out[field.name] = value
    return out


def record_from_wire(obj: object) -> Record:
    """Decode a map written by ``record_to_wire``. Raises DecodeError on anything else."""
    if type(obj) is not dict:
        raise DecodeError("malformed", "a payment record must be a map")
    kind = obj.get(KIND_FIELD)
    cls = _KINDS.get(kind) if type(kind) is str else None
    if cls is None:
        raise DecodeError("unknown-type", f"payment record {kind!r}")
    names = [field.name for field in fields(cls)]
    omitted = frozenset(name for name in names if (cls, name) in _OMITTED_WHEN_NONE)
    check_fields(obj, frozenset(names) - omitted | {KIND_FIELD}, omitted)
    values: list[Any] = [
        None
        if name in omitted and name not in obj
        else _DECODERS[_FIELD_DECODER.get((cls, name), name)](obj[name], name)
        for name in names
    ]
    record = cls(*values)
    _check(record)
    return record


def _check(record: Record) -> None:
    if isinstance(record, InvoiceCreated | PreimageLearned) and not _preimage_fits(record):
        raise DecodeError("bad-field", "the preimage does not hash to the condition")
    if isinstance(record, OutgoingClosed | IncomingClosed | PaymentEnded):
        accepted = record.succeeded if isinstance(record, PaymentEnded) else record.accepted
        if accepted and record.reason is not None:
            raise DecodeError("bad-field", "a success has no reason")
    if isinstance(record, OutgoingOpened):
        forwarded = record.upstream_peer is not None
        if forwarded != (record.upstream_msg_id is not None) or forwarded == (
            record.payment_id is not None
        ):
            raise DecodeError("bad-field", "an outgoing transfer is ours or forwarded")


def _preimage_fits(record: InvoiceCreated | PreimageLearned) -> bool:
    """An expectation has no preimage; any other must hash to the condition."""
    return record.preimage is None or sha256(record.preimage) == record.condition
