"""Records: the only way a validator's Books change.

Rules:
- A record holds the outcome of a decision (whole chain entries with their
  seq, links, balances and time; a federation record with its KYC level and
  time), never the inputs to one: replay applies and never re-decides, so a
  daily limit changed in the config since cannot rewrite the past.
- Some records need the validator's signatures (``to_sign``: the entry hashes,
  the federation record). ``Books.handle`` emits them unsigned; the shell signs
  and ``signed(signatures)`` completes them. Only a complete record is written
  (``to_wire``) or applied, so replay never needs the key.
- ``to_wire`` gives a msgpack-able map; ``record_from_wire`` is strict and
  raises ``DecodeError`` on anything ``to_wire`` could not have written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from node.codec import TIME_MS_MAX, DecodeError, array_header, map_header, pack, require_int
from node.ledger.chain import (
    ChainEntry,
    EntryBody,
    chains_of,
    entry_from_wire,
    record_signing_request,
)
from node.ledger.codec import (
    Attributes,
    attributes_from_wire,
    attributes_to_wire,
    require_address,
    require_bool,
    require_list,
    require_map,
)
from node.ledger.signed import (
    FederationRecord,
    SignedAssetDefinition,
    SignedFederationRecord,
    SignedIdentity,
    ToSign,
    signed_asset_from_wire,
    signed_federation_from_wire,
    signed_identity_from_wire,
)
from node.limits import ENTRIES_PER_RECORD_MAX

KIND_FIELD = "record"


@dataclass(frozen=True, slots=True)
class UserRegistered:
    """A user joined: its signed identity, the federation record we issue for
    it (signed: ``federation_signature``) and the operator's attributes."""

    identity: SignedIdentity
    federation: FederationRecord
    attributes: Attributes
    federation_signature: bytes | None = None

    KIND = "user-registered"

    def to_sign(self) -> tuple[ToSign, ...]:
        return (self.federation.signing_request(),)

    def signed(self, signatures: tuple[bytes, ...]) -> UserRegistered:
        (signature,) = signatures
        return replace(self, federation_signature=signature)

    def signed_federation(self) -> SignedFederationRecord:
        assert self.federation_signature is not None, "an unsigned record"
        return SignedFederationRecord(self.federation, self.federation_signature)

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "identity": self.identity.to_wire(),
            "federation": self.signed_federation().to_wire(),
            "attributes": attributes_to_wire(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class AssetDefined:
    """One of our assets is defined."""

    definition: SignedAssetDefinition
    defined_at_ms: int

    KIND = "asset-defined"

    def to_sign(self) -> tuple[ToSign, ...]:
        return ()

    def signed(self, signatures: tuple[bytes, ...]) -> AssetDefined:
        assert signatures == ()
        return self

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "definition": self.definition.to_wire(),
            "defined_at_ms": self.defined_at_ms,
        }


@dataclass(frozen=True, slots=True)
class UserFrozen:
    """A user is frozen (``frozen``) or unfrozen."""

    address: str
    frozen: bool
    at_ms: int

    KIND = "user-frozen"

    def to_sign(self) -> tuple[ToSign, ...]:
        return ()

    def signed(self, signatures: tuple[bytes, ...]) -> UserFrozen:
        assert signatures == ()
        return self

    def to_wire(self) -> dict[str, Any]:
        return {
            KIND_FIELD: self.KIND,
            "address": self.address,
            "frozen": self.frozen,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True, slots=True)
