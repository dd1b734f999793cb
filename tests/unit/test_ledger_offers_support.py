"""Helpers shared by the offer tests (no tests here): a bank with two assets
of its own, and one-line builders of the offer instructions."""

from __future__ import annotations

from node.ledger import (
    ActionOfferClose,
    ActionOfferFill,
    ActionOfferUnfill,
    ActionRelease,
    ActionSettle,
    Effect,
    Input,
    Offer,
    OfferClose,
    OfferFill,
    OfferUnfill,
    ReceiveOffer,
    ReceiveTake,
    Release,
    Settle,
    SignedInstruction,
    Take,
    pay_for,
    verify_chain_file,
)
from node.ledger.signed import Instruction
from tests.unit.test_ledger_support import (
    NOW_MS,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    bank_with_users,
    sign_instruction,
    user_key,
)

ALICE, BOB, CAROL = "alice@bank-a.test", "bob@bank-a.test", "carol@bank-a.test"
REMOTE = "dave@bank-b.test"  # a customer of another validator
EUR = "bank-a.test/EUR"  # our second asset
REMOTE_EUR = "bank-b.test/EUR"
EXPIRES_MS = NOW_MS + 3_600_000


def exchange_bank(*addresses: str, funds: int = 10_000) -> Shell:
    """USD, GOLD (KYC 2) and EUR defined; the users registered (KYC 1) with
    ``funds`` of USD and of EUR."""
    shell = bank_with_users(*addresses, funds=funds)
    shell.define(EUR)
    for address in addresses:
        shell.deposit(address, funds, EUR)
    return shell


def ours(shell: Shell, instruction: Instruction) -> SignedInstruction:
    return sign_instruction(shell.key, instruction)


def offer(
    shell: Shell,
    maker: str = ALICE,
    sell: int = 1_000,
    buy: int = 900,
    *,
    sell_uai: str = USD,
    buy_uai: str = EUR,
    min_fill: int = 100,
    max_fee: int = 20,
    expires_ms: int = EXPIRES_MS,
) -> SignedInstruction:
    instruction = Offer(
        maker,
        sell_uai,
        sell,
        buy_uai,
        buy,
        min_fill,
        max_fee,
        expires_ms,
        shell.next_nonce(maker),
        NOW_MS,
    )
    return sign_instruction(user_key(maker), instruction)


def offer_of(signed: SignedInstruction) -> Offer:
    instruction = signed.instruction
    assert isinstance(instruction, Offer)
    return instruction


def take_of(signed: SignedInstruction) -> Take:
    instruction = signed.instruction
    assert isinstance(instruction, Take)
    return instruction


def take(
    shell: Shell,
    signed_offer: SignedInstruction,
    amount: int,
    taker: str = BOB,
    *,
    pay: int | None = None,
    max_fee: int = 0,
) -> SignedInstruction:
    made = offer_of(signed_offer)
    instruction = Take(
        taker,
        made.offer_id,
        made.maker,
        made.sell_uai,
        made.buy_uai,
        amount,
        pay_for(made, amount) if pay is None else pay,
        max_fee,
        shell.next_nonce(taker),
        NOW_MS,
    )
    return sign_instruction(user_key(taker), instruction)


def make(shell: Shell, signed: SignedInstruction, now_ms: int = NOW_MS) -> list[Effect]:
    """Run a customer's offer or take."""
    is_offer = isinstance(signed.instruction, Offer)
    event = ReceiveOffer(signed) if is_offer else ReceiveTake(signed)
    return shell.run(event, now_ms)


def fill_action(
    shell: Shell,
    signed_offer: SignedInstruction,
    amount: int,
    fee_budget: int,
    payment_id: str,
    taker: str = REMOTE,
) -> ActionOfferFill:
    made = offer_of(signed_offer)
    fill = OfferFill(
        made.maker,
        made.offer_id,
        payment_id,
        made.sell_uai,
        amount,
        fee_budget,
        taker,
        shell.next_nonce(VALIDATOR),
    )
    return ActionOfferFill(ours(shell, fill))


def unfill_action(
    shell: Shell, signed_offer: SignedInstruction, payment_id: str, held: int
) -> Input:
    made = offer_of(signed_offer)
    nonce = shell.next_nonce(VALIDATOR)
    unfill = OfferUnfill(made.maker, made.offer_id, payment_id, made.sell_uai, held, nonce)
    return ActionOfferUnfill(ours(shell, unfill))


def close_action(
    shell: Shell, signed_offer: SignedInstruction, returned: int, reason: str = "cancelled"
) -> Input:
    made = offer_of(signed_offer)
    nonce = shell.next_nonce(VALIDATOR)
    close = OfferClose(made.maker, made.offer_id, made.sell_uai, returned, reason, nonce)
    return ActionOfferClose(ours(shell, close))


def settle_action(
    shell: Shell, payer: str, uai: str, payment_id: str, held: int, debit: int
) -> Input:
    nonce = shell.next_nonce(VALIDATOR)
    return ActionSettle(ours(shell, Settle(payer, uai, payment_id, held, debit, nonce)))


def release_action(shell: Shell, payer: str, uai: str, payment_id: str, held: int) -> Input:
    nonce = shell.next_nonce(VALIDATOR)
    release = Release(payer, uai, payment_id, held, "leg-failed", nonce)
    return ActionRelease(ours(shell, release))


def conserved(shell: Shell) -> None:
    """issued - redeemed - paid_out + paid_in = balances + held + reserved =
    minus the books' balance, per asset, and the books' sums agree with the users'."""
    books = shell.books
    users = books.addresses()
    for uai, totals in books.totals().items():
        balances = sum(books.balances(user).get(uai, 0) for user in users)
        held = sum(books.held(user).get(uai, 0) for user in users)
        reserved = sum(books.reserved(user).get(uai, 0) for user in users)
        assert (held, reserved) == (totals.held, totals.reserved), uai
        assert totals.outstanding == balances + held + reserved, uai
        assert -books.balances(VALIDATOR).get(uai, 0) == totals.outstanding, uai


def chains_verify(shell: Shell) -> None:
    """Every chain, as its chain file, verifies offline and agrees with the Books."""
    books = shell.books
    for ubi in [VALIDATOR, *books.addresses()]:
        report = verify_chain_file(books.chain_file(ubi), VALIDATOR_KEY.public_key)
        assert report.ok, report.problem
        assert report.balances == books.balances(ubi)
        if ubi != VALIDATOR:
            assert report.held == books.held(ubi)
            assert report.reserved == books.reserved(ubi)
