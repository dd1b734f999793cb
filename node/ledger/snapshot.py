"""Snapshots of a validator's Books.

Rules:
- A snapshot holds what records built and nothing derived: the users (signed
  identity, signed federation record, attributes, frozen), the asset
  definitions, every chain's entries, and the clock. Restoring re-derives
  balances, heads, nonces, daily spending and totals through the same
  ``absorb`` that ``apply`` uses, so snapshot + later records = every record.
- Chains are whole: a customer's chain is the data the validator must serve.
  Each entry is stored as its canonical bytes (format 2), which the entry
  already holds, so a snapshot does not encode history again; format 1
  (entries as maps) is still read.
- Reading is strict: DecodeError on anything ``state_to_snapshot`` could not
  have written, including entries that do not fit their chain. Signatures are
  not re-verified (they were when the records were made; replay never needs
  the key, and a snapshot is covered by the storage layer's checksums).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.codec import TIME_MS_MAX, DecodeError, require_int
from node.ledger.chain import (
    ChainEntry,
    entry_from_bytes,
    entry_from_wire,
    home_chain,
    same_validator,
)
from node.ledger.codec import (
    attributes_from_wire,
    attributes_to_wire,
    require_bool,
    require_domain,
    require_list,
    require_map,
    require_ubi,
)
from node.ledger.records import AssetDefined
from node.ledger.signed import (
    CrossTransfer,
    Instruction,
    Offer,
    OfferClose,
    OfferFill,
    OfferUnfill,
    Release,
    Settle,
    Take,
    signed_asset_from_wire,
    signed_federation_from_wire,
    signed_identity_from_wire,
)
from node.ledger.state import BooksState, UserState, hold_terms
from node.limits import (
    ASSETS_PER_VALIDATOR_MAX,
    CHAIN_FILE_ENTRIES_MAX,
    USERS_PER_VALIDATOR_MAX,
)

SNAPSHOT_FORMAT = "ledgermesh/ledger-books/2"
_FORMAT_ENTRY_MAPS = "ledgermesh/ledger-books/1"  # still read
_FIELDS = frozenset({"format", "validator", "clock_ms", "users", "assets", "chains"})


def state_to_snapshot(state: BooksState) -> dict[str, Any]:
    return {
        "format": SNAPSHOT_FORMAT,
        "validator": state.validator_name,
        "clock_ms": state.clock_ms,
        "users": [
            [
                user.identity.to_wire(),
                user.federation.to_wire(),
                attributes_to_wire(user.attributes),
                user.frozen,
            ]
            for user in state.users.values()
        ],
        "assets": [
            [record.definition.to_wire(), record.defined_at_ms] for record in state.assets.values()
        ],
        "chains": [
            [ubi, [entry.encoded() for entry in chain]] for ubi, chain in state.chains.items()
        ],
    }


def _pair(item: object, name: str, length: int) -> list[Any]:
    if type(item) is not list or len(item) != length:
        raise DecodeError("bad-field", f"a snapshot {name} is a list of {length}")
    return item


def _user(item: object, validator_key: bytes) -> UserState:
    identity_wire, federation_wire, attributes_wire, frozen = _pair(item, "user", 4)
    identity = signed_identity_from_wire(identity_wire)
    federation = signed_federation_from_wire(federation_wire)
    record = federation.record
    if (record.address, record.user_key) != (identity.identity.address, identity.identity.user_key):
        raise DecodeError("bad-field", f"user {record.address}: federation and identity differ")
    if record.validator_key != validator_key:
        raise DecodeError("bad-field", f"user {record.address}: federated by another key")
    return UserState(
        identity, federation, attributes_from_wire(attributes_wire), require_bool(frozen, "frozen")
    )


def state_from_snapshot(obj: object, validator_name: str, validator_key: bytes) -> BooksState:
    """Restore ``state_to_snapshot`` output. Raises DecodeError if it is not one."""
    fields = require_map(obj, "snapshot", _FIELDS)
    if fields["format"] not in (SNAPSHOT_FORMAT, _FORMAT_ENTRY_MAPS):
        raise DecodeError("bad-version", f"snapshot format {fields['format']!r}")
    if require_domain(fields["validator"], "validator") != validator_name:
        raise DecodeError("bad-field", f"a snapshot of {fields['validator']!r}")
    state = BooksState(validator_name)
    for item in require_list(fields["users"], "users", USERS_PER_VALIDATOR_MAX):
        user = _user(item, validator_key)
        if user.federation.record.address in state.chains:
            raise DecodeError("bad-field", "a user twice")
        state.add_user(user)
    for item in require_list(fields["assets"], "assets", ASSETS_PER_VALIDATOR_MAX):
        definition, defined_at_ms = _pair(item, "asset", 2)
        record = AssetDefined(
            signed_asset_from_wire(definition),
            require_int(defined_at_ms, "defined_at_ms", 0, TIME_MS_MAX),
        )
        if record.definition.definition.uai in state.assets:
            raise DecodeError("bad-field", "an asset twice")
        state.add_asset(record)
    decode = entry_from_bytes if fields["format"] == SNAPSHOT_FORMAT else entry_from_wire
    _restore_chains(state, fields["chains"], decode)
    clock_ms = require_int(fields["clock_ms"], "clock_ms", 0, TIME_MS_MAX)
    if clock_ms < state.clock_ms:
        raise DecodeError("bad-field", "clock_ms is before an entry")
    state.clock_ms = clock_ms
    return state


def _restore_chains(
    state: BooksState, value: object, decode: Callable[[object], ChainEntry]
) -> None:
    chains = require_list(value, "chains", USERS_PER_VALIDATOR_MAX + 1)
    ubis = [require_ubi(_pair(item, "chain", 2)[0], "ubi") for item in chains]
    if ubis != list(state.chains):
        raise DecodeError("bad-field", "chains must be the books' and each user's, in order")
    homes: list[ChainEntry] = []
    for ubi, entries in chains:
        for index, item in enumerate(require_list(entries, "entries", CHAIN_FILE_ENTRIES_MAX)):
            entry = decode(item)
            misfit = state.entry_misfit(entry) if entry.ubi == ubi else "in another chain"
            if misfit is not None:
                raise DecodeError("bad-field", f"chain {ubi} entry {index}: {misfit}")
            state.absorb(entry, count=False)
            if entry.ubi == home_chain(entry.body.instruction.instruction):
                homes.append(entry)
    # Chain by chain is not the order of the records: count every hold's and
    # reservation's opening first, then what takes from them, then what ends
    # a hold, then the closes of reservations; nonces keep their maximum; the
    # rest are sums.
    homes.sort(key=lambda entry: _stage(entry.body.instruction.instruction))
    for entry in homes:
        if not _fits(state, entry):
            raise DecodeError("bad-field", f"chain {entry.ubi} entry {entry.seq}: out of turn")
        state.count(entry)
    for offer_id, reservation in state.offers.items():
        if min(reservation.left, reservation.fee_left) < 0:
            raise DecodeError("bad-field", f"offer {offer_id.hex()}: more taken than reserved")


def _stage(instruction: Instruction) -> int:
    if isinstance(instruction, CrossTransfer | Offer):
        return 0
    if isinstance(instruction, Settle | Release | OfferUnfill):
        return 2
    if isinstance(instruction, OfferClose):
        return 3
    return 1  # what opens a hold from a reservation or the balance, and the rest


def _fits(state: BooksState, entry: ChainEntry) -> bool:
    instruction = entry.body.instruction.instruction
    terms = hold_terms(instruction)
    if terms is not None and (terms.from_ubi, terms.payment_id) in state.holds:
        return False
    if isinstance(instruction, Offer):
        return instruction.offer_id not in state.offers
    if isinstance(instruction, OfferFill | OfferClose | OfferUnfill) or (
        isinstance(instruction, Take) and same_validator(instruction)
    ):
        reservation = state.offers.get(instruction.offer_id)
        if reservation is None or reservation.status != "open":
            return False
        if isinstance(instruction, OfferClose):
            return reservation.left + reservation.fee_left == instruction.returned
    if isinstance(instruction, Settle | Release | OfferUnfill):
        payer = instruction.maker if isinstance(instruction, OfferUnfill) else instruction.ubi
        hold = state.open_hold(payer, instruction.payment_id)
        if hold is None or hold.transfer.held != instruction.held:
            return False
        if isinstance(instruction, OfferUnfill):
            return hold.transfer.offer_id == instruction.offer_id
    return True
