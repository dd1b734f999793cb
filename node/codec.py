"""Strict decoding primitives shared by every codec: wire, records, cores.

Rules:
- Every decoder takes values from outside and either returns a typed value or
  raises ``DecodeError`` with a stable reason code. No other exception escapes.
- Exact types (a bool is not an int), integers in range, no unknown or missing
  fields, a hard size limit before msgpack unpacks anything.
- This module imports no other protocol module, so ``node.wire`` can carry the
  messages of every core (SNAP, federation, gossip, payments) without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack

from node.limits import UNIT_LENGTH_MAX

MSG_ID_MAX = 2**63 - 1
TIME_MS_MAX = 2**53  # far beyond any real date; keeps JSON exact

T = TypeVar("T")


class DecodeError(Exception):
    """Raised when bytes or a JSON object from outside are not a valid message.

    ``reason`` is a short stable code (``too-large``, ``malformed``,
    ``trailing-bytes``, ``unknown-type``, ``missing-field``, ``unknown-field``,
    ``bad-field``, ``bad-signature``...); ``detail`` says more for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_UNIT_PATTERN = re.compile(r"^1E-?[0-9]{1,2} [A-Z0-9][A-Za-z0-9._-]{0,19}$")


def valid_unit(unit: str) -> bool:
    """A SNAP unit: a power of ten and a code, e.g. ``1E-2 USD``."""
    return len(unit) <= UNIT_LENGTH_MAX and _UNIT_PATTERN.match(unit) is not None


def require_int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise DecodeError("bad-field", f"{name} must be an integer")
    if not low <= value <= high:
        raise DecodeError("bad-field", f"{name} {value} is outside {low}..{high}")
    return value


def require_str(value: object, name: str, length_max: int) -> str:
    if type(value) is not str:
        raise DecodeError("bad-field", f"{name} must be a string")
    if len(value) > length_max:
        raise DecodeError("bad-field", f"{name} is longer than {length_max}")
    return value


def require_bytes(value: object, name: str, length: int) -> bytes:
    if type(value) is not bytes:
        raise DecodeError("bad-field", f"{name} must be bytes")
    if len(value) != length:
        raise DecodeError("bad-field", f"{name} must be {length} bytes, not {len(value)}")
    return value


def check_fields(
    fields: dict[str, Any], required: frozenset[str], optional: frozenset[str]
) -> None:
    missing = required - fields.keys()
    if missing:
        raise DecodeError("missing-field", ", ".join(sorted(missing)))
    unknown = fields.keys() - required - optional
    if unknown:
        raise DecodeError("unknown-field", ", ".join(sorted(map(str, unknown))))


def require_map(
    value: object, name: str, required: frozenset[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if type(value) is not dict:
        raise DecodeError("malformed", f"{name} must be a map")
    check_fields(value, required, optional)
    return value


def require_list(value: object, name: str, length_max: int) -> list[Any]:
    if type(value) is not list:
        raise DecodeError("bad-field", f"{name} must be a list")
    if len(value) > length_max:
        raise DecodeError("bad-field", f"{name} has more than {length_max} items")
    return value


# --- msgpack -----------------------------------------------------------------


def pack(value: object) -> bytes:
    """Canonical msgpack: maps keep insertion order, which our encoders fix."""
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def map_header(length: int) -> bytes:
    """The msgpack header of a map of ``length`` pairs, as ``pack`` writes it: a
    map's bytes are this followed by its keys and values, each packed."""
    return _header(length, 0x80, b"\xde", b"\xdf")


def array_header(length: int) -> bytes:
    """The msgpack header of an array of ``length`` items, as ``pack`` writes it."""
    return _header(length, 0x90, b"\xdc", b"\xdd")


def _header(length: int, fix: int, sixteen: bytes, thirty_two: bytes) -> bytes:
    assert 0 <= length < 1 << 32, length
    if length < 16:
        return bytes((fix | length,))
    if length < 1 << 16:
        return sixteen + length.to_bytes(2, "big")
    return thirty_two + length.to_bytes(4, "big")


def unpack(data: bytes, size_max: int) -> Any:
    """Strictly unpack one msgpack value of at most ``size_max`` bytes."""
    if len(data) > size_max:
        raise DecodeError("too-large", f"{len(data)} bytes > {size_max}")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
    except msgpack.ExtraData:
        raise DecodeError("trailing-bytes") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        raise DecodeError("malformed", type(error).__name__) from None


def decode_canonical(
    raw: bytes, size_max: int, from_wire: Callable[[Any], T], to_wire: Callable[[T], Any]
) -> T:
    """Decode ``raw`` and refuse it unless it is the one encoding of what it holds."""
    if type(raw) is not bytes:
        raise DecodeError("bad-field", "an encoding must be bytes")
    value = from_wire(unpack(raw, size_max))
    if pack(to_wire(value)) != raw:
        raise DecodeError("non-canonical", "not the canonical encoding of its content")
    return value
