"""Decisions on cross-bank payments in a validator's Books: holds and credits.

Rules:
- A customer pays a customer of another validator with a ``CrossTransfer`` it
  signs; the Books hold ``amount + max_fee`` on its chain (its balance drops
  by that much: held money is never spendable twice). Checks, in order:
  bad-instruction, bad-amount, unknown-user (payer), bad-signature (the
  payer's registered key), replay, unknown-payee (an address of ours is a
  plain transfer), unknown-asset, frozen (payer), insufficient-funds
  (balance < amount + max_fee), daily-limit (the amount counts as a
  transfer), duplicate-payment (the payer's payment id was held before).
- A hold ends exactly once, by a ``Settle`` (final debit of the amount and
  the fees paid; the rest returns) or a ``Release`` (all returns), both
  signed by our key: bad-instruction, bad-signature, replay, unknown-hold
  (no open hold of that payer, payment id, uai and held amount).
- A ``Credit`` signed by our key pays one of our customers what arrived over
  the mesh: bad-instruction, bad-amount, bad-signature, replay, unknown-user,
  unknown-asset, duplicate-credit (that payer's payment id). It is not
  refused for a frozen payee, KYC or max supply: the SNAP transfer is
  already accepted when it is credited, so those are checked before the
  invoice (``payee_problem``).
- Pure: decisions read the state and return a record or a refusal.
"""

from __future__ import annotations

from node.ledger.chain import EntryBody, chains_of, expected_deltas
from node.ledger.codec import domain_of
from node.ledger.events import Refusal
from node.ledger.records import EntriesAppended
from node.ledger.signed import (
    AssetDefinition,
    Credit,
    CrossTransfer,
    Release,
    Settle,
    SignedInstruction,
)
from node.ledger.state import BooksState

Refused = tuple[Refusal, str]


def entries_of(state: BooksState, signed: SignedInstruction, now_ms: int) -> EntriesAppended:
    """The entries ``signed`` appends, on every chain it touches, in order."""
    bodies = []
    for ubi in chains_of(signed.instruction):
        deltas = expected_deltas(ubi, signed)
        assert deltas is not None, ubi
        balances = tuple((uai, state.balance(ubi, uai) + delta) for uai, delta in deltas)
        chain_length = len(state.chains[ubi])
        bodies.append(
            EntryBody(ubi, chain_length, state.head_hashes[ubi], signed, deltas, balances, now_ms)
        )
    return EntriesAppended(tuple(bodies))


def hold_refusal(
    state: BooksState,
    signed: SignedInstruction,
    asset: AssetDefinition | None,
    daily_limit: int | None,
    now_ms: int,
) -> Refused | None:
    """Why the cross transfer ``signed`` (well formed, signature and nonce
    checked by the caller) may not be held, or None."""
    transfer = signed.instruction
    assert isinstance(transfer, CrossTransfer)
    if domain_of(transfer.to_address) == state.validator_name:
        return Refusal.UNKNOWN_PAYEE, f"{transfer.to_address} banks here: use a transfer"
    if asset is None:
        return Refusal.UNKNOWN_ASSET, f"no asset {transfer.uai} here"
    payer = state.users[transfer.from_ubi]
    if payer.frozen:
        return Refusal.FROZEN, f"{transfer.from_ubi} is frozen"
    balance = state.balance(transfer.from_ubi, transfer.uai)
    if balance < transfer.held:
        return Refusal.INSUFFICIENT_FUNDS, (
            f"balance {balance} < {transfer.amount} + max fee {transfer.max_fee}"
        )
    spent = state.spent_on_day(transfer.from_ubi, transfer.uai, now_ms)
    if daily_limit is not None and spent + transfer.amount > daily_limit:
        return Refusal.DAILY_LIMIT, f"{spent} spent today + {transfer.amount} > {daily_limit}"
    if (transfer.from_ubi, transfer.payment_id) in state.holds:
        return Refusal.DUPLICATE_PAYMENT, f"payment {transfer.payment_id!r} was held before"
    return None


def hold_end_refusal(state: BooksState, signed: SignedInstruction) -> Refused | None:
    """Why the settle or release ``signed`` (well formed, ours, nonce checked)
    does not end an open hold, or None."""
    end = signed.instruction
    assert isinstance(end, Settle | Release)
    hold = state.open_hold(end.ubi, end.payment_id)
    if hold is None or (hold.transfer.uai, hold.transfer.held) != (end.uai, end.held):
        return Refusal.UNKNOWN_HOLD, f"no open hold {end.payment_id!r} of {end.held} on {end.ubi}"
    return None


def credit_refusal(
    state: BooksState, signed: SignedInstruction, asset: AssetDefinition | None
) -> Refused | None:
    """Why the credit ``signed`` (well formed, ours, nonce checked) may not be made."""
    credit = signed.instruction
    assert isinstance(credit, Credit)
    if credit.ubi not in state.users:
        return Refusal.UNKNOWN_USER, f"{credit.ubi} is not a user here"
    if asset is None:
        return Refusal.UNKNOWN_ASSET, f"no asset {credit.uai} here"
    if (credit.payer, credit.payment_id) in state.credits:
        return Refusal.DUPLICATE_CREDIT, f"{credit.payer}'s payment {credit.payment_id!r}"
    return None
