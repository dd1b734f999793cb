"""Account chains (TChains): entries, their hashes, and offline verification.

Rules:
- A chain belongs to one UBI: a user's address, or a validator's domain for
  its own books. Its entries are numbered 0, 1, 2, ... without gaps; entry 0
  links to 32 zero bytes, every later one to the hash of the entry before.
- An entry holds the signed instruction that caused it (the instruction's
  canonical bytes, the signer's public key, the signature), the balance
  changes it makes on this chain (uai -> signed delta, sorted by uai), the
  resulting balances of the same uais, and when it was appended.
- The entry hash is SHA-256 of the canonical msgpack of every field but the
  validator's signature; the validator signs the hash (kind ``chain-entry``).
  An instruction that appends to two chains (a transfer: the payer's and the
  payee's) is signed once for both: each entry carries ``record_hashes``, the
  hashes of all the entries of its instruction in ``chains_of`` order (its
  own among them), and the validator signs SHA-256 of their concatenation
  (kind ``chain-record``). A batch of records (a ``ledger_transfers``
  request) may be signed once: each record's leaf is SHA-256(0x00, kind, 0x00,
  what it would have signed alone), the validator signs the Merkle root of
  the leaves (kind ``chain-batch``; a node is SHA-256(0x01, left, right), an
  odd one out goes up as it is), and every entry carries ``batch_path``, the
  siblings from its record's leaf to the root (a side byte, 0 when the
  sibling is on the left, then its hash). Either way an entry is final when
  the validator has signed it, and one entry with its signature proves it on
  its own: the other chain's entry and the batch's other records appear only
  as hashes.
- Who signs the instruction: the payer for a ``Transfer`` (on the payer's
  debit and on the payee's credit alike), the maker for an ``Offer``, the
  taker for a ``Take`` (on the maker's chain too), the issuing validator for
  everything else (``Deposit``, ``Withdraw``, holds' ends, credits, what it
  does with an offer's reservation).
- Conservation: an issuer's books mirror its users. A deposit is +amount on
  the user's chain and -amount on the books; a withdrawal is -amount on the
  user's chain and +amount on the books. So for every UAI, the books' balance
  is minus what is outstanding: issued - redeemed = sum of user balances =
  -(books balance). A user's balance is never negative, the books' never
  positive.
- Holds (cross-bank payments): a ``CrossTransfer`` signed by the payer puts
  ``amount + max_fee`` on hold: one entry on the payer's chain, -held (the
  balance is what the payer can spend; held money is not). The hold ends once,
  by a ``Settle`` signed by the validator (the payer's chain gets back
  held - debit, the validator's books +debit: the debit left the bank over
  the mesh) or a ``Release`` (the payer's chain gets back held). A ``Credit``
  signed by the payee's validator is -amount on its books and +amount on the
  payee's chain. An entry that moves nothing (a settle of the whole hold)
  has no deltas.
- Offers (exchanges): an ``Offer`` signed by the maker reserves
  ``sell_amount + max_fee``: one entry on the maker's chain, -reserved. A
  ``Take`` at the same validator is one record on both chains (the taker
  +amount of the sell asset, -pay of the buy asset; the maker +pay: the
  amount comes out of the reservation); across validators it is a hold of
  ``pay + max_fee`` on the taker's chain, keyed ``take_id.hex()``. The
  validator's ``OfferFill`` carves a hold out of the reservation and its
  ``OfferUnfill`` puts one back (entries without deltas: money moves
  between a reservation and a hold, never the balance); its ``OfferClose``
  returns exactly the rest. On a maker's chain, what is taken from a
  reservation never passes what is left of it.
- ``verify_chain`` needs nothing but the entries and the validator's key and
  names the first entry (index and seq) that breaks a rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.codec import (
    TIME_MS_MAX,
    DecodeError,
    map_header,
    pack,
    require_bytes,
    require_int,
    unpack,
)
from node.ledger.codec import (
    ZERO_HASH,
    domain_of,
    is_books,
    issuer_of,
    require_list,
    require_map,
    require_signed_amount,
    require_uai,
    require_ubi,
)
from node.ledger.signed import (
    Credit,
    CrossTransfer,
    Deposit,
    Instruction,
    Offer,
    OfferCancel,
    OfferClose,
    OfferFill,
    OfferInstruction,
    OfferUnfill,
    Release,
    Settle,
    SignedInstruction,
    Take,
    ToSign,
    Transfer,
    signed_instruction_from_parts,
)
from node.limits import (
    AMOUNT_MAX,
    ASSETS_PER_ENTRY_MAX,
    BATCH_PATH_STEPS_MAX,
    CHAIN_ENTRY_BYTES_MAX,
    ENTRIES_PER_RECORD_MAX,
    HASH_BYTES,
    SIGNATURE_BYTES,
)
from node.signatures import KIND_CHAIN_BATCH, KIND_CHAIN_ENTRY, KIND_CHAIN_RECORD, sha256, verify

AssetAmounts = tuple[tuple[str, int], ...]
"""(uai, amount) pairs sorted by uai, each uai once."""

_BODY_FIELDS = (
    "ubi",
    "seq",
    "prev_hash",
    "instruction",
    "signer",
    "instruction_signature",
    "deltas",
    "balances",
    "appended_at_ms",
)
_ENTRY_FIELDS = frozenset({*_BODY_FIELDS, "validator_signature"})
_ENTRY_OPTIONAL_FIELDS = frozenset({"record_hashes", "batch_path"})
# An entry's bytes are its body's map grown by these fields (ChainEntry.encoded).
_BODY_HEADER = map_header(len(_BODY_FIELDS))
_HASHES_KEY = pack("record_hashes")
_PATH_KEY = pack("batch_path")
_SIGNATURE_KEY = pack("validator_signature")
_PATH_STEP_BYTES = 1 + HASH_BYTES  # a side byte, then the sibling's hash


def record_root(hashes: Sequence[bytes]) -> bytes:
    """What the validator signs for the entries of one instruction."""
    return sha256(b"".join(hashes))


def record_signing_request(hashes: Sequence[bytes]) -> ToSign:
    return ToSign(KIND_CHAIN_RECORD, record_root(hashes))


# --- batches: one signature over a Merkle root of many records -----------------------------


def batch_leaf(request: ToSign) -> bytes:
    """A record's leaf: what it would have signed alone, its kind included."""
    return sha256(b"\x00" + request.kind + b"\x00" + request.payload)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def batch_tree(leaves: Sequence[bytes]) -> tuple[bytes, list[tuple[bytes, ...]]]:
    """The root over ``leaves`` (at least two) and each leaf's path to it."""
    assert len(leaves) >= 2
    paths: list[list[bytes]] = [[] for _ in leaves]
    positions = list(range(len(leaves)))  # each leaf's ancestor in ``level``
    level = list(leaves)
    while len(level) > 1:
        for leaf, position in enumerate(positions):
            sibling = position ^ 1
            if sibling < len(level):  # else the odd one out: no step at this level
                side = b"\x00" if sibling < position else b"\x01"
                paths[leaf].append(side + level[sibling])
            positions[leaf] = position // 2
        level = [
            _node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0], [tuple(path) for path in paths]


