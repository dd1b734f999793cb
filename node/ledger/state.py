"""The state of a validator's Books, changed only by applying complete records.

Rules:
- ``apply`` is the only mutator. A record that does not fit the state (a seq
  out of turn, a broken link, a balance that does not add up, a user
  registered twice) is a bug or an undetected log corruption: an assertion
  stops the process.
- One chain per registered user and one for the validator's own books (its
  domain), created with the user (with the Books) and never removed.
- Everything else is derived from the chains, entry by entry, in ``absorb``:
  balances, head hashes, each nonce account's last nonce, the payer's
  transfers per uai on the UTC day of its latest transfer, and each asset's
  issued and redeemed totals. So a snapshot holds users, assets and chains,
  and restoring re-derives the rest.
- Holds (payments across validators) are derived too: a hold opens with a
  cross transfer, a take of another validator's offer, or a fill carved out
  of an offer's reservation, and ends once, settled, released or (a carved
  one) unfilled back into its reservation; ``held`` sums the open ones per
  uai, and ``credits`` remembers every (payer, payment id) credited.
- Reservations: an offer's opens with it; takes here and carved fills take
  from it, unfills give back, its close returns the rest; ``reserved`` sums
  the open ones per uai. Totals: issued, redeemed, paid out (settled debits)
  and paid in (credits); outstanding = issued - redeemed - paid_out +
  paid_in = the users' balances + held + reserved = minus the books' balance.
- ``clock_ms`` is the latest time any record carries; decisions use
  max(now_ms, clock_ms), so times along every chain never go backwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.ledger.chain import (
    ChainEntry,
    expected_deltas,
    home_chain,
    nonce_account,
    same_validator,
)
from node.ledger.codec import ZERO_HASH, Attributes, is_books
from node.ledger.records import (
    AssetDefined,
    EntriesAppended,
    Record,
    UserFrozen,
    UserRegistered,
)
from node.ledger.signed import (
    Credit,
    CrossTransfer,
    Deposit,
    Instruction,
    Offer,
    OfferClose,
    OfferFill,
    OfferInstruction,
    OfferUnfill,
    Release,
    Settle,
    SignedFederationRecord,
    SignedIdentity,
    SignedInstruction,
    Take,
    Transfer,
    Withdraw,
)
from node.limits import AMOUNT_MAX, DAY_MS


@dataclass(slots=True)
class UserState:
    identity: SignedIdentity
    federation: SignedFederationRecord
    attributes: Attributes
    frozen: bool = False


@dataclass(slots=True)
class DaySpending:
    """A payer's transfers of one uai on one UTC day (``day`` = time_ms // DAY_MS)."""

    day: int
    amount: int


@dataclass(slots=True)
class IssueTotals:
    issued: int = 0
    redeemed: int = 0
    paid_out: int = 0  # settled debits: left the bank over the mesh
    paid_in: int = 0  # credits: arrived over the mesh


@dataclass(frozen=True, slots=True)
class HoldTerms:
    """What a hold is for, whoever opened it: ``from_ubi`` (whose chain holds
    it) pays ``amount`` of ``uai`` to ``to_address``, with at most ``max_fee``
    in fees, as the payment ``payment_id``. ``offer_id``: the offer a take or
    a carved fill is of (None for a cross transfer)."""

    from_ubi: str
    to_address: str
    uai: str
    amount: int
    max_fee: int
    payment_id: str
    offer_id: bytes | None = None

    @property
    def held(self) -> int:
        return self.amount + self.max_fee


def hold_terms(instruction: Instruction) -> HoldTerms | None:
    """The hold an instruction opens on its payer's chain, or None: a cross
    transfer; a take across validators (the taker pays the maker ``pay``
    of ``buy_uai``); a fill carved out of a reservation (the maker pays the
    taker ``amount`` of ``sell_uai``, fees from the offer's max_fee)."""
    if isinstance(instruction, CrossTransfer):
        return HoldTerms(
            instruction.from_ubi,
            instruction.to_address,
            instruction.uai,
            instruction.amount,
            instruction.max_fee,
            instruction.payment_id,
        )
    if isinstance(instruction, Take) and not same_validator(instruction):
        return HoldTerms(
            instruction.taker,
            instruction.maker,
            instruction.buy_uai,
            instruction.pay,
            instruction.max_fee,
            instruction.payment_id,
            instruction.offer_id,
        )
    if isinstance(instruction, OfferFill):
        return HoldTerms(
            instruction.maker,
            instruction.taker,
            instruction.uai,
            instruction.amount,
            instruction.fee_budget,
            instruction.payment_id,
            instruction.offer_id,
        )
    return None


