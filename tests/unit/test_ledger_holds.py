"""Holds for cross-bank payments on a payer's chain, settles, releases and
credits: the same money is never spendable twice, a hold ends exactly once,
release restores exactly, value is conserved with holds, and every chain
verifies offline (including the hold rules)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node.ledger import (
    ActionCredit,
    ActionRelease,
    ActionSettle,
    Books,
    Credit,
    CrossTransfer,
    EntryBody,
    Input,
    ReceiveCrossTransfer,
    Release,
    Settle,
    SignedInstruction,
    verify_chain,
)
from node.ledger.signed import Instruction
from node.ledger.state import HoldState
from tests.unit.test_ledger_support import (
    NOW_MS,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    appended,
    bank_with_users,
    refusals,
    resign,
    sign_instruction,
    through_msgpack,
    user_key,
)

ALICE, BOB, CAROL = "alice@bank-a.test", "bob@bank-a.test", "carol@bank-a.test"
PAYEE = "dave@bank-c.test"


def cross(
    shell: Shell, payer: str, amount: int, max_fee: int, payment_id: str, to: str = PAYEE
) -> SignedInstruction:
    transfer = CrossTransfer(
        payer, to, USD, amount, max_fee, payment_id, shell.next_nonce(payer), NOW_MS
    )
    return sign_instruction(user_key(payer), transfer)


def ours(shell: Shell, instruction: Instruction) -> SignedInstruction:
    return sign_instruction(shell.key, instruction)


def settle(shell: Shell, payer: str, payment_id: str, held: int, debit: int) -> Input:
    nonce = shell.next_nonce(VALIDATOR)
    return ActionSettle(ours(shell, Settle(payer, USD, payment_id, held, debit, nonce)))


def release(shell: Shell, payer: str, payment_id: str, held: int) -> Input:
    nonce = shell.next_nonce(VALIDATOR)
    return ActionRelease(ours(shell, Release(payer, USD, payment_id, held, "no-route", nonce)))


def credit(shell: Shell, payee: str, amount: int, payer: str, payment_id: str) -> Input:
    nonce = shell.next_nonce(VALIDATOR)
    return ActionCredit(ours(shell, Credit(payee, USD, amount, payer, payment_id, nonce)))


def verified(shell: Shell, ubi: str) -> tuple[dict[str, int], dict[str, int]]:
    books = shell.books
    entries = books.chain(ubi)
    user = books.user(ubi)
    report = verify_chain(
        entries,
        VALIDATOR_KEY.public_key,
        ubi=ubi,
        owner_key=None if user is None else user.user_key,
    )
    assert report.ok, report.problem
    return report.balances, report.held


def test_hold_reserves_and_settle_debits_amount_and_fee() -> None:
    shell = bank_with_users(ALICE, BOB, funds=10_000)
    [hold] = appended(shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 2_500, 100, "p1"))))
    assert (hold.ubi, hold.body.deltas) == (ALICE, ((USD, -2_600),))
    assert shell.books.balances(ALICE) == {USD: 7_400}
    assert shell.books.held(ALICE) == {USD: 2_600}
    # the held money is not spendable: only 7_400 is
    assert refusals(shell.transfer(ALICE, BOB, 7_401)) == ["insufficient-funds"]
    second = ReceiveCrossTransfer(cross(shell, ALICE, 7_000, 401, "p2"))
    assert refusals(shell.run(second)) == ["insufficient-funds"]
    payer_entry, books_entry = appended(shell.run(settle(shell, ALICE, "p1", 2_600, 2_530)))
    assert payer_entry.body.deltas == ((USD, 70),)
    assert (books_entry.ubi, books_entry.body.deltas) == (VALIDATOR, ((USD, 2_530),))
    assert shell.books.balances(ALICE) == {USD: 7_470}
    assert shell.books.held(ALICE) == {}
    totals = shell.books.totals()[USD]
    assert (totals.paid_out, totals.held, totals.outstanding) == (2_530, 0, 20_000 - 2_530)
    assert verified(shell, ALICE) == ({USD: 7_470}, {})
    assert verified(shell, VALIDATOR)[0] == {USD: -(20_000 - 2_530)}
    # a hold ends once
    assert refusals(shell.run(settle(shell, ALICE, "p1", 2_600, 2_530))) == ["unknown-hold"]
    assert refusals(shell.run(release(shell, ALICE, "p1", 2_600))) == ["unknown-hold"]
    shell.rebuilt()


def test_release_restores_exactly_and_a_settle_of_everything_moves_nothing() -> None:
    shell = bank_with_users(ALICE, funds=1_000)
    shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 900, 100, "p1")))
    assert shell.books.balances(ALICE) == {USD: 0}
    assert verified(shell, ALICE) == ({USD: 0}, {USD: 1_000})
    assert refusals(shell.run(release(shell, ALICE, "p1", 999))) == ["unknown-hold"]
    [entry] = appended(shell.run(release(shell, ALICE, "p1", 1_000)))
    assert entry.body.deltas == ((USD, 1_000),)
    assert shell.books.balances(ALICE) == {USD: 1_000}
    shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 900, 100, "p2")))
    payer_entry, _ = appended(shell.run(settle(shell, ALICE, "p2", 1_000, 1_000)))
    assert payer_entry.body.deltas == () and payer_entry.body.balances == ()
    assert verified(shell, ALICE) == ({USD: 0}, {})
    snapshot = through_msgpack(shell.books.to_snapshot())
    restored = Books.from_snapshot(snapshot, VALIDATOR, VALIDATOR_KEY.public_key, {})
    assert restored.totals() == shell.books.totals()
    assert restored.last_nonce(VALIDATOR) == shell.books.last_nonce(VALIDATOR)
    assert restored.hold(ALICE, "p2") == shell.books.hold(ALICE, "p2")
    shell.rebuilt()


def test_refusals_change_nothing() -> None:
    shell = bank_with_users(ALICE, BOB, funds=1_000)
    shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 100, 0, "p1")))
    before = shell.books.to_snapshot()
    cases: list[tuple[Input, str]] = [
        (ReceiveCrossTransfer(cross(shell, ALICE, 100, 0, "p1")), "duplicate-payment"),
        (ReceiveCrossTransfer(cross(shell, ALICE, 100, 0, "p3", to=BOB)), "unknown-payee"),
        (ReceiveCrossTransfer(cross(shell, ALICE, 901, 0, "p4")), "insufficient-funds"),
    ]
    forged = CrossTransfer(ALICE, PAYEE, USD, 1, 0, "p5", shell.next_nonce(ALICE), NOW_MS)
    cases.append((ReceiveCrossTransfer(sign_instruction(user_key(BOB), forged)), "bad-signature"))
    stale = CrossTransfer(ALICE, PAYEE, USD, 1, 0, "p6", 1, NOW_MS)
    cases.append((ReceiveCrossTransfer(sign_instruction(user_key(ALICE), stale)), "replay"))
    by_user = Settle(ALICE, USD, "p1", 100, 100, shell.next_nonce(VALIDATOR))
    cases.append((ActionSettle(sign_instruction(user_key(ALICE), by_user)), "bad-signature"))
    cases.append((ActionRelease(ours(shell, by_user)), "bad-instruction"))  # not a Release
    cases.append((credit(shell, "eve@bank-a.test", 5, "bank-c.test", "q"), "unknown-user"))
    for event, reason in cases:
        assert refusals(shell.run(event)) == [reason], reason
        assert shell.books.to_snapshot() == before
    appended(shell.run(credit(shell, BOB, 5, "bank-c.test", "q")))
    assert refusals(shell.run(credit(shell, BOB, 5, "bank-c.test", "q"))) == ["duplicate-credit"]
    assert shell.books.balances(BOB) == {USD: 1_005}
    assert shell.books.credited("bank-c.test", "q")
    assert shell.books.totals()[USD].paid_in == 5


def test_verify_names_a_settle_without_its_hold() -> None:
    shell = bank_with_users(ALICE, funds=1_000)
    shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 100, 0, "p1")))
    shell.run(settle(shell, ALICE, "p1", 100, 100))
    deposit, _hold, settled = shell.books.chain(ALICE)
    body = replace(settled.body, seq=1, prev_hash=deposit.entry_hash())
    report = verify_chain([deposit, resign(body)], VALIDATOR_KEY.public_key)
    assert report.problem is not None and report.problem.reason == "unknown-hold"
    duplicate = EntryBody(
        ALICE,
        3,
        settled.entry_hash(),
        _hold.body.instruction,
        ((USD, -100),),
        ((USD, 800),),
        NOW_MS,
    )
    chain = [*shell.books.chain(ALICE), resign(duplicate)]
    report = verify_chain(chain, VALIDATOR_KEY.public_key)
    assert report.problem is not None and report.problem.reason in (
        "duplicate-hold",
        "replayed-nonce",
    )


PAYMENT_IDS = [f"p{index}" for index in range(6)]


class HoldsMachine(RuleBasedStateMachine):
    """Random holds, settles, releases, credits and transfers: conservation
    with holds, never a negative balance, every chain verifies, replay exact."""

    @initialize()
    def start(self) -> None:
        self.shell = bank_with_users(ALICE, BOB, CAROL, funds=500)

    @rule(
        payer=st.sampled_from([ALICE, BOB]),
        amount=st.integers(1, 400),
        max_fee=st.integers(0, 50),
        payment_id=st.sampled_from(PAYMENT_IDS),
    )
    def hold(self, payer: str, amount: int, max_fee: int, payment_id: str) -> None:
        books = self.shell.books
        before = books.balances(payer).get(USD, 0)
        effects = self.shell.run(
            ReceiveCrossTransfer(cross(self.shell, payer, amount, max_fee, payment_id))
        )
        if books.hold(payer, payment_id) is not None and not refusals(effects):
            assert books.balances(payer)[USD] == before - amount - max_fee
        else:
            assert books.balances(payer).get(USD, 0) == before

    @rule(data=st.data(), settle_it=st.booleans())
    def end(self, data: st.DataObject, settle_it: bool) -> None:
        holds = self.shell.books.open_holds()
        if not holds:
            return
        hold = data.draw(st.sampled_from(holds))
        transfer = hold.transfer
        before = self.shell.books.balances(transfer.from_ubi)[USD]
        if settle_it:
            debit = data.draw(st.integers(transfer.amount, transfer.held))
            event = settle(self.shell, transfer.from_ubi, transfer.payment_id, transfer.held, debit)
            refund = transfer.held - debit
        else:
            event = release(self.shell, transfer.from_ubi, transfer.payment_id, transfer.held)
            refund = transfer.held
        appended(self.shell.run(event))
        assert self.shell.books.balances(transfer.from_ubi)[USD] == before + refund

    @rule(payer=st.sampled_from([ALICE, BOB, CAROL]), amount=st.integers(1, 600))
    def transfer(self, payer: str, amount: int) -> None:
        payee = CAROL if payer != CAROL else ALICE
        self.shell.transfer(payer, payee, amount)

    @rule(payee=st.sampled_from([ALICE, CAROL]), amount=st.integers(1, 300), n=st.integers(0, 3))
    def credit(self, payee: str, amount: int, n: int) -> None:
        self.shell.run(credit(self.shell, payee, amount, "bank-c.test", f"in{n}"))

    @rule(who=st.sampled_from([ALICE, BOB, CAROL]), amount=st.integers(1, 300))
    def withdraw(self, who: str, amount: int) -> None:
        self.shell.withdraw(who, amount)

    @invariant()
    def conserved(self) -> None:
        books = self.shell.books
        totals = books.totals()[USD]
        users = [ALICE, BOB, CAROL]
        balances = sum(books.balances(user).get(USD, 0) for user in users)
        held = sum(books.held(user).get(USD, 0) for user in users)
        assert held == totals.held
        assert totals.issued - totals.redeemed - totals.paid_out + totals.paid_in == balances + held
        assert books.balances(VALIDATOR).get(USD, 0) == -(balances + held)
        for user in users:
            balance, chain_held = verified(self.shell, user)
            assert balance.get(USD, 0) == books.balances(user).get(USD, 0) >= 0
            assert chain_held.get(USD, 0) == books.held(user).get(USD, 0)
        verified(self.shell, VALIDATOR)

    def teardown(self) -> None:
        if not hasattr(self, "shell"):
            return
        rebuilt = self.shell.rebuilt()
        assert rebuilt.totals() == self.shell.books.totals()
        snapshot = through_msgpack(self.shell.books.to_snapshot())
        restored = Books.from_snapshot(snapshot, VALIDATOR, VALIDATOR_KEY.public_key, {})
        assert restored.totals() == self.shell.books.totals()

        def key(hold: HoldState) -> tuple[str, str]:
            return hold.transfer.from_ubi, hold.transfer.payment_id

        assert sorted(restored.open_holds(), key=key) == sorted(
            self.shell.books.open_holds(), key=key
        )
        assert restored.last_nonce(VALIDATOR) == self.shell.books.last_nonce(VALIDATOR)


HoldsMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_holds_property = HoldsMachine.TestCase


def test_a_released_payment_gives_its_daily_limit_back() -> None:
    shell = Shell(daily_limits={USD: 1_000})
    shell.define(USD)
    for address in (ALICE, BOB):
        shell.register(address)
    shell.deposit(ALICE, 5_000)
    shell.run(ReceiveCrossTransfer(cross(shell, ALICE, 900, 10, "p1")))
    assert refusals(shell.transfer(ALICE, BOB, 200)) == ["daily-limit"]
    shell.run(release(shell, ALICE, "p1", 910))
    assert refusals(shell.transfer(ALICE, BOB, 1_000)) == []  # the whole day's limit again
    assert refusals(shell.transfer(ALICE, BOB, 1)) == ["daily-limit"]
    shell.rebuilt()  # replay and snapshot count it the same way
    assert refusals(shell.transfer(ALICE, BOB, 1)) == ["daily-limit"]