def batch_root(leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root a leaf's path leads to."""
    node = leaf
    for step in path:
        sibling = step[1:]
        node = _node(sibling, node) if step[0] == 0 else _node(node, sibling)
    return node


def batch_signing_request(root: bytes) -> ToSign:
    return ToSign(KIND_CHAIN_BATCH, root)


@dataclass(frozen=True, slots=True)
class EntryBody:
    """Everything in an entry but the validator's signature."""

    ubi: str
    seq: int
    prev_hash: bytes
    instruction: SignedInstruction
    deltas: AssetAmounts
    balances: AssetAmounts
    appended_at_ms: int
    # The body's canonical bytes and their hash, computed once: the log, the
    # snapshots and the pulls reuse the bytes, chains hash every entry often.
    packed: bytes = field(init=False, repr=False, compare=False)
    digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        packed = pack(self.to_wire())
        object.__setattr__(self, "packed", packed)
        object.__setattr__(self, "digest", sha256(packed))

    def to_wire(self) -> dict[str, Any]:
        return {
            "ubi": self.ubi,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "instruction": self.instruction.payload(),
            "signer": self.instruction.signer_key,
            "instruction_signature": self.instruction.signature,
            "deltas": [[uai, delta] for uai, delta in self.deltas],
            "balances": [[uai, balance] for uai, balance in self.balances],
            "appended_at_ms": self.appended_at_ms,
        }

    def entry_hash(self) -> bytes:
        return self.digest

    def signing_request(self) -> ToSign:
        return ToSign(KIND_CHAIN_ENTRY, self.entry_hash())


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """An entry the validator has signed: final."""

    body: EntryBody
    validator_signature: bytes
    # With a signature for the whole instruction: the hashes of its entries.
    record_hashes: tuple[bytes, ...] = ()
    # With a signature for a whole batch: the path from the record to its root.
    batch_path: tuple[bytes, ...] = ()

    @property
    def ubi(self) -> str:
        return self.body.ubi

    @property
    def seq(self) -> int:
        return self.body.seq

    def entry_hash(self) -> bytes:
        return self.body.entry_hash()

    def record_request(self) -> ToSign:
        """What the validator signs for this entry's record alone."""
        if not self.record_hashes:
            return self.body.signing_request()
        return record_signing_request(self.record_hashes)

    def signed_by(self, validator_key: bytes) -> bool:
        if self.record_hashes and self.entry_hash() not in self.record_hashes:
            return False
        request = self.record_request()
        if self.batch_path:
            request = batch_signing_request(batch_root(batch_leaf(request), self.batch_path))
        return verify(validator_key, request.kind, request.payload, self.validator_signature)

    def to_wire(self) -> dict[str, Any]:
        wire = self.body.to_wire()
        if self.record_hashes:
            wire["record_hashes"] = list(self.record_hashes)
        if self.batch_path:
            wire["batch_path"] = list(self.batch_path)
        # The signature comes last, so an entry cut short always lacks it.
        wire["validator_signature"] = self.validator_signature
        return wire

    def encoded(self) -> bytes:
        """``pack(self.to_wire())``, byte for byte, from the body's bytes: the
        same map with up to three more pairs at its end."""
        body = self.body.packed
        assert body.startswith(_BODY_HEADER)
        parts = [b"", body[len(_BODY_HEADER) :]]
        if self.record_hashes:
            parts += (_HASHES_KEY, pack(list(self.record_hashes)))
        if self.batch_path:
            parts += (_PATH_KEY, pack(list(self.batch_path)))
        parts += (_SIGNATURE_KEY, pack(self.validator_signature))
        parts[0] = map_header(len(_BODY_FIELDS) + (len(parts) - 2) // 2)
        return b"".join(parts)


def _asset_amounts(value: object, name: str) -> AssetAmounts:
    items = require_list(value, name, ASSETS_PER_ENTRY_MAX)
    pairs: list[tuple[str, int]] = []
    for item in items:
        if type(item) is not list or len(item) != 2:
            raise DecodeError("bad-field", f"{name} holds [uai, amount] pairs")
        pairs.append((require_uai(item[0], f"{name} uai"), require_signed_amount(item[1], name)))
    uais = [uai for uai, _ in pairs]
    if uais != sorted(set(uais)):
        raise DecodeError("bad-field", f"{name} must name 0..{ASSETS_PER_ENTRY_MAX} uais, sorted")
    return tuple(pairs)


def entry_from_wire(obj: object) -> ChainEntry:
    """Decode an entry map strictly. Raises DecodeError."""
    fields = require_map(obj, "entry", _ENTRY_FIELDS, _ENTRY_OPTIONAL_FIELDS)
    deltas = _asset_amounts(fields["deltas"], "deltas")
    balances = _asset_amounts(fields["balances"], "balances")
    if [uai for uai, _ in deltas] != [uai for uai, _ in balances]:
        raise DecodeError("bad-field", "balances must name the uais of the deltas")
    if any(delta == 0 for _, delta in deltas):
        raise DecodeError("bad-field", "a delta is never zero")
    body = EntryBody(
        require_ubi(fields["ubi"], "ubi"),
        require_int(fields["seq"], "seq", 0, AMOUNT_MAX),
        require_bytes(fields["prev_hash"], "prev_hash", HASH_BYTES),
        signed_instruction_from_parts(
            fields["instruction"], fields["signer"], fields["instruction_signature"]
        ),
        deltas,
        balances,
        require_int(fields["appended_at_ms"], "appended_at_ms", 0, TIME_MS_MAX),
    )
    signature = require_bytes(fields["validator_signature"], "validator_signature", SIGNATURE_BYTES)
    record_hashes: tuple[bytes, ...] = ()
    if "record_hashes" in fields:
        items = require_list(fields["record_hashes"], "record_hashes", ENTRIES_PER_RECORD_MAX)
        if len(items) < 2:
            raise DecodeError("bad-field", "record_hashes lists two hashes or more")
        record_hashes = tuple(require_bytes(item, "record hash", HASH_BYTES) for item in items)
        if body.entry_hash() not in record_hashes:
            raise DecodeError("bad-field", "record_hashes must include the entry's own hash")
    batch_path: tuple[bytes, ...] = ()
    if "batch_path" in fields:
        steps = require_list(fields["batch_path"], "batch_path", BATCH_PATH_STEPS_MAX)
        if not steps:
            raise DecodeError("bad-field", "batch_path has one step or more")
        batch_path = tuple(
            require_bytes(step, "batch path step", _PATH_STEP_BYTES) for step in steps
        )
        if any(step[0] not in (0, 1) for step in batch_path):
            raise DecodeError("bad-field", "a batch path step starts with its side, 0 or 1")
    return ChainEntry(body, signature, record_hashes, batch_path)


def encode_entry(entry: ChainEntry) -> bytes:
    return entry.encoded()


def entry_from_bytes(raw: object) -> ChainEntry:
    """An entry from its canonical bytes, strictly: DecodeError unless ``raw``
    is exactly what ``encode_entry`` writes."""
    if type(raw) is not bytes:
        raise DecodeError("bad-field", "an entry's bytes")
    entry = entry_from_wire(unpack(raw, CHAIN_ENTRY_BYTES_MAX))
    if entry.encoded() != raw:
        raise DecodeError("non-canonical", "not the canonical encoding of its content")
    return entry


def decode_entry(raw: bytes) -> ChainEntry:
    return entry_from_bytes(raw)


# --- what an instruction does to a chain ---------------------------------------------------


def payer_of(instruction: Instruction) -> str | None:
    """The customer who signs ``instruction`` (its owner's key signs its entry
    on that customer's chain), or None when the validator signs it."""
    if isinstance(instruction, Transfer | CrossTransfer):
        return instruction.from_ubi
    if isinstance(instruction, Offer | OfferCancel):
        return instruction.maker
    if isinstance(instruction, Take):
        return instruction.taker
    return None


def same_validator(take: Take) -> bool:
    """Whether a take's maker and taker bank at the same validator."""
    return domain_of(take.taker) == domain_of(take.maker)


def chains_of(instruction: Instruction) -> tuple[str, ...]:
    """The chains an instruction appends to, in record order (the debited first)."""
    if isinstance(instruction, Transfer):
        return (instruction.from_ubi, instruction.to_ubi)
    if isinstance(instruction, CrossTransfer):
        return (instruction.from_ubi,)
    if isinstance(instruction, Offer | OfferFill | OfferUnfill | OfferClose):
        return (instruction.maker,)
    if isinstance(instruction, OfferCancel):
        return ()  # a message to the maker's validator, never an entry
    if isinstance(instruction, Take):
        if same_validator(instruction):
            return (instruction.taker, instruction.maker)
        return (instruction.taker,)
    books = issuer_of(instruction.uai)
    if isinstance(instruction, Deposit | Credit):
        return (books, instruction.ubi)
    if isinstance(instruction, Release):
        return (instruction.ubi,)
    return (instruction.ubi, books)  # Withdraw, Settle


def home_chain(instruction: Instruction) -> str:
    """The chain whose entry counts an instruction's once-only effects (its
    nonce, spending, totals, holds, reservations): the signing customer's, the
    maker's for what the validator does with an offer, the payer's for a
    release, the issuer's books otherwise."""
    if isinstance(instruction, Transfer | CrossTransfer | Offer | OfferCancel | Take):
        return nonce_account(instruction)
    if isinstance(instruction, OfferFill | OfferUnfill | OfferClose):
        return instruction.maker
    if isinstance(instruction, Release):
        return instruction.ubi
    return issuer_of(instruction.uai)


def _offer_deltas(ubi: str, instruction: Instruction) -> AssetAmounts:
    if isinstance(instruction, Offer):
        return ((instruction.sell_uai, -instruction.reserved),)
    if isinstance(instruction, Take):
        if not same_validator(instruction):
            return ((instruction.buy_uai, -instruction.held),)
        if ubi == instruction.maker:
            return ((instruction.buy_uai, instruction.pay),)
        deltas = {instruction.sell_uai: instruction.amount, instruction.buy_uai: -instruction.pay}
        return tuple(sorted(deltas.items()))
    if isinstance(instruction, OfferClose) and instruction.returned:
        return ((instruction.uai, instruction.returned),)
    return ()  # a fill or an unfill moves money between a reservation and a hold


def expected_deltas(ubi: str, signed: SignedInstruction) -> AssetAmounts | None:
    """The balance changes ``signed`` makes on the chain ``ubi``; None if it has
    nothing to do with that chain."""
    instruction = signed.instruction
    chains = chains_of(instruction)
    if ubi not in chains or len(set(chains)) != len(chains):
        return None
    if isinstance(instruction, OfferInstruction):
        return _offer_deltas(ubi, instruction)
    uai = instruction.uai
    if isinstance(instruction, Transfer):
        amount = instruction.amount
        return ((uai, -amount if ubi == instruction.from_ubi else amount),)
    if isinstance(instruction, CrossTransfer):
        return ((uai, -instruction.held),)
    if isinstance(instruction, Release):
        return ((uai, instruction.held),)
    if isinstance(instruction, Settle):
        if ubi != instruction.ubi:
            return ((uai, instruction.debit),)
        refund = instruction.held - instruction.debit
        return ((uai, refund),) if refund else ()
    sign = 1 if isinstance(instruction, Deposit | Credit) else -1
    return (
        (uai, sign * instruction.amount if ubi == instruction.ubi else -sign * instruction.amount),
    )


def nonce_account(instruction: Instruction) -> str:
    """Whose nonces an instruction uses: the signing customer's, or the issuer's
    books for what the validator signs. Each account's nonces strictly
    increase, so every instruction is applied at most once."""
    if isinstance(instruction, Transfer | CrossTransfer | Offer | OfferCancel | Take):
        payer = payer_of(instruction)
        assert payer is not None
        return payer
    return issuer_of(instruction.uai)


# --- offline verification --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first rule a chain breaks: where (index in the list, the entry's
    seq when it has one) and a stable reason code."""

    index: int | None
    seq: int | None
    reason: str
    detail: str

    def __str__(self) -> str:
        where = "chain" if self.index is None else f"entry {self.index} (seq {self.seq})"
        return f"{where}: {self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    """``ok`` with the final balances, or the first problem. ``entries``: how
    many entries verified before the problem (all of them when ok)."""

    ok: bool
    ubi: str | None
    balances: dict[str, int]
    entries: int
    head_hash: bytes
    problem: ChainProblem | None = None
    held: dict[str, int] = field(default_factory=dict)
    """Per uai, what open holds keep from the balances (a payer's chain)."""
    reserved: dict[str, int] = field(default_factory=dict)
    """Per uai, what open offers keep from the balances (a maker's chain)."""


@dataclass(slots=True)
class _Walk:
    """What verification has learned so far along one chain."""

    validator_key: bytes
    owner_key: bytes | None
    ubi: str | None
    head_hash: bytes = ZERO_HASH
    balances: dict[str, int] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)  # nonce account -> last nonce
    appended_at_ms: int = 0
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # open: id -> (uai, held)
    ended: set[str] = field(default_factory=set)  # payment ids whose hold ended
    carved: dict[str, bytes] = field(default_factory=dict)  # payment id -> its offer's id
    reservations: dict[bytes, tuple[str, int]] = field(default_factory=dict)  # open: id -> rest
    closed: set[bytes] = field(default_factory=set)  # offers whose reservation ended

    def held(self) -> dict[str, int]:
        return _sums(self.holds.values())

    def reserved(self) -> dict[str, int]:
        return _sums(self.reservations.values())


def _sums(amounts: Iterable[tuple[str, int]]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for uai, amount in amounts:
        sums[uai] = sums.get(uai, 0) + amount
    return sums


def _entry_problem(walk: _Walk, index: int, entry: ChainEntry) -> tuple[str, str] | None:
    body = entry.body
    if walk.ubi is not None and body.ubi != walk.ubi:
        return "wrong-ubi", f"{body.ubi!r} in the chain of {walk.ubi!r}"
    if body.seq != index:
        return "seq-gap", f"seq {body.seq} where {index} belongs"
    if body.prev_hash != walk.head_hash:
        return "prev-hash", "does not link to the entry before"
    if not entry.signed_by(walk.validator_key):
        return "validator-signature", "not signed by the validator"
    if body.appended_at_ms < walk.appended_at_ms:
        return "time-backwards", f"appended at {body.appended_at_ms} after {walk.appended_at_ms}"
    return _instruction_problem(walk, body) or _balance_problem(walk, body)


def _instruction_problem(walk: _Walk, body: EntryBody) -> tuple[str, str] | None:
    signed = body.instruction
    instruction = signed.instruction
    if not signed.verifies():
        return "instruction-signature", "the instruction's signature does not verify"
    payer = payer_of(instruction)
    if payer is not None:
        if body.ubi == payer:
            owner = walk.owner_key if walk.owner_key is not None else signed.signer_key
            if signed.signer_key != owner:
                return "wrong-signer", "a debit not signed by the account's owner"
            walk.owner_key = owner
    elif signed.signer_key != walk.validator_key:
        return "wrong-signer", f"a {instruction.TYPE} not signed by the issuing validator"
    deltas = expected_deltas(body.ubi, signed)
    if deltas is None:
        return "unrelated-instruction", f"the {instruction.TYPE} does not concern {body.ubi!r}"
    if body.deltas != deltas:
        return "instruction-mismatch", f"deltas {body.deltas} where the instruction says {deltas}"
    account = nonce_account(instruction)
    last_nonce = walk.nonces.get(account, 0)
    if instruction.nonce <= last_nonce:
        return "replayed-nonce", f"nonce {instruction.nonce} of {account} after {last_nonce}"
    return _hold_problem(walk, body)


def opened_hold(instruction: Instruction) -> tuple[str, str, int] | None:
    """(payment id, uai, held) of the hold an instruction opens on its payer's
    chain: a cross transfer, a take across validators, a carved fill."""
    if isinstance(instruction, CrossTransfer | OfferFill):
        return instruction.payment_id, instruction.uai, instruction.held
    if isinstance(instruction, Take) and not same_validator(instruction):
        return instruction.payment_id, instruction.buy_uai, instruction.held
    return None


def _hold_problem(walk: _Walk, body: EntryBody) -> tuple[str, str] | None:
    """On a customer's chain a hold opens once and ends once, as it was opened."""
    instruction = body.instruction.instruction
    if is_books(body.ubi):
        return None
    opened = opened_hold(instruction)
    if opened is not None:
        payment_id = opened[0]
        if payment_id in walk.holds or payment_id in walk.ended:
            return "duplicate-hold", f"payment {payment_id!r} held before"
    elif isinstance(instruction, Settle | Release | OfferUnfill):
        hold = walk.holds.get(instruction.payment_id)
        if hold != (instruction.uai, instruction.held):
            return "unknown-hold", f"no open hold {instruction.payment_id!r} of {instruction.held}"
        carved_from = walk.carved.get(instruction.payment_id)
        if isinstance(instruction, OfferUnfill) and carved_from != instruction.offer_id:
            return "unknown-hold", f"{instruction.payment_id!r} is no fill of that offer"
    return _reservation_problem(walk, body)


def _taken(body: EntryBody) -> tuple[bytes, str, int] | None:
    """(offer id, uai, amount) an entry takes out of a reservation on the maker's
    chain (negative: puts back), or None."""
    instruction = body.instruction.instruction
    if isinstance(instruction, Take) and body.ubi == instruction.maker:
        return instruction.offer_id, instruction.sell_uai, instruction.amount
    if isinstance(instruction, OfferFill):
        return instruction.offer_id, instruction.uai, instruction.held
    if isinstance(instruction, OfferUnfill):
        return instruction.offer_id, instruction.uai, -instruction.held
    if isinstance(instruction, OfferClose):
        return instruction.offer_id, instruction.uai, instruction.returned
    return None


def _reservation_problem(walk: _Walk, body: EntryBody) -> tuple[str, str] | None:
    """A reservation opens once; what takes from it never passes what is left;
    its close returns exactly the rest."""
    instruction = body.instruction.instruction
    if isinstance(instruction, Offer):
        offer_id = instruction.offer_id
        if offer_id in walk.reservations or offer_id in walk.closed:
            return "duplicate-offer", f"offer {offer_id.hex()} reserved before"
        return None
    taken = _taken(body)
    if taken is None:
        return None
    offer_id, uai, amount = taken
    reservation = walk.reservations.get(offer_id)
    if reservation is None or reservation[0] != uai:
        return "unknown-offer", f"no open offer {offer_id.hex()} of {uai}"
    if amount > reservation[1]:
        return "reservation-overdrawn", f"{amount} out of {reservation[1]} reserved"
    if isinstance(instruction, OfferClose) and amount != reservation[1]:
        return "reservation-mismatch", f"returns {amount} of {reservation[1]} reserved"
    return None


def _advance_holds(walk: _Walk, body: EntryBody) -> None:
    instruction = body.instruction.instruction
    opened = opened_hold(instruction)
    if opened is not None:
        payment_id, uai, held = opened
        walk.holds[payment_id] = (uai, held)
        if isinstance(instruction, OfferFill):
            walk.carved[payment_id] = instruction.offer_id
    elif isinstance(instruction, Settle | Release | OfferUnfill):
        del walk.holds[instruction.payment_id]
        walk.ended.add(instruction.payment_id)
    if isinstance(instruction, Offer):
        walk.reservations[instruction.offer_id] = (instruction.sell_uai, instruction.reserved)
        return
    taken = _taken(body)
    if taken is not None:
        offer_id, uai, amount = taken
        rest = walk.reservations[offer_id][1] - amount
        if isinstance(instruction, OfferClose):
            del walk.reservations[offer_id]
            walk.closed.add(offer_id)
        else:
            walk.reservations[offer_id] = (uai, rest)


def _balance_problem(walk: _Walk, body: EntryBody) -> tuple[str, str] | None:
    books = is_books(body.ubi)
    for (uai, delta), (_, balance) in zip(body.deltas, body.balances, strict=True):
        expected = walk.balances.get(uai, 0) + delta
        if balance != expected:
            return "balance-mismatch", f"{uai} balance {balance}, expected {expected}"
        if books and balance > 0:
            return "positive-books-balance", f"{uai} books balance {balance}"
        if not books and balance < 0:
            return "negative-balance", f"{uai} balance {balance}"
    return None


def _advance(walk: _Walk, entry: ChainEntry) -> None:
    body = entry.body
    walk.ubi = body.ubi
    walk.head_hash = entry.entry_hash()
    walk.balances.update(body.balances)
    instruction = body.instruction.instruction
    walk.nonces[nonce_account(instruction)] = instruction.nonce
    walk.appended_at_ms = body.appended_at_ms
    if not is_books(body.ubi):
        _advance_holds(walk, body)


def verify_chain(
    entries: Sequence[ChainEntry],
    validator_key: bytes,
    *,
    ubi: str | None = None,
    owner_key: bytes | None = None,
) -> ChainReport:
    """Verify a whole chain offline, from seq 0.

    ``ubi``: the account the chain must belong to (default: the first entry's).
    ``owner_key``: the user's key (from a federation record); the debits must be
    signed by it (default: by whichever key signed the first debit).
    """
    walk = _Walk(validator_key, owner_key, ubi)
    for index, entry in enumerate(entries):
        problem = _entry_problem(walk, index, entry)
        if problem is not None:
            reason, detail = problem
            return ChainReport(
                False,
                walk.ubi,
                dict(walk.balances),
                index,
                walk.head_hash,
                ChainProblem(index, entry.seq, reason, detail),
                walk.held(),
                walk.reserved(),
            )
        _advance(walk, entry)
    return ChainReport(
        True,
        walk.ubi,
        dict(walk.balances),
        len(entries),
        walk.head_hash,
        None,
        walk.held(),
        walk.reserved(),
    )