@dataclass(slots=True)
class HoldState:
    """A payer's hold for a payment across validators: ``status`` open,
    settled, released or unfilled (a carved hold back in its reservation).
    ``instruction`` opened it: a CrossTransfer, a Take or an OfferFill."""

    instruction: SignedInstruction
    status: str = "open"
    debit: int = 0
    reason: str = ""
    opened_ms: int = 0  # when its entry was appended (a released one gives its day back)

    @property
    def kind(self) -> str:
        """The type of the instruction that opened it: cross-transfer, take or offer-fill."""
        return self.instruction.instruction.TYPE

    @property
    def transfer(self) -> HoldTerms:
        terms = hold_terms(self.instruction.instruction)
        assert terms is not None
        return terms


@dataclass(slots=True)
class OfferState:
    """An offer's reservation: ``left`` of its sell amount and ``fee_left`` of
    its max fee, open until an OfferClose (``reason``)."""

    instruction: SignedInstruction
    left: int
    fee_left: int
    placed_ms: int  # when its entry was appended
    status: str = "open"
    reason: str = ""

    @property
    def offer(self) -> Offer:
        offer = self.instruction.instruction
        assert isinstance(offer, Offer)
        return offer


class BooksState:
    def __init__(self, validator_name: str) -> None:
        self.validator_name = validator_name
        self.users: dict[str, UserState] = {}
        self.assets: dict[str, AssetDefined] = {}
        self.chains: dict[str, list[ChainEntry]] = {validator_name: []}
        self.head_hashes: dict[str, bytes] = {validator_name: ZERO_HASH}
        self.balances: dict[str, dict[str, int]] = {validator_name: {}}
        self.nonces: dict[str, int] = {}
        self.spending: dict[tuple[str, str], DaySpending] = {}
        self.totals: dict[str, IssueTotals] = {}
        self.holds: dict[tuple[str, str], HoldState] = {}  # (payer, payment id)
        self.held: dict[str, int] = {}  # uai -> sum of open holds
        self.credits: set[tuple[str, str]] = set()  # (payer validator, payment id)
        self.offers: dict[bytes, OfferState] = {}  # offer id -> its reservation
        self.reserved: dict[str, int] = {}  # uai -> sum of open reservations
        self.open_offers: dict[str, int] = {}  # maker -> how many open offers
        self.open_offer_ids: dict[bytes, None] = {}  # the open ones (the clock walks them)
        self.clock_ms = 0

    # --- queries used by decisions -----------------------------------------------------

    def balance(self, ubi: str, uai: str) -> int:
        return self.balances[ubi].get(uai, 0)

    def last_nonce(self, account: str) -> int:
        return self.nonces.get(account, 0)

    def spent_on_day(self, ubi: str, uai: str, time_ms: int) -> int:
        spending = self.spending.get((ubi, uai))
        if spending is None or spending.day != time_ms // DAY_MS:
            return 0
        return spending.amount

    def outstanding(self, uai: str) -> int:
        totals = self.totals[uai]
        return totals.issued - totals.redeemed - totals.paid_out + totals.paid_in

    # --- changes -----------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        if isinstance(record, EntriesAppended):
            for entry in record.entries():
                problem = self.entry_misfit(entry)
                assert problem is None, f"entry {entry.ubi} {entry.seq}: {problem}"
                self.absorb(entry)
        elif isinstance(record, UserRegistered):
            self.add_user(UserState(record.identity, record.signed_federation(), record.attributes))
            self.clock_ms = max(self.clock_ms, record.federation.issued_at_ms)
        elif isinstance(record, AssetDefined):
            self.add_asset(record)
            self.clock_ms = max(self.clock_ms, record.defined_at_ms)
        else:
            assert isinstance(record, UserFrozen)
            assert record.address in self.users, record.address
            self.users[record.address].frozen = record.frozen
            self.clock_ms = max(self.clock_ms, record.at_ms)

    def add_user(self, user: UserState) -> None:
        address = user.federation.record.address
        assert address not in self.users and address not in self.chains, address
        self.users[address] = user
        self.chains[address] = []
        self.head_hashes[address] = ZERO_HASH
        self.balances[address] = {}

    def add_asset(self, record: AssetDefined) -> None:
        uai = record.definition.definition.uai
        assert uai not in self.assets, uai
        self.assets[uai] = record
        self.totals[uai] = IssueTotals()

    def entry_misfit(self, entry: ChainEntry) -> str | None:
        """Why ``entry`` cannot be the next entry of its chain, or None."""
        body = entry.body
        chain = self.chains.get(body.ubi)
        if chain is None:
            return "no such chain"
        if body.seq != len(chain) or body.prev_hash != self.head_hashes[body.ubi]:
            return "out of turn"
        if expected_deltas(body.ubi, body.instruction) != body.deltas:
            return "deltas differ from the instruction's"
        for (uai, delta), (_, balance) in zip(body.deltas, body.balances, strict=True):
            if uai not in self.assets:
                return f"unknown asset {uai}"
            if self.balance(body.ubi, uai) + delta != balance:
                return f"{uai} balance does not add up"
            low, high = (-AMOUNT_MAX, 0) if is_books(body.ubi) else (0, AMOUNT_MAX)
            if not low <= balance <= high:
                return f"{uai} balance {balance} out of range"
        return None

    def sign_entries(self, entries: Sequence[ChainEntry]) -> None:
        """Put signed entries in place of the same entries applied before their
        signature (``Books.apply_before_signing``)."""
        for entry in entries:
            chain = self.chains[entry.ubi]
            assert chain[entry.seq].body is entry.body, "the entry applied before signing"
            chain[entry.seq] = entry

    def absorb(self, entry: ChainEntry, *, count: bool = True) -> None:
        """Append a fitting entry and update everything derived from it.
        ``count=False`` (restoring a snapshot chain by chain) leaves the
        instruction's once-only effects to a later ``count``."""
        body = entry.body
        self.chains[body.ubi].append(entry)
        self.head_hashes[body.ubi] = entry.entry_hash()
        self.balances[body.ubi].update(body.balances)
        self.clock_ms = max(self.clock_ms, body.appended_at_ms)
        if count:
            self.count(entry)

    def count(self, entry: ChainEntry) -> None:
        """The once-only effects of an entry's instruction, at its home chain:
        nonces, spending, totals, holds and credits."""
        body = entry.body
        instruction = body.instruction.instruction
        if body.ubi != home_chain(instruction):
            return  # the other chain of the instruction records the rest
        account = nonce_account(instruction)
        self.nonces[account] = max(self.nonces.get(account, 0), instruction.nonce)
        terms = hold_terms(instruction)
        if terms is not None:
            self._open_hold(terms, body.instruction, body.appended_at_ms)
        if isinstance(instruction, OfferInstruction):
            self._count_offer(body.instruction, body.appended_at_ms)
            return
        totals = self.totals[instruction.uai]
        if isinstance(instruction, Transfer | CrossTransfer):
            self._count_spending(body.ubi, instruction.uai, instruction.amount, body.appended_at_ms)
        if isinstance(instruction, Deposit):
            totals.issued += instruction.amount
        elif isinstance(instruction, Withdraw):
            totals.redeemed += instruction.amount
        elif isinstance(instruction, Credit):
            totals.paid_in += instruction.amount
            self.credits.add((instruction.payer, instruction.payment_id))
        elif isinstance(instruction, Settle | Release):
            hold = self.end_hold(instruction)
            if isinstance(instruction, Release) and hold.kind == CrossTransfer.TYPE:
                self._give_back_spending(hold)

    def _open_hold(self, terms: HoldTerms, signed: SignedInstruction, time_ms: int) -> None:
        key = (terms.from_ubi, terms.payment_id)
        assert key not in self.holds, f"hold {key} twice"
        self.holds[key] = HoldState(signed, opened_ms=time_ms)
        self.held[terms.uai] = self.held.get(terms.uai, 0) + terms.held

    def end_hold(self, instruction: Settle | Release | OfferUnfill) -> HoldState:
        payer = instruction.maker if isinstance(instruction, OfferUnfill) else instruction.ubi
        hold = self.holds.get((payer, instruction.payment_id))
        assert hold is not None and hold.status == "open", f"hold {instruction.payment_id}"
        assert (hold.transfer.uai, hold.transfer.held) == (instruction.uai, instruction.held)
        self.held[instruction.uai] -= instruction.held
        if isinstance(instruction, OfferUnfill):
            hold.status = "unfilled"
        elif isinstance(instruction, Settle):
            hold.status, hold.debit = "settled", instruction.debit
            self.totals[instruction.uai].paid_out += instruction.debit
        else:
            hold.status, hold.reason = "released", instruction.reason
        return hold

    def _count_offer(self, signed: SignedInstruction, time_ms: int) -> None:
        """An offer's reservation: opened, taken from (a take here, a carved
        fill), given back (an unfill) or closed. Sums only, so a snapshot may
        count them in any order between the offer and its close."""
        instruction = signed.instruction
        if isinstance(instruction, Offer):
            assert instruction.offer_id not in self.offers, "an offer twice"
            self.offers[instruction.offer_id] = OfferState(
                signed, instruction.sell_amount, instruction.max_fee, time_ms
            )
            _add(self.reserved, instruction.sell_uai, instruction.reserved)
            _add(self.open_offers, instruction.maker, 1)
            self.open_offer_ids[instruction.offer_id] = None
        elif isinstance(instruction, Take) and same_validator(instruction):
            self._take_from(instruction.offer_id, instruction.amount, 0)
        elif isinstance(instruction, OfferFill):
            self._take_from(instruction.offer_id, instruction.amount, instruction.fee_budget)
        elif isinstance(instruction, OfferUnfill):
            terms = self.end_hold(instruction).transfer
            self._take_from(instruction.offer_id, -terms.amount, -terms.max_fee)
        elif isinstance(instruction, OfferClose):
            reservation = self.offers[instruction.offer_id]
            assert reservation.status == "open", "an offer closed twice"
            assert reservation.left + reservation.fee_left == instruction.returned
            reservation.left = reservation.fee_left = 0
            reservation.status, reservation.reason = "closed", instruction.reason
            _add(self.reserved, instruction.uai, -instruction.returned)
            _add(self.open_offers, instruction.maker, -1)
            del self.open_offer_ids[instruction.offer_id]

    def _take_from(self, offer_id: bytes, amount: int, fee: int) -> None:
        reservation = self.offers[offer_id]
        assert reservation.status == "open", "a closed offer taken from"
        reservation.left -= amount
        reservation.fee_left -= fee
        _add(self.reserved, reservation.offer.sell_uai, -(amount + fee))

    def open_hold(self, payer: str, payment_id: str) -> HoldState | None:
        hold = self.holds.get((payer, payment_id))
        return hold if hold is not None and hold.status == "open" else None

    def _give_back_spending(self, hold: HoldState) -> None:
        """A released payment was never paid: it no longer counts towards the
        payer's daily limit of the day it was held (if that day is still the one
        counted)."""
        terms = hold.transfer
        spending = self.spending.get((terms.from_ubi, terms.uai))
        if spending is not None and spending.day == hold.opened_ms // DAY_MS:
            spending.amount = max(0, spending.amount - terms.amount)

    def _count_spending(self, ubi: str, uai: str, amount: int, time_ms: int) -> None:
        day = time_ms // DAY_MS
        spending = self.spending.get((ubi, uai))
        if spending is None or spending.day != day:
            self.spending[(ubi, uai)] = DaySpending(day, amount)
        else:
            spending.amount += amount


def _add(sums: dict[str, int], key: str, amount: int) -> None:
    sums[key] = sums.get(key, 0) + amount
