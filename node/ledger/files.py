"""Chain files and equivocation evidence: what leaves the node as a file.

Rules:
- A chain file is the canonical msgpack map ``{"format", "validator_key",
  "federation", "entries"}``: the validator's key, the federation record of
  the chain's user (None for a validator's own books) and the entries from
  seq 0. Decoding is strict and canonical, entry by entry, so a DecodeError
  about an entry names it (``EntryDecodeError.index``). Changing any byte of a
  file makes it fail to decode or fail ``verify_chain_file``.
- ``verify_chain_file`` trusts nothing in the file: pass the validator key you
  trust (from your config); otherwise a file re-signed end to end by another
  key would verify against that key.
- Equivocation evidence: two entries, each with the key of the validator that
  signed it. It proves fraud when one validator signed two different entries
  with the same UBI and seq. ``check_evidence`` needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from node.codec import DecodeError, pack, require_bytes
from node.ledger.chain import ChainEntry, ChainProblem, ChainReport, entry_from_wire, verify_chain
from node.ledger.codec import ZERO_HASH, decode_canonical, is_books, require_map
from node.ledger.signed import SignedFederationRecord, signed_federation_from_wire
from node.limits import (
    CHAIN_ENTRY_BYTES_MAX,
    CHAIN_FILE_BYTES_MAX,
    CHAIN_FILE_ENTRIES_MAX,
    EVIDENCE_FILE_BYTES_MAX,
    PUBLIC_KEY_BYTES,
)

CHAIN_FILE_FORMAT = "ledgermesh/chain/1"
EVIDENCE_FORMAT = "ledgermesh/equivocation/1"
_FILE_KEYS = ("format", "validator_key", "federation", "entries")

T = TypeVar("T")


class EntryDecodeError(DecodeError):
    """Raised when entry ``index`` of a chain file cannot be decoded."""

    def __init__(self, reason: str, detail: str, index: int) -> None:
        super().__init__(reason, f"entry {index}: {detail}")
        self.index = index


@dataclass(frozen=True, slots=True)
class ChainFile:
    validator_key: bytes
    federation: SignedFederationRecord | None
    entries: tuple[ChainEntry, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "format": CHAIN_FILE_FORMAT,
            "validator_key": self.validator_key,
            "federation": None if self.federation is None else self.federation.to_wire(),
            "entries": [entry.to_wire() for entry in self.entries],
        }


def encode_chain_file(chain_file: ChainFile) -> bytes:
    raw = pack(chain_file.to_wire())
    assert len(raw) <= CHAIN_FILE_BYTES_MAX, "pull fewer entries into one file"
    return raw


def _read(step: Callable[[], T], where: str, index: int | None = None) -> T:
    """One step of the streaming unpacker; its failures become DecodeErrors."""
    try:
        return step()
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as error:
        detail = f"{where}: {type(error).__name__}"
        if index is None:
            raise DecodeError("malformed", detail) from None
        raise EntryDecodeError("malformed", detail, index) from None


def decode_chain_file(raw: bytes) -> ChainFile:
    """Decode a chain file strictly and canonically. Raises DecodeError
    (EntryDecodeError, naming the entry, for a fault inside one)."""
    if type(raw) is not bytes:
        raise DecodeError("malformed", "a chain file is bytes")
    if len(raw) > CHAIN_FILE_BYTES_MAX:
        raise DecodeError("too-large", f"{len(raw)} bytes > {CHAIN_FILE_BYTES_MAX}")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(len(raw), 1))
    unpacker.feed(raw)
    if _read(unpacker.read_map_header, "file") != len(_FILE_KEYS):
        raise DecodeError("malformed", f"a chain file is a map of {len(_FILE_KEYS)}")
    values: dict[str, Any] = {}
    for key in _FILE_KEYS[:-1]:
        if _read(unpacker.unpack, "file") != key:
            raise DecodeError("malformed", f"the file's next field must be {key!r}")
        values[key] = _read(unpacker.unpack, key)
    if _read(unpacker.unpack, "file") != "entries":
        raise DecodeError("malformed", "the file's last field must be 'entries'")
    if values["format"] != CHAIN_FILE_FORMAT:
        raise DecodeError("bad-version", f"format {values['format']!r}")
    validator_key = require_bytes(values["validator_key"], "validator_key", PUBLIC_KEY_BYTES)
    federation = values["federation"]
    federation = None if federation is None else signed_federation_from_wire(federation)
    count = _read(unpacker.read_array_header, "entries")
    if count > CHAIN_FILE_ENTRIES_MAX:
        raise DecodeError("too-large", f"{count} entries > {CHAIN_FILE_ENTRIES_MAX}")
    entries = tuple(_next_entry(unpacker, raw, index) for index in range(count))
    if unpacker.tell() != len(raw):
        raise DecodeError("trailing-bytes", f"{len(raw) - unpacker.tell()} bytes after the file")
    chain_file = ChainFile(validator_key, federation, entries)
    if pack(chain_file.to_wire()) != raw:
        raise DecodeError("non-canonical", "the file's header is not canonical")
    return chain_file


def _next_entry(unpacker: msgpack.Unpacker, raw: bytes, index: int) -> ChainEntry:
    start = unpacker.tell()
    obj = _read(unpacker.unpack, "entry", index)
    end = unpacker.tell()
    if end - start > CHAIN_ENTRY_BYTES_MAX:
        raise EntryDecodeError("too-large", f"{end - start} bytes", index)
    try:
        entry = entry_from_wire(obj)
    except DecodeError as error:
        raise EntryDecodeError(error.reason, error.detail, index) from None
    if entry.encoded() != raw[start:end]:
        raise EntryDecodeError("non-canonical", "not the canonical encoding", index)
    return entry


def verify_chain_file(chain_file: ChainFile, validator_key: bytes | None = None) -> ChainReport:
    """Verify a decoded chain file: the federation record (for a user's chain)
    and every entry. ``validator_key``: the key you trust for this validator."""
    if validator_key is not None and chain_file.validator_key != validator_key:
        return _file_problem("untrusted-validator", "the file names another validator key")
    key = chain_file.validator_key
    federation = chain_file.federation
    if federation is None:
        ubi = chain_file.entries[0].ubi if chain_file.entries else None
        if ubi is not None and not is_books(ubi):
            return _file_problem("no-federation", f"a user chain ({ubi}) without its record")
        return verify_chain(chain_file.entries, key, ubi=ubi)
    if not federation.verifies(key):
        return _file_problem("federation-signature", "the federation record does not verify")
    record = federation.record
    return verify_chain(chain_file.entries, key, ubi=record.address, owner_key=record.user_key)


def _file_problem(reason: str, detail: str) -> ChainReport:
    return ChainReport(False, None, {}, 0, ZERO_HASH, ChainProblem(None, None, reason, detail))


# --- equivocation evidence ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two entries, each with the key of the validator said to have signed it."""

    first_validator_key: bytes
    first: ChainEntry
    second_validator_key: bytes
    second: ChainEntry

    def to_wire(self) -> dict[str, Any]:
        return {
            "format": EVIDENCE_FORMAT,
            "first": {"validator_key": self.first_validator_key, "entry": self.first.to_wire()},
            "second": {"validator_key": self.second_validator_key, "entry": self.second.to_wire()},
        }


def equivocation(validator_key: bytes, first: ChainEntry, second: ChainEntry) -> Evidence:
    return Evidence(validator_key, first, validator_key, second)


def _signed_entry(value: object, name: str) -> tuple[bytes, ChainEntry]:
    fields = require_map(value, name, frozenset({"validator_key", "entry"}))
    key = require_bytes(fields["validator_key"], "validator_key", PUBLIC_KEY_BYTES)
    return key, entry_from_wire(fields["entry"])


def evidence_from_wire(obj: object) -> Evidence:
    fields = require_map(obj, "evidence", frozenset({"format", "first", "second"}))
    if fields["format"] != EVIDENCE_FORMAT:
        raise DecodeError("bad-version", f"format {fields['format']!r}")
    first_key, first = _signed_entry(fields["first"], "first")
    second_key, second = _signed_entry(fields["second"], "second")
    return Evidence(first_key, first, second_key, second)


def encode_evidence(evidence: Evidence) -> bytes:
    return pack(evidence.to_wire())


def decode_evidence(raw: bytes) -> Evidence:
    return decode_canonical(raw, EVIDENCE_FILE_BYTES_MAX, evidence_from_wire, Evidence.to_wire)


@dataclass(frozen=True, slots=True)
class EvidenceVerdict:
    """``valid``: proof that ``validator_key`` equivocated on (``ubi``, ``seq``).
    Otherwise ``reason`` says why not; ``validator_key`` is then None."""

    valid: bool
    reason: str
    validator_key: bytes | None
    ubi: str | None
    seq: int | None
    detail: str = ""


def check_evidence(obj: object) -> EvidenceVerdict:
    """Check equivocation evidence offline: an ``Evidence``, an evidence file's
    bytes, or its decoded map. Never raises on bad input."""
    try:
        if isinstance(obj, Evidence):
            evidence = obj
        elif isinstance(obj, bytes):
            evidence = decode_evidence(obj)
        else:
            evidence = evidence_from_wire(obj)
    except DecodeError as error:
        return EvidenceVerdict(False, "malformed", None, None, None, str(error))
    first, second = evidence.first, evidence.second
    key = evidence.first_validator_key

    def invalid(reason: str, detail: str) -> EvidenceVerdict:
        return EvidenceVerdict(False, reason, None, first.ubi, first.seq, detail)

    if evidence.second_validator_key != key:
        return invalid("different-validator", "the entries name two validators")
    if not first.signed_by(key):
        return invalid("bad-signature", "the first entry is not signed by the validator")
    if not second.signed_by(key):
        return invalid("bad-signature", "the second entry is not signed by the validator")
    if first.ubi != second.ubi:
        return invalid("different-ubi", f"{first.ubi!r} and {second.ubi!r}")
    if first.seq != second.seq:
        return invalid("different-seq", f"seq {first.seq} and {second.seq}")
    if first.entry_hash() == second.entry_hash():
        return invalid("same-entry", "one entry twice is no conflict")
    return EvidenceVerdict(True, "equivocation", key, first.ubi, first.seq)
