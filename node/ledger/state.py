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
- Holds (cross-bank payments) are derived too: a hold opens with its cross
  transfer and ends once, settled or released; ``held`` sums the open ones
  per uai, and ``credits`` remembers every (payer, payment id) credited.
  Totals: issued, redeemed, paid out (settled debits) and paid in (credits);
  outstanding = issued - redeemed - paid_out + paid_in = the users' balances
  + held = minus the books' balance.
- ``clock_ms`` is the latest time any record carries; decisions use
  max(now_ms, clock_ms), so times along every chain never go backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.ledger.chain import ChainEntry, expected_deltas, home_chain, nonce_account
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
    OfferInstruction,
    Release,
    Settle,
    SignedFederationRecord,
    SignedIdentity,
    SignedInstruction,
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


@dataclass(slots=True)
class HoldState:
    """A payer's hold for a cross-bank payment: ``status`` open, settled or released."""

    instruction: SignedInstruction
    status: str = "open"
    debit: int = 0
    reason: str = ""

    @property
    def transfer(self) -> CrossTransfer:
        transfer = self.instruction.instruction
        assert isinstance(transfer, CrossTransfer)
        return transfer


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
        if isinstance(instruction, OfferInstruction):
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
        elif isinstance(instruction, CrossTransfer):
            key = (instruction.from_ubi, instruction.payment_id)
            assert key not in self.holds, f"hold {key} twice"
            self.holds[key] = HoldState(body.instruction)
            self.held[instruction.uai] = self.held.get(instruction.uai, 0) + instruction.held
        elif isinstance(instruction, Settle | Release):
            self._end_hold(instruction)

    def _end_hold(self, instruction: Settle | Release) -> None:
        hold = self.holds.get((instruction.ubi, instruction.payment_id))
        assert hold is not None and hold.status == "open", f"hold {instruction.payment_id}"
        assert (hold.transfer.uai, hold.transfer.held) == (instruction.uai, instruction.held)
        self.held[instruction.uai] -= instruction.held
        if isinstance(instruction, Settle):
            hold.status, hold.debit = "settled", instruction.debit
            self.totals[instruction.uai].paid_out += instruction.debit
        else:
            hold.status, hold.reason = "released", instruction.reason

    def open_hold(self, payer: str, payment_id: str) -> HoldState | None:
        hold = self.holds.get((payer, payment_id))
        return hold if hold is not None and hold.status == "open" else None

    def _count_spending(self, ubi: str, uai: str, amount: int, time_ms: int) -> None:
        day = time_ms // DAY_MS
        spending = self.spending.get((ubi, uai))
        if spending is None or spending.day != day:
            self.spending[(ubi, uai)] = DaySpending(day, amount)
        else:
            spending.amount += amount
