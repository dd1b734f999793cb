"""Names and strict decoding helpers shared by the customer-ledger modules.

Rules:
- A domain is lowercase LDH labels joined by dots (``bank-a.test``), at most
  NAME_LENGTH_MAX long. An address is ``name@domain``; a UAI is
  ``issuer-domain/CODE``; a UBI (the name of a chain) is a user's address or,
  for a validator's own books, its domain.
- Everything we sign or hash is canonical msgpack: maps in the order our
  encoders write them, the smallest integer and length formats. A decoder
  re-encodes what it decoded and refuses bytes that differ
  (``non-canonical``), so one value has exactly one encoding and flipping any
  byte of a signed or hashed thing either fails to decode or changes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from node.codec import DecodeError, require_str
from node.codec import decode_canonical as decode_canonical
from node.codec import require_list as require_list
from node.codec import require_map as require_map
from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    ASSET_CODE_LENGTH_MAX,
    ATTRIBUTE_NAME_LENGTH_MAX,
    ATTRIBUTE_VALUE_LENGTH_MAX,
    ATTRIBUTES_PER_USER_MAX,
    NAME_LENGTH_MAX,
    PAYMENT_ID_LENGTH_MAX,
    UAI_LENGTH_MAX,
    USER_NAME_LENGTH_MAX,
)

ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class ToSign:
    """The exact bytes to sign and their kind: ``NodeKey.sign(kind, payload)``."""

    kind: bytes
    payload: bytes


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_PATTERN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_USER_NAME_PATTERN = re.compile(
    rf"[a-z0-9](?:[a-z0-9._-]{{0,{USER_NAME_LENGTH_MAX - 2}}}[a-z0-9])?"
)
_ASSET_CODE_PATTERN = re.compile(rf"[A-Z0-9]{{1,{ASSET_CODE_LENGTH_MAX}}}")

T = TypeVar("T")


def valid_domain(text: str) -> bool:
    return len(text) <= NAME_LENGTH_MAX and _DOMAIN_PATTERN.fullmatch(text) is not None


def valid_address(text: str) -> bool:
    """A user's address, ``name@domain``."""
    name, at, domain = text.partition("@")
    return (
        at == "@"
        and len(text) <= ADDRESS_LENGTH_MAX
        and _USER_NAME_PATTERN.fullmatch(name) is not None
        and valid_domain(domain)
    )


def valid_uai(text: str) -> bool:
    """An asset identifier, ``issuer-domain/CODE``."""
    domain, slash, code = text.partition("/")
    return (
        slash == "/"
        and len(text) <= UAI_LENGTH_MAX
        and valid_domain(domain)
        and _ASSET_CODE_PATTERN.fullmatch(code) is not None
    )


def valid_ubi(text: str) -> bool:
    """A chain's name: a user's address or a validator's domain (its own books)."""
    return valid_address(text) or valid_domain(text)


def is_books(ubi: str) -> bool:
    """True for a validator's own books (a domain), False for a user's account."""
    return "@" not in ubi


def domain_of(address: str) -> str:
    return address.partition("@")[2]


def issuer_of(uai: str) -> str:
    return uai.partition("/")[0]


# --- strict fields -------------------------------------------------------------------


def require_address(value: object, name: str) -> str:
    text = require_str(value, name, ADDRESS_LENGTH_MAX)
    if not valid_address(text):
        raise DecodeError("bad-field", f"{name} {text!r} is not like name@bank.example")
    return text


def require_domain(value: object, name: str) -> str:
    text = require_str(value, name, NAME_LENGTH_MAX)
    if not valid_domain(text):
        raise DecodeError("bad-field", f"{name} {text!r} is not a lowercase domain")
    return text


def require_ubi(value: object, name: str) -> str:
    text = require_str(value, name, ADDRESS_LENGTH_MAX)
    if not valid_ubi(text):
        raise DecodeError("bad-field", f"{name} {text!r} is neither an address nor a domain")
    return text


def require_uai(value: object, name: str) -> str:
    text = require_str(value, name, UAI_LENGTH_MAX)
    if not valid_uai(text):
        raise DecodeError("bad-field", f"{name} {text!r} is not like bank.example/CODE")
    return text


_PAYMENT_ID_PATTERN = re.compile(rf"[A-Za-z0-9._:-]{{1,{PAYMENT_ID_LENGTH_MAX}}}")


def valid_payment_id(text: str) -> bool:
    """A payer's id for a cross-bank payment: 1..PAYMENT_ID_LENGTH_MAX of [A-Za-z0-9._:-]."""
    return type(text) is str and _PAYMENT_ID_PATTERN.fullmatch(text) is not None


def require_payment_id(value: object, name: str) -> str:
    if type(value) is not str or not valid_payment_id(value):
        raise DecodeError(
            "bad-field", f"{name} must be 1..{PAYMENT_ID_LENGTH_MAX} of [A-Za-z0-9._:-]"
        )
    return value


def require_bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise DecodeError("bad-field", f"{name} must be a boolean")
    return value


def require_signed_amount(value: object, name: str) -> int:
    """A balance or a balance change: -AMOUNT_MAX..AMOUNT_MAX."""
    if type(value) is not int:
        raise DecodeError("bad-field", f"{name} must be an integer")
    if not -AMOUNT_MAX <= value <= AMOUNT_MAX:
        raise DecodeError("bad-field", f"{name} is outside +-{AMOUNT_MAX}")
    return value


def require_type(fields: dict[str, Any], expected: str) -> None:
    if fields["type"] != expected:
        raise DecodeError("unknown-type", f"type {fields['type']!r}, expected {expected!r}")


def attributes_problem(attributes: object) -> str | None:
    """Why these user attributes are not acceptable, or None: at most
    ATTRIBUTES_PER_USER_MAX str -> str items of bounded length."""
    if not isinstance(attributes, Mapping):
        return "attributes must be a map of strings"
    if len(attributes) > ATTRIBUTES_PER_USER_MAX:
        return f"at most {ATTRIBUTES_PER_USER_MAX} attributes"
    for name, value in attributes.items():
        if type(name) is not str or not 0 < len(name) <= ATTRIBUTE_NAME_LENGTH_MAX:
            return f"an attribute name is 1..{ATTRIBUTE_NAME_LENGTH_MAX} characters"
        if type(value) is not str or len(value) > ATTRIBUTE_VALUE_LENGTH_MAX:
            return f"an attribute value is at most {ATTRIBUTE_VALUE_LENGTH_MAX} characters"
    return None


Attributes = tuple[tuple[str, str], ...]
"""A user's attributes as (name, value) pairs sorted by name."""


def attributes_to_wire(attributes: Attributes) -> list[list[str]]:
    return [[name, value] for name, value in attributes]


def attributes_from_wire(value: object) -> Attributes:
    items = require_list(value, "attributes", ATTRIBUTES_PER_USER_MAX)
    pairs: list[tuple[str, str]] = []
    for item in items:
        if type(item) is not list or len(item) != 2:
            raise DecodeError("bad-field", "attributes hold [name, value] pairs")
        pairs.append(
            (
                require_str(item[0], "attribute name", ATTRIBUTE_NAME_LENGTH_MAX),
                require_str(item[1], "attribute value", ATTRIBUTE_VALUE_LENGTH_MAX),
            )
        )
    names = [name for name, _ in pairs]
    if names != sorted(set(names)) or "" in names:
        raise DecodeError("bad-field", "attribute names must be non-empty, unique, sorted")
    return tuple(pairs)
