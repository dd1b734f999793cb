"""A validator's Books: its customers' hash-chained ledgers, decided sans-IO.

Theory of operation:
- One chain per registered user (UBI = its address) and one for the
  validator's own books (UBI = its domain). Assets are the validator's own
  UAIs (``domain/CODE``), defined by a definition it signed.
- ``handle(input, now_ms)`` checks an input and either refuses it
  (``NotifyRefused`` with a stable reason, nothing changes) or returns one
  ``SignRecord``: the record of its decision and the exact bytes the
  validator must sign (entry hashes, a federation record). The core never
  signs. The shell signs them with the node key and calls
  ``apply_signed(record, signatures)``, which completes the record, applies
  it, and returns ``PersistRecord`` (make it durable first) then the
  ``Notify*`` answers. ``handle`` refuses to run while a SignRecord is open.
  For a batch of transfers the shell may instead ``apply_before_signing``
  each record of entries and, once the batch is decided, sign them all with
  one signature over the Merkle root of their records (``batch_request``,
  ``sign_applied``): decisions never read a validator signature, and nothing
  is persisted or read before the signature.
- State changes only through ``apply(record)`` with complete records: the
  live path (``apply_signed``) and replay of the log use it alike, and replay
  never needs the key. Records hold outcomes, so replay never re-decides.
- Checks on a transfer, in order: bad-instruction, bad-amount, unknown-user
  (payer), bad-signature (the payer's registered key, on the exact bytes),
  replay, self-transfer, unknown-payee, unknown-asset, frozen (payer or
  payee), kyc (payee's level below the asset's), insufficient-funds,
  daily-limit (the payer's transfers of the uai on this UTC day + amount above
  ``daily_limits[uai]``; no entry: no limit).
- Deposits and withdrawals are signed by the validator's key as issuer:
  bad-instruction, bad-amount, bad-signature, replay, unknown-user,
  unknown-asset, frozen, then kyc and max-supply (deposit) or
  insufficient-funds (withdrawal).
- Nonces: strictly increasing per nonce account (the payer's address for
  transfers, the validator's books for deposits and withdrawals); gaps are
  allowed, reuse is ``replay``.
- A repeat of a registration or asset definition that is already in force,
  identically, gets the same answer again and records nothing.
- Cross-bank payments (holds on the payer's chain, settle or release, credits
  of payees paid over the mesh) are decided in ``holds.py``, with the same
  handshake and records.
- Exchange offers (reservations on the maker's chain, takes here or of other
  validators' offers, carved fills, unfills, closes) are decided in
  ``offers.py``, with the same handshake and records.
- Pure: time is ``now_ms`` (entries take max(now_ms, the latest time
  recorded), so chains never go back in time); no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from node.codec import DecodeError
from node.ledger.chain import (
    ChainEntry,
    EntryBody,
    batch_leaf,
    batch_root,
    batch_signing_request,
    batch_tree,
    nonce_account,
)
from node.ledger.codec import (
    ToSign,
    attributes_problem,
    domain_of,
    issuer_of,
    valid_address,
    valid_domain,
    valid_uai,
)
from node.ledger.events import (
    ActionCredit,
    ActionDefineAsset,
    ActionDeposit,
    ActionFreeze,
    ActionOfferClose,
    ActionOfferFill,
    ActionOfferUnfill,
    ActionRegisterUser,
    ActionRelease,
    ActionSettle,
    ActionWithdraw,
    AssetTotals,
    Effect,
    Input,
    NotifyAppended,
    NotifyAssetDefined,
    NotifyFrozen,
    NotifyRefused,
    NotifyRegistered,
    OfferView,
    PersistRecord,
    ReceiveCrossTransfer,
    ReceiveOffer,
    ReceiveTake,
    ReceiveTransfer,
    Refusal,
    SignRecord,
    UserView,
)
from node.ledger.files import ChainFile
from node.ledger.holds import credit_refusal, entries_of, hold_end_refusal, hold_refusal
from node.ledger.offers import (
    amounts_of,
    close_refusal,
    fill_refusal,
    maker_side_refusal,
    offer_refusal,
    offer_view,
    take_refusal,
    unfill_refusal,
)
from node.ledger.records import (
    AssetDefined,
    EntriesAppended,
    Record,
    UserFrozen,
    UserRegistered,
)
from node.ledger.signed import (
    AssetDefinition,
    Credit,
    CrossTransfer,
    Deposit,
    FederationRecord,
    Offer,
    OfferClose,
    OfferFill,
    OfferUnfill,
    Release,
    Settle,
    SignedAssetDefinition,
    SignedIdentity,
    SignedInstruction,
    Take,
    Transfer,
    Withdraw,
    signed_asset_from_wire,
    signed_identity_from_wire,
    signed_instruction_from_wire,
)
from node.ledger.snapshot import state_from_snapshot, state_to_snapshot
from node.ledger.state import BooksState, HoldState
from node.limits import (
    AMOUNT_MAX,
    ASSETS_PER_VALIDATOR_MAX,
    CHAIN_ENTRIES_PER_PULL_MAX,
    KYC_LEVEL_MAX,
    PUBLIC_KEY_BYTES,
    USERS_PER_VALIDATOR_MAX,
)
from node.signatures import verify

_Refused = tuple[Refusal, str]
_Decision = Record | _Refused | list[Effect]
"""A record to sign, a refusal, or the answer to a repeat (no record)."""


class _Document(Protocol):
    def to_wire(self) -> Any: ...


def _well_formed(document: _Document, from_wire: Callable[[Any], object]) -> bool:
    """Whether an in-memory document is one its strict decoder would accept
    (inputs may be built in memory by the API layer, not decoded from bytes)."""
    try:
        from_wire(document.to_wire())
    except (DecodeError, AttributeError, TypeError, ValueError, OverflowError):
        return False
    return True


def _valid_amount(amount: object) -> bool:
    return type(amount) is int and 0 < amount <= AMOUNT_MAX


def _checked_limits(daily_limits: Mapping[str, int]) -> dict[str, int]:
    """The config layer validates limits; here they are facts."""
    for uai, limit in daily_limits.items():
        assert valid_uai(uai), f"uai {uai!r}"
        assert type(limit) is int and limit >= 0, f"daily limit of {uai!r}"
    return dict(daily_limits)


class Books:
    """A validator's customer ledgers. See the module's rules."""

    def __init__(
        self, validator_name: str, validator_key: bytes, daily_limits: Mapping[str, int]
    ) -> None:
        assert valid_domain(validator_name), validator_name
        assert type(validator_key) is bytes and len(validator_key) == PUBLIC_KEY_BYTES
        self._name = validator_name
        self._key = validator_key
        self._daily_limits = _checked_limits(daily_limits)
        self._state = BooksState(validator_name)
        self._open: Record | None = None  # emitted by handle, not yet signed and applied
        self._signer_checked = False  # the shell's signatures were checked against our key
        # Applied before their signatures (apply_before_signing), in order, and
        # their paths to the root batch_request made.
        self._unsigned: list[EntriesAppended] = []
        self._batch: list[tuple[bytes, ...]] | None = None

    @classmethod
    def from_snapshot(
        cls,
        obj: object,
        validator_name: str,
        validator_key: bytes,
        daily_limits: Mapping[str, int],
    ) -> Books:
        """Restore ``to_snapshot`` output. Raises DecodeError if it is not one."""
        books = cls(validator_name, validator_key, daily_limits)
        books._state = state_from_snapshot(obj, validator_name, validator_key)
        return books

    def to_snapshot(self) -> dict[str, Any]:
        assert self._open is None, "a record is waiting for its signatures"
        assert not self._unsigned, "entries are waiting for their signatures"
        return state_to_snapshot(self._state)

    def set_daily_limits(self, daily_limits: Mapping[str, int]) -> None:
        """A config reload: changes future decisions only."""
        self._daily_limits = _checked_limits(daily_limits)

    # --- the signing handshake -------------------------------------------------------

    def handle(self, input: Input, now_ms: int) -> list[Effect]:
        """Decide. Returns [SignRecord] or [NotifyRefused] (or, for a repeat, its answer)."""
        assert self._open is None, "apply_signed the last SignRecord before the next input"
        decision = self._decide(input, max(now_ms, self._state.clock_ms))
        if isinstance(decision, tuple):
            reason, detail = decision
            return [NotifyRefused(str(reason), detail)]
        if isinstance(decision, list):
            return decision
        self._open = decision
        return [SignRecord(decision, decision.to_sign())]

    def apply_signed(self, record: Record, signatures: tuple[bytes, ...]) -> list[Effect]:
        """Complete the open record with the node key's ``signatures`` of its
        ``to_sign``, apply it, and return [PersistRecord, Notify*]."""
        assert record is self._open, "apply_signed takes the record of the last SignRecord"
        assert not self._unsigned, "sign_applied what was applied before signing first"
        requests = record.to_sign()
        assert len(signatures) == len(requests), "one signature per item to sign"
        if requests:
            self._check_signer(requests[0], signatures[0])
        complete = record.signed(signatures)
        self._open = None
        self.apply(complete)
        return [PersistRecord(complete), self._notice(complete)]

    def _check_signer(self, request: ToSign, signature: bytes) -> None:
        # The shell's first signature is checked: a shell signing with the wrong
        # key is caught on its first record. The key cannot change afterwards,
        # and a verify per record would cost as much as the customer's.
        if not self._signer_checked:
            assert verify(self._key, request.kind, request.payload, signature), "not our key"
            self._signer_checked = True

    # --- many instructions, signed together ----------------------------------------------

    def apply_before_signing(self, record: Record) -> None:
        """Apply the open record of entries now, and sign it with the others later
        (``sign_applied``), so the shell decides a batch's instructions one after
        the other and signs them all at once, on every core. Decisions read
        balances, nonces and heads (entry hashes), never a validator signature;
        until ``sign_applied`` no record is persisted and the chains are not read."""
        assert record is self._open and isinstance(record, EntriesAppended), "entries only"
        self._open = None
        self.apply(record.signed((b"",)))  # the signature is filled in by sign_applied
        self._unsigned.append(record)

    def batch_request(self) -> ToSign | None:
        """What to sign for every record applied before signing: one record's own
        request, or the Merkle root of theirs (``chain-batch``); None if none."""
        self._batch = None
        leaves = [batch_leaf(record.to_sign()[0]) for record in self._unsigned]
        if len(leaves) < 2:
            return self._unsigned[0].to_sign()[0] if leaves else None
        root, paths = batch_tree(leaves)
        self._batch = paths
        return batch_signing_request(root)

    def sign_applied(self, signature: bytes | None) -> list[Effect]:
        """Complete the records applied before signing with the node key's
        ``signature`` of ``batch_request()``: [PersistRecord, NotifyAppended]
        per record, in the order they were decided."""
        # Every check before anything changes: on a failure the entries stay
        # unsigned, so no snapshot can be written from these Books.
        records, batch = self._unsigned, self._batch
        if not records:
            return []
        paths = [()] if len(records) == 1 else batch
        assert paths is not None and len(paths) == len(records), "batch_request, then this"
        assert signature is not None
        request = records[0].to_sign()[0]
        if len(records) > 1:
            request = batch_signing_request(batch_root(batch_leaf(request), paths[0]))
        self._check_signer(request, signature)
        self._unsigned, self._batch = [], None
        effects: list[Effect] = []
        for record, path in zip(records, paths, strict=True):
            complete = record.signed((signature,), path)
            self._state.sign_entries(complete.entries())
            effects += [PersistRecord(complete), self._notice(complete)]
        return effects

    def apply(self, record: Record) -> None:
        """The only way the state changes: a complete record, live or replayed."""
        assert self._open is None, "a record is waiting for its signatures"
        if isinstance(record, UserRegistered):
            assert record.federation.validator_key == self._key, "federated by another key"
        self._state.apply(record)

    @staticmethod
    def _notice(record: Record) -> Effect:
        if isinstance(record, EntriesAppended):
            return NotifyAppended(record.entries())
        if isinstance(record, UserRegistered):
            return NotifyRegistered(record.signed_federation())
        if isinstance(record, AssetDefined):
            return NotifyAssetDefined(record.definition)
        return NotifyFrozen(record.address, record.frozen)

    # --- queries -----------------------------------------------------------------------

    @property
    def validator_name(self) -> str:
        return self._name

    @property
    def validator_key(self) -> bytes:
        return self._key

    def user(self, address: str) -> UserView | None:
        user = self._state.users.get(address)
        if user is None:
            return None
        record = user.federation.record
        return UserView(
            address,
            record.user_key,
            record.kyc_level,
            dict(user.attributes),
            user.frozen,
            user.federation,
            user.identity,
        )

    def addresses(self) -> list[str]:
        """Every registered user, in registration order."""
        return list(self._state.users)

    def asset(self, uai: str) -> AssetDefinition | None:
        record = self._state.assets.get(uai)
        return None if record is None else record.definition.definition

    def signed_asset(self, uai: str) -> SignedAssetDefinition | None:
        record = self._state.assets.get(uai)
        return None if record is None else record.definition

    def uais(self) -> list[str]:
        return list(self._state.assets)

    def balances(self, ubi: str) -> dict[str, int]:
        """Per uai the account has ever touched; the books' are minus what is outstanding."""
        return dict(self._state.balances.get(ubi, {}))

    def chain_length(self, ubi: str) -> int:
        return len(self._state.chains.get(ubi, ()))

    def chain(
        self, ubi: str, from_seq: int = 0, limit: int = CHAIN_ENTRIES_PER_PULL_MAX
    ) -> list[ChainEntry]:
        """At most ``limit`` entries of the chain from ``from_seq``."""
        assert 0 < limit <= CHAIN_ENTRIES_PER_PULL_MAX and from_seq >= 0
        assert not self._unsigned, "entries are waiting for their signatures"
        return self._state.chains.get(ubi, [])[from_seq : from_seq + limit]

    def chain_file(self, ubi: str) -> ChainFile:
        """The whole chain of ``ubi`` with what a reader needs to verify it."""
        assert ubi in self._state.chains, ubi
        assert not self._unsigned, "entries are waiting for their signatures"
        user = self._state.users.get(ubi)
        federation = None if user is None else user.federation
        return ChainFile(self._key, federation, tuple(self._state.chains[ubi]))

    def totals(self) -> dict[str, AssetTotals]:
        return {
            uai: AssetTotals(
                totals.issued,
                totals.redeemed,
                totals.paid_out,
                totals.paid_in,
                self._state.held.get(uai, 0),
                self._state.reserved.get(uai, 0),
            )
            for uai, totals in self._state.totals.items()
        }

    def hold(self, payer: str, payment_id: str) -> HoldState | None:
        """The payer's hold for ``payment_id`` (open, settled or released), or None."""
        return self._state.holds.get((payer, payment_id))

    def open_holds(self) -> list[HoldState]:
        return [hold for hold in self._state.holds.values() if hold.status == "open"]

    def held(self, ubi: str) -> dict[str, int]:
        """Per uai, what the open holds of ``ubi`` keep from its balances."""
        held: dict[str, int] = {}
        for (payer, _), hold in self._state.holds.items():
            if payer == ubi and hold.status == "open":
                uai = hold.transfer.uai
                held[uai] = held.get(uai, 0) + hold.transfer.held
        return held

    def offer(self, offer_id: bytes) -> OfferView | None:
        """An offer received here and its reservation (open or closed), or None."""
        reservation = self._state.offers.get(offer_id)
        return None if reservation is None else offer_view(offer_id, reservation)

    def offer_ids(self) -> list[bytes]:
        """Every offer received here, open or closed, oldest first."""
        return list(self._state.offers)

    def open_offers(self, maker: str | None = None) -> list[OfferView]:
        """The open offers (of ``maker``, or everyone's) in the order they were
        placed (at the same millisecond: by maker, then nonce)."""
        offers = self._state.offers
        found = [
            (reservation.placed_ms, reservation.offer.maker, reservation.offer.nonce, offer_id)
            for offer_id, reservation in ((i, offers[i]) for i in self._state.open_offer_ids)
            if maker in (None, reservation.offer.maker)
        ]
        return [offer_view(offer_id, offers[offer_id]) for *_, offer_id in sorted(found)]

    def reserved(self, ubi: str) -> dict[str, int]:
        """Per uai, what the open offers of ``ubi`` keep from its balances."""
        reserved: dict[str, int] = {}
        for reservation in self._state.offers.values():
            offer = reservation.offer
            if offer.maker == ubi and reservation.status == "open":
                rest = reservation.left + reservation.fee_left
                reserved[offer.sell_uai] = reserved.get(offer.sell_uai, 0) + rest
        return reserved

    def take_problem(self, take: Take, now_ms: int) -> tuple[Refusal, str] | None:
        """Why we, the maker's validator, may not fill ``take`` now (the offer is
        unknown, closed, expired, too small a part, too cheap...), or None.
        For a take that arrives from another validator, before accepting it."""
        return maker_side_refusal(self._state, take, max(now_ms, self._state.clock_ms))

    def credited(self, payer: str, payment_id: str) -> bool:
        """Whether validator ``payer``'s payment ``payment_id`` was credited here."""
        return (payer, payment_id) in self._state.credits

    def last_nonce(self, account: str) -> int:
        """The last nonce used by ``account``: a user (its transfers) or our
        domain (our deposits and withdrawals). The next must be greater."""
        return self._state.last_nonce(account)

    def spent_today(self, address: str, uai: str, now_ms: int) -> int:
        """The user's transfers of ``uai`` on the UTC day of ``now_ms``."""
        return self._state.spent_on_day(address, uai, max(now_ms, self._state.clock_ms))

    # --- decisions ---------------------------------------------------------------------

    def _decide(self, input: Input, now_ms: int) -> _Decision:
        if isinstance(input, ReceiveTransfer):
            return self._transfer(input.instruction, now_ms)
        if isinstance(input, ActionDeposit):
            return self._issue(input.instruction, Deposit, now_ms)
        if isinstance(input, ActionWithdraw):
            return self._issue(input.instruction, Withdraw, now_ms)
        if isinstance(input, ReceiveCrossTransfer):
            return self._hold(input.instruction, now_ms)
        if isinstance(input, ActionSettle | ActionRelease):
            kind = Settle if isinstance(input, ActionSettle) else Release
            return self._end_hold(input.instruction, kind, now_ms)
        if isinstance(input, ActionCredit):
            return self._credit(input.instruction, now_ms)
        if isinstance(input, ReceiveOffer | ReceiveTake):
            wanted = Offer if isinstance(input, ReceiveOffer) else Take
            return self._customer_offer(input.instruction, wanted, now_ms)
        if isinstance(input, ActionOfferFill | ActionOfferUnfill | ActionOfferClose):
            return self._offer_action(input, now_ms)
        if isinstance(input, ActionRegisterUser):
            return self._register(input, now_ms)
        if isinstance(input, ActionDefineAsset):
            return self._define_asset(input.definition, now_ms)
        assert isinstance(input, ActionFreeze)
        return self._freeze(input, now_ms)

    def _instruction_refusal(self, signed: object, kind: type) -> _Refused | None:
        if not isinstance(signed, SignedInstruction) or not isinstance(signed.instruction, kind):
            return Refusal.BAD_INSTRUCTION, f"this input takes a signed {kind.__name__}"
        if not all(_valid_amount(amount) for amount in amounts_of(signed.instruction)):
            return Refusal.BAD_AMOUNT, f"an amount is 1..{AMOUNT_MAX}"
        if not signed.decoded and not _well_formed(signed, signed_instruction_from_wire):
            return Refusal.BAD_INSTRUCTION, "a field is malformed or out of range"
        return None

    def _replay_refusal(self, signed: SignedInstruction) -> _Refused | None:
        account = nonce_account(signed.instruction)
        last = self._state.last_nonce(account)
        if signed.instruction.nonce <= last:
            return Refusal.REPLAY, f"nonce {signed.instruction.nonce}: {account} is at {last}"
        return None

    def _transfer(self, signed: SignedInstruction, now_ms: int) -> _Decision:
        refusal = self._instruction_refusal(signed, Transfer)
        if refusal is not None:
            return refusal
        transfer = signed.instruction
        assert isinstance(transfer, Transfer)
        users = self._state.users
        payer = users.get(transfer.from_ubi)
        if payer is None:
            return Refusal.UNKNOWN_USER, f"{transfer.from_ubi} is not a user here"
        if signed.signer_key != payer.federation.record.user_key or not signed.verifies():
            return Refusal.BAD_SIGNATURE, f"not signed by {transfer.from_ubi}'s key"
        refusal = self._replay_refusal(signed)
        if refusal is not None:
            return refusal
        if transfer.to_ubi == transfer.from_ubi:
            return Refusal.SELF_TRANSFER, "the payer is the payee"
        payee = users.get(transfer.to_ubi)
        if payee is None:
            return Refusal.UNKNOWN_PAYEE, f"{transfer.to_ubi} is not a user here"
        asset = self.asset(transfer.uai)
        if asset is None:
            return Refusal.UNKNOWN_ASSET, f"no asset {transfer.uai} here"
        if payer.frozen or payee.frozen:
            frozen = transfer.from_ubi if payer.frozen else transfer.to_ubi
            return Refusal.FROZEN, f"{frozen} is frozen"
        if payee.federation.record.kyc_level < asset.kyc_level:
            return Refusal.KYC, f"{transfer.to_ubi} is below KYC level {asset.kyc_level}"
        balance = self._state.balance(transfer.from_ubi, transfer.uai)
        if balance < transfer.amount:
            return Refusal.INSUFFICIENT_FUNDS, f"balance {balance} < {transfer.amount}"
        limit = self._daily_limits.get(transfer.uai)
        spent = self._state.spent_on_day(transfer.from_ubi, transfer.uai, now_ms)
        if limit is not None and spent + transfer.amount > limit:
            return Refusal.DAILY_LIMIT, f"{spent} spent today + {transfer.amount} > {limit}"
        return self._entries(signed, transfer.from_ubi, transfer.to_ubi, now_ms)

    def _hold(self, signed: SignedInstruction, now_ms: int) -> _Decision:
        refusal = self._instruction_refusal(signed, CrossTransfer)
        if refusal is not None:
            return refusal
        transfer = signed.instruction
        assert isinstance(transfer, CrossTransfer)
        payer = self._state.users.get(transfer.from_ubi)
        if payer is None:
            return Refusal.UNKNOWN_USER, f"{transfer.from_ubi} is not a user here"
        if signed.signer_key != payer.federation.record.user_key or not signed.verifies():
            return Refusal.BAD_SIGNATURE, f"not signed by {transfer.from_ubi}'s key"
        refusal = self._replay_refusal(signed) or hold_refusal(
            self._state,
            signed,
            self.asset(transfer.uai),
            self._daily_limits.get(transfer.uai),
            now_ms,
        )
        if refusal is not None:
            return refusal
        return entries_of(self._state, signed, now_ms)

    def _customer_offer(self, signed: SignedInstruction, kind: type, now_ms: int) -> _Decision:
        """An Offer or a Take, signed by one of our customers (offers.py)."""
        refusal = self._instruction_refusal(signed, kind)
        if refusal is not None:
            return refusal
        instruction = signed.instruction
        assert isinstance(instruction, Offer | Take)
        customer = nonce_account(instruction)
        user = self._state.users.get(customer)
        if user is None:
            return Refusal.UNKNOWN_USER, f"{customer} is not a user here"
        if signed.signer_key != user.federation.record.user_key or not signed.verifies():
            return Refusal.BAD_SIGNATURE, f"not signed by {customer}'s key"
        if isinstance(instruction, Offer) and instruction.offer_id in self._state.offers:
            return Refusal.DUPLICATE_OFFER, f"offer {instruction.offer_id.hex()} was received"
        decide = offer_refusal if isinstance(instruction, Offer) else take_refusal
        refusal = self._replay_refusal(signed) or decide(self._state, signed, self.asset, now_ms)
        if refusal is not None:
            return refusal
        return entries_of(self._state, signed, now_ms)

    def _offer_action(
        self, action: ActionOfferFill | ActionOfferUnfill | ActionOfferClose, now_ms: int
    ) -> _Decision:
        """What we do with an offer's reservation, signed by our key (offers.py)."""
        signed = action.instruction
        if isinstance(action, ActionOfferFill):
            refusal = self._validator_signed(signed, OfferFill) or fill_refusal(
                self._state, signed, now_ms
            )
        elif isinstance(action, ActionOfferUnfill):
            refusal = self._validator_signed(signed, OfferUnfill) or unfill_refusal(
                self._state, signed
            )
        else:
            refusal = self._validator_signed(signed, OfferClose) or close_refusal(
                self._state, signed, now_ms
            )
        if refusal is not None:
            return refusal
        return entries_of(self._state, signed, now_ms)

    def _validator_signed(self, signed: SignedInstruction, kind: type) -> _Refused | None:
        refusal = self._instruction_refusal(signed, kind)
        if refusal is not None:
            return refusal
        if signed.signer_key != self._key or not signed.verifies():
            return Refusal.BAD_SIGNATURE, f"a {signed.instruction.TYPE} is signed by our key"
        return self._replay_refusal(signed)

    def _end_hold(self, signed: SignedInstruction, kind: type, now_ms: int) -> _Decision:
        refusal = self._validator_signed(signed, kind) or hold_end_refusal(self._state, signed)
        if refusal is not None:
            return refusal
        return entries_of(self._state, signed, now_ms)

    def _credit(self, signed: SignedInstruction, now_ms: int) -> _Decision:
        refusal = self._validator_signed(signed, Credit)
        if refusal is not None:
            return refusal
        credit = signed.instruction
        assert isinstance(credit, Credit)
        refusal = credit_refusal(self._state, signed, self.asset(credit.uai))
        if refusal is not None:
            return refusal
        return entries_of(self._state, signed, now_ms)

    def _issue(self, signed: SignedInstruction, kind: type, now_ms: int) -> _Decision:
        refusal = self._instruction_refusal(signed, kind)
        if refusal is not None:
            return refusal
        instruction = signed.instruction
        assert isinstance(instruction, Deposit | Withdraw)
        if signed.signer_key != self._key or not signed.verifies():
            return Refusal.BAD_SIGNATURE, f"a {instruction.TYPE} is signed by our key, as issuer"
        refusal = self._replay_refusal(signed)
        if refusal is not None:
            return refusal
        user = self._state.users.get(instruction.ubi)
        if user is None:
            return Refusal.UNKNOWN_USER, f"{instruction.ubi} is not a user here"
        asset = self.asset(instruction.uai)
        if asset is None:
            return Refusal.UNKNOWN_ASSET, f"no asset {instruction.uai} here"
        if user.frozen:
            return Refusal.FROZEN, f"{instruction.ubi} is frozen"
        amount = instruction.amount
        if isinstance(instruction, Withdraw):
            balance = self._state.balance(instruction.ubi, instruction.uai)
            if balance < amount:
                return Refusal.INSUFFICIENT_FUNDS, f"balance {balance} < {amount}"
            return self._entries(signed, instruction.ubi, self._name, now_ms)
        if user.federation.record.kyc_level < asset.kyc_level:
            return Refusal.KYC, f"{instruction.ubi} is below KYC level {asset.kyc_level}"
        outstanding = self._state.outstanding(instruction.uai)
        if outstanding + amount > asset.supply_max:
            return Refusal.MAX_SUPPLY, f"{outstanding} outstanding + {amount} > {asset.supply_max}"
        return self._entries(signed, self._name, instruction.ubi, now_ms)

    def _entries(
        self, signed: SignedInstruction, debited: str, credited: str, now_ms: int
    ) -> EntriesAppended:
        instruction = signed.instruction
        assert isinstance(instruction, Transfer | Deposit | Withdraw)
        uai, amount = instruction.uai, instruction.amount
        return EntriesAppended(
            (
                self._body(debited, signed, uai, -amount, now_ms),
                self._body(credited, signed, uai, amount, now_ms),
            )
        )

    def _body(
        self, ubi: str, signed: SignedInstruction, uai: str, delta: int, now_ms: int
    ) -> EntryBody:
        balance = self._state.balance(ubi, uai) + delta
        return EntryBody(
            ubi,
            len(self._state.chains[ubi]),
            self._state.head_hashes[ubi],
            signed,
            ((uai, delta),),
            ((uai, balance),),
            now_ms,
        )

    def _register(self, action: ActionRegisterUser, now_ms: int) -> _Decision:
        signed = action.identity
        if not isinstance(signed, SignedIdentity) or not _well_formed(
            signed, signed_identity_from_wire
        ):
            return Refusal.BAD_ADDRESS, "not a well-formed signed identity"
        identity = signed.identity
        if not valid_address(identity.address) or domain_of(identity.address) != self._name:
            return Refusal.BAD_ADDRESS, f"{identity.address} is not an address of {self._name}"
        if not signed.verifies():
            return Refusal.BAD_SIGNATURE, "the identity is not signed by its key"
        kyc_level = action.kyc_level
        if type(kyc_level) is not int or not 0 <= kyc_level <= KYC_LEVEL_MAX:
            return Refusal.BAD_KYC_LEVEL, f"a KYC level is 0..{KYC_LEVEL_MAX}"
        problem = attributes_problem(action.attributes)
        if problem is not None:
            return Refusal.BAD_ATTRIBUTES, problem
        attributes = tuple(sorted(action.attributes.items()))
        existing = self._state.users.get(identity.address)
        if existing is not None:
            record = existing.federation.record
            if (record.user_key, record.kyc_level, existing.attributes) == (
                identity.user_key,
                kyc_level,
                attributes,
            ):
                return [NotifyRegistered(existing.federation)]
            return Refusal.USER_EXISTS, f"{identity.address} is registered otherwise"
        if len(self._state.users) >= USERS_PER_VALIDATOR_MAX:
            return Refusal.TOO_MANY_USERS, f"{USERS_PER_VALIDATOR_MAX} users"
        federation = FederationRecord(
            identity.address, identity.user_key, kyc_level, now_ms, self._key
        )
        return UserRegistered(signed, federation, attributes)

    def _define_asset(self, signed: SignedAssetDefinition, now_ms: int) -> _Decision:
        if not isinstance(signed, SignedAssetDefinition) or not _well_formed(
            signed, signed_asset_from_wire
        ):
            return Refusal.BAD_ASSET, "not a well-formed signed asset definition"
        uai = signed.definition.uai
        if issuer_of(uai) != self._name:
            return Refusal.NOT_ISSUER, f"{uai} is not an asset of {self._name}"
        if not signed.verifies(self._key):
            return Refusal.BAD_SIGNATURE, "the definition is not signed by our key"
        existing = self._state.assets.get(uai)
        if existing is not None:
            if existing.definition.definition == signed.definition:
                return [NotifyAssetDefined(existing.definition)]
            return Refusal.ASSET_EXISTS, f"{uai} is defined otherwise"
        if len(self._state.assets) >= ASSETS_PER_VALIDATOR_MAX:
            return Refusal.TOO_MANY_ASSETS, f"{ASSETS_PER_VALIDATOR_MAX} assets"
        return AssetDefined(signed, now_ms)

    def _freeze(self, action: ActionFreeze, now_ms: int) -> _Decision:
        user = self._state.users.get(action.address) if type(action.address) is str else None
        if user is None:
            return Refusal.UNKNOWN_USER, f"{action.address!r} is not a user here"
        if type(action.frozen) is not bool:
            return Refusal.BAD_INSTRUCTION, "frozen is true or false"
        if user.frozen == action.frozen:
            return [NotifyFrozen(action.address, action.frozen)]
        return UserFrozen(action.address, action.frozen, now_ms)