class EntriesAppended:
    """One instruction's entries, appended atomically, in ``chains_of`` order:
    the debited chain's first, then the credited one's (a hold or a release
    touches only the payer's chain). ``signatures``: the validator's, once
    signed: one over the entries' hashes together (``record_hashes``), or, as
    logs written before that hold, one per entry. ``batch_path``: when that
    one signature is over the Merkle root of a batch of records, the record's
    path to it (docs/LEDGER.md)."""

    bodies: tuple[EntryBody, ...]
    signatures: tuple[bytes, ...] = ()
    batch_path: tuple[bytes, ...] = ()
    # The signed entries, built once: applying, answering and logging all read them.
    _entries: tuple[ChainEntry, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    KIND = "entries-appended"

    def to_sign(self) -> tuple[ToSign, ...]:
        if len(self.bodies) == 1:
            return (self.bodies[0].signing_request(),)
        return (record_signing_request([body.entry_hash() for body in self.bodies]),)

    def signed(
        self, signatures: tuple[bytes, ...], batch_path: tuple[bytes, ...] = ()
    ) -> EntriesAppended:
        assert len(signatures) == 1
        return replace(self, signatures=signatures, batch_path=batch_path)

    def entries(self) -> tuple[ChainEntry, ...]:
        entries = self._entries
        if entries is None:
            bodies, signatures = self.bodies, self.signatures
            path = self.batch_path
            if len(bodies) > 1 and len(signatures) == 1:
                hashes = tuple(body.entry_hash() for body in bodies)
                entries = tuple(ChainEntry(body, signatures[0], hashes, path) for body in bodies)
            else:
                assert len(signatures) == len(bodies), "an unsigned record"
                assert not path or len(bodies) == 1, "a batch path, one signature per record"
                pairs = zip(bodies, signatures, strict=True)
                entries = tuple(ChainEntry(body, sig, (), path) for body, sig in pairs)
            object.__setattr__(self, "_entries", entries)
        return entries

    def to_wire(self) -> dict[str, Any]:
        return {KIND_FIELD: self.KIND, "entries": [e.to_wire() for e in self.entries()]}

    def encoded(self) -> bytes:
        """``pack(self.to_wire())``, byte for byte, from the entries' bytes."""
        entries = self.entries()
        parts = (_ENTRIES_PREFIX, array_header(len(entries)), *(e.encoded() for e in entries))
        return b"".join(parts)


Record = UserRegistered | AssetDefined | UserFrozen | EntriesAppended

_ENTRIES_PREFIX = b"".join(
    (map_header(2), pack(KIND_FIELD), pack(EntriesAppended.KIND), pack("entries"))
)


def record_bytes(record: Record) -> bytes:
    """``pack(record.to_wire())``; a record of entries reuses their bytes."""
    if isinstance(record, EntriesAppended):
        return record.encoded()
    return pack(record.to_wire())


# --- strict decoding ---------------------------------------------------------------


def _user_registered(fields: dict[str, Any]) -> UserRegistered:
    identity = signed_identity_from_wire(fields["identity"])
    federation = signed_federation_from_wire(fields["federation"])
    if (identity.identity.address, identity.identity.user_key) != (
        federation.record.address,
        federation.record.user_key,
    ):
        raise DecodeError("bad-field", "the federation record is not of the identity")
    attributes = attributes_from_wire(fields["attributes"])
    return UserRegistered(identity, federation.record, attributes, federation.signature)


def _entries_appended(fields: dict[str, Any]) -> EntriesAppended:
    items = require_list(fields["entries"], "entries", ENTRIES_PER_RECORD_MAX)
    if not items:
        raise DecodeError("bad-field", "a record appends entries")
    entries = [entry_from_wire(item) for item in items]
    first = entries[0]
    if any(entry.body.instruction != first.body.instruction for entry in entries):
        raise DecodeError("bad-field", "the entries of one instruction on two chains")
    chains = chains_of(first.body.instruction.instruction)
    if len(set(chains)) != len(chains):
        raise DecodeError("bad-field", "the entries of one instruction on two chains")
    if len(entries) != len(chains):
        raise DecodeError(
            "bad-field",
            f"a {first.body.instruction.instruction.TYPE} record appends {len(chains)} entries",
        )
    if tuple(entry.ubi for entry in entries) != chains:
        raise DecodeError("bad-field", "the entries of one instruction on two chains")
    bodies = tuple(entry.body for entry in entries)
    hashes = tuple(body.entry_hash() for body in bodies)
    path = first.batch_path
    if any(entry.batch_path != path for entry in entries):
        raise DecodeError("bad-field", "the entries of one record carry one batch path")
    if all(entry.record_hashes == hashes for entry in entries) and len(entries) > 1:
        signatures = {entry.validator_signature for entry in entries}
        if len(signatures) != 1:
            raise DecodeError("bad-field", "the entries of one record carry one signature")
        return EntriesAppended(bodies, (first.validator_signature,), path)
    if any(entry.record_hashes for entry in entries):
        raise DecodeError("bad-field", "record_hashes must list the record's entries in order")
    if path and len(entries) > 1:
        raise DecodeError("bad-field", "a batch path needs one signature for the record")
    return EntriesAppended(bodies, tuple(entry.validator_signature for entry in entries), path)


_FIELDS: dict[str, frozenset[str]] = {
    UserRegistered.KIND: frozenset({"identity", "federation", "attributes"}),
    AssetDefined.KIND: frozenset({"definition", "defined_at_ms"}),
    UserFrozen.KIND: frozenset({"address", "frozen", "at_ms"}),
    EntriesAppended.KIND: frozenset({"entries"}),
}


def record_from_wire(obj: object) -> Record:
    """Decode a record written by ``to_wire``. Raises DecodeError on anything else."""
    if type(obj) is not dict:
        raise DecodeError("malformed", "a record must be a map")
    kind = obj.get(KIND_FIELD)
    if type(kind) is not str or kind not in _FIELDS:
        raise DecodeError("unknown-type", f"record {kind!r}")
    fields = require_map(obj, "record", _FIELDS[kind] | {KIND_FIELD})
    if kind == UserRegistered.KIND:
        return _user_registered(fields)
    if kind == AssetDefined.KIND:
        return AssetDefined(
            signed_asset_from_wire(fields["definition"]),
            require_int(fields["defined_at_ms"], "defined_at_ms", 0, TIME_MS_MAX),
        )
    if kind == UserFrozen.KIND:
        return UserFrozen(
            require_address(fields["address"], "address"),
            require_bool(fields["frozen"], "frozen"),
            require_int(fields["at_ms"], "at_ms", 0, TIME_MS_MAX),
        )
    return _entries_appended(fields)
