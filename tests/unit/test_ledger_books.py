"""Rules of a validator's Books, one at a time: registration, assets, deposits,
withdrawals, transfers and each refusal, and the signing handshake."""

from __future__ import annotations

import dataclasses

import pytest

from node.ledger import (
    ActionDefineAsset,
    ActionDeposit,
    ActionRegisterUser,
    ActionWithdraw,
    Books,
    Deposit,
    NotifyAppended,
    NotifyAssetDefined,
    NotifyFrozen,
    NotifyRegistered,
    PersistRecord,
    ReceiveTransfer,
    SignedInstruction,
    SignRecord,
    Transfer,
    Withdraw,
    decode_federation,
    encode_signed,
    verify_chain,
)
from node.limits import AMOUNT_MAX, ATTRIBUTES_PER_USER_MAX
from node.signatures import NodeKey
from tests.unit.test_ledger_support import (
    DAY_MS,
    GOLD,
    NOW_MS,
    OTHER_VALIDATOR_KEY,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    appended,
    bank_with_users,
    refusals,
    sign_instruction,
    signed_asset,
    signed_identity,
    through_msgpack,
    user_key,
)

ALICE = "alice@bank-a.test"
BOB = "bob@bank-a.test"
CAROL = "carol@bank-a.test"


def unchanged(shell: Shell, *inputs_and_reasons: tuple[object, str]) -> None:
    """Each input is refused with its reason and changes nothing."""
    for input, reason in inputs_and_reasons:
        before = shell.books.to_snapshot()
        log_length = len(shell.log)
        assert refusals(shell.run(input)) == [reason]  # type: ignore[arg-type]
        assert shell.books.to_snapshot() == before
        assert len(shell.log) == log_length


# --- registration ----------------------------------------------------------------------


def test_a_registered_user_gets_a_federation_record_anyone_can_verify_offline() -> None:
    shell = Shell()
    effects = shell.register(ALICE, kyc_level=3, attributes={"country": "FR"})
    assert [type(e) for e in effects] == [PersistRecord, NotifyRegistered]
    federation = effects[1].federation  # type: ignore[union-attr]
    decoded = decode_federation(encode_signed(federation))
    assert decoded.verifies(VALIDATOR_KEY.public_key)
    assert not decoded.verifies(OTHER_VALIDATOR_KEY.public_key)
    record = decoded.record
    assert (record.address, record.user_key, record.kyc_level) == (
        ALICE,
        user_key(ALICE).public_key,
        3,
    )
    assert record.issued_at_ms == NOW_MS
    assert not hasattr(record, "balances")
    user = shell.books.user(ALICE)
    assert user is not None
    assert (user.kyc_level, user.attributes, user.frozen) == (3, {"country": "FR"}, False)
    assert shell.books.chain(ALICE) == []


def test_registering_again_identically_answers_the_same_and_records_nothing() -> None:
    shell = Shell()
    first = shell.register(ALICE)
    again = shell.register(ALICE)
    assert again == [first[1]]
    assert len(shell.log) == 1


def test_registration_refusals() -> None:
    shell = Shell()
    shell.register(ALICE)
    forged = dataclasses.replace(signed_identity(BOB), signature=bytes(64))
    other_key = signed_identity(ALICE, user_key(BOB))
    unchanged(
        shell,
        (ActionRegisterUser(forged, 1, {}), "bad-signature"),
        (ActionRegisterUser(signed_identity("bob@bank-b.test"), 1, {}), "bad-address"),
        (ActionRegisterUser(signed_identity(ALICE), 2, {}), "user-exists"),
        (ActionRegisterUser(other_key, 1, {}), "user-exists"),
        (ActionRegisterUser(signed_identity(BOB), 10, {}), "bad-kyc-level"),
        (ActionRegisterUser(signed_identity(BOB), True, {}), "bad-kyc-level"),
        (
            ActionRegisterUser(
                signed_identity(BOB), 1, {f"k{i}": "v" for i in range(ATTRIBUTES_PER_USER_MAX + 1)}
            ),
            "bad-attributes",
        ),
        (ActionRegisterUser(signed_identity(BOB), 1, {"": "v"}), "bad-attributes"),
    )


# --- assets ------------------------------------------------------------------------------


def test_asset_definitions_are_ours_signed_by_us_and_defined_once() -> None:
    shell = Shell()
    effects = shell.define(USD, kyc_level=1, max_supply=500)
    assert isinstance(effects[1], NotifyAssetDefined)
    asset = shell.books.asset(USD)
    assert asset is not None and (asset.kyc_level, asset.max_supply) == (1, 500)
    assert shell.define(USD, kyc_level=1, max_supply=500) == [effects[1]]
    unchanged(
        shell,
        (ActionDefineAsset(signed_asset(USD, max_supply=501)), "asset-exists"),
        (ActionDefineAsset(signed_asset("bank-b.test/USD")), "not-issuer"),
        (ActionDefineAsset(signed_asset(GOLD, key=OTHER_VALIDATOR_KEY)), "bad-signature"),
        (ActionDefineAsset(signed_asset(GOLD, decimals=19)), "bad-asset"),
    )


# --- deposits and withdrawals --------------------------------------------------------------


def test_a_deposit_credits_the_user_and_debits_the_issuers_books() -> None:
    shell = bank_with_users(ALICE)
    entries = appended(shell.deposit(ALICE, 500))
    assert [(e.ubi, e.body.deltas) for e in entries] == [
        (VALIDATOR, ((USD, -500),)),
        (ALICE, ((USD, 500),)),
    ]
    assert all(e.signed_by(VALIDATOR_KEY.public_key) for e in entries)
    assert shell.books.balances(ALICE) == {USD: 500}
    assert shell.books.balances(VALIDATOR) == {USD: -500}
    totals = shell.books.totals()[USD]
    assert (totals.issued, totals.redeemed, totals.outstanding) == (500, 0, 500)
    appended(shell.withdraw(ALICE, 200))
    totals = shell.books.totals()[USD]
    assert (totals.issued, totals.redeemed, totals.outstanding) == (500, 200, 300)
    assert shell.books.balances(VALIDATOR) == {USD: -300}
    for ubi in (VALIDATOR, ALICE):
        assert verify_chain(shell.books.chain(ubi), VALIDATOR_KEY.public_key).ok
    shell.rebuilt()


def issue(
    shell: Shell,
    kind: type[Deposit | Withdraw],
    address: str,
    amount: int,
    *,
    nonce: int | None = None,
    key: NodeKey = VALIDATOR_KEY,
    uai: str = USD,
) -> ActionDeposit | ActionWithdraw:
    """A deposit or withdrawal signed by ``key``, with the next nonce unless given."""
    nonce = shell.next_nonce(VALIDATOR) if nonce is None else nonce
    signed = sign_instruction(key, kind(address, uai, amount, nonce))
    return ActionDeposit(signed) if kind is Deposit else ActionWithdraw(signed)


def test_deposit_refusals() -> None:
    shell = bank_with_users(ALICE, BOB)
    shell.define("bank-a.test/CAP", max_supply=100)
    shell.deposit(ALICE, 10)
    used = shell.books.last_nonce(VALIDATOR)
    shell.freeze(BOB)
    unchanged(
        shell,
        (issue(shell, Deposit, ALICE, 5, key=user_key(ALICE)), "bad-signature"),
        (issue(shell, Deposit, ALICE, 5, nonce=used), "replay"),
        (issue(shell, Deposit, CAROL, 5), "unknown-user"),
        (issue(shell, Deposit, ALICE, 5, uai="bank-a.test/EUR"), "unknown-asset"),
        (issue(shell, Deposit, ALICE, 0), "bad-amount"),
        (issue(shell, Deposit, ALICE, AMOUNT_MAX + 1), "bad-amount"),
        (issue(shell, Deposit, ALICE, 5, uai=GOLD), "kyc"),
        (issue(shell, Deposit, BOB, 5), "frozen"),
        (issue(shell, Deposit, ALICE, 101, uai="bank-a.test/CAP"), "max-supply"),
        (ActionDeposit(shell.transfer_instruction(ALICE, BOB, 1)), "bad-instruction"),
    )
    appended(shell.deposit(ALICE, 100, uai="bank-a.test/CAP"))
    unchanged(shell, (issue(shell, Deposit, ALICE, 1, uai="bank-a.test/CAP"), "max-supply"))


def test_withdraw_refusals() -> None:
    shell = bank_with_users(ALICE, BOB, funds=50)
    shell.freeze(BOB)
    unchanged(
        shell,
        (issue(shell, Withdraw, ALICE, 51), "insufficient-funds"),
        (issue(shell, Withdraw, BOB, 1), "frozen"),
        (issue(shell, Withdraw, CAROL, 1), "unknown-user"),
        (issue(shell, Withdraw, ALICE, 1, key=OTHER_VALIDATOR_KEY), "bad-signature"),
    )
    appended(shell.withdraw(ALICE, 50))
    assert shell.books.balances(ALICE) == {USD: 0}


# --- transfers ------------------------------------------------------------------------------


def test_a_transfer_appends_to_both_chains_atomically_and_signed() -> None:
    shell = bank_with_users(ALICE, BOB, funds=1_000)
    effects = shell.transfer(ALICE, BOB, 300)
    assert [type(e) for e in effects] == [PersistRecord, NotifyAppended]
    debit, credit = appended(effects)
    assert (debit.ubi, debit.body.deltas, debit.body.balances) == (
        ALICE,
        ((USD, -300),),
        ((USD, 700),),
    )
    assert (credit.ubi, credit.body.deltas, credit.body.balances) == (
        BOB,
        ((USD, 300),),
        ((USD, 1_300),),
    )
    assert debit.body.instruction == credit.body.instruction
    assert credit.body.prev_hash == shell.books.chain(BOB)[1].body.prev_hash
    for ubi in (ALICE, BOB):
        report = verify_chain(shell.books.chain(ubi), VALIDATOR_KEY.public_key)
        assert report.ok and report.balances == shell.books.balances(ubi)
    shell.rebuilt()


def test_forged_user_signature_is_refused() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    genuine = shell.transfer_instruction(ALICE, BOB, 10)
    by_mallory = sign_instruction(user_key("mallory@bank-a.test"), genuine.instruction)
    claims_alice = dataclasses.replace(by_mallory, signer_key=user_key(ALICE).public_key)
    assert isinstance(genuine.instruction, Transfer)
    more = dataclasses.replace(genuine.instruction, amount=99)
    unchanged(
        shell,
        (ReceiveTransfer(by_mallory), "bad-signature"),
        (ReceiveTransfer(claims_alice), "bad-signature"),
        (ReceiveTransfer(dataclasses.replace(genuine, instruction=more)), "bad-signature"),
        (ReceiveTransfer(dataclasses.replace(genuine, signature=bytes(64))), "bad-signature"),
    )
    appended(shell.run(ReceiveTransfer(genuine)))


def test_a_replayed_transfer_is_refused() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    first = shell.transfer_instruction(ALICE, BOB, 10)
    appended(shell.run(ReceiveTransfer(first)))
    older = shell.transfer_instruction(ALICE, BOB, 10, nonce=first.instruction.nonce)
    unchanged(shell, (ReceiveTransfer(first), "replay"), (ReceiveTransfer(older), "replay"))
    later = shell.transfer_instruction(ALICE, BOB, 10, nonce=first.instruction.nonce + 5)
    appended(shell.run(ReceiveTransfer(later)))  # gaps are allowed
    assert shell.books.last_nonce(ALICE) == first.instruction.nonce + 5


def test_overspending_is_refused() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    unchanged(
        shell, (ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 101)), "insufficient-funds")
    )
    appended(shell.transfer(ALICE, BOB, 100))
    unchanged(
        shell, (ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 1)), "insufficient-funds")
    )


def test_a_payee_below_the_assets_kyc_level_is_refused() -> None:
    shell = bank_with_users(BOB)
    shell.register(ALICE, kyc_level=2)
    shell.register(CAROL, kyc_level=2)
    appended(shell.deposit(ALICE, 100, uai=GOLD))
    unchanged(shell, (ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 5, GOLD)), "kyc"))
    appended(shell.transfer(ALICE, CAROL, 5, GOLD))


def test_the_daily_limit_counts_per_utc_day_and_rolls_over_at_midnight() -> None:
    shell = Shell(daily_limits={USD: 100})
    shell.define(USD)
    shell.register(ALICE)
    shell.register(BOB)
    shell.deposit(ALICE, 1_000)
    midnight_ms = (NOW_MS // DAY_MS + 1) * DAY_MS
    just_before_ms = midnight_ms - 1
    appended(shell.transfer(ALICE, BOB, 60, now_ms=just_before_ms - 1000))
    appended(shell.transfer(ALICE, BOB, 40, now_ms=just_before_ms))
    assert shell.books.spent_today(ALICE, USD, just_before_ms) == 100
    one_more = ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 1))
    assert refusals(shell.run(one_more, just_before_ms)) == ["daily-limit"]
    assert shell.books.spent_today(ALICE, USD, midnight_ms) == 0
    appended(shell.run(one_more, midnight_ms))
    appended(shell.transfer(ALICE, BOB, 99, now_ms=midnight_ms + 5))
    assert refusals(shell.transfer(ALICE, BOB, 1, now_ms=midnight_ms + DAY_MS - 1)) == [
        "daily-limit"
    ]
    # Bob's receipts do not count against Bob; other assets have no limit here.
    appended(shell.transfer(BOB, ALICE, 100, now_ms=midnight_ms + 10))
    shell.rebuilt()


def test_the_daily_limit_counts_by_the_validators_clock_which_never_goes_back() -> None:
    shell = Shell(daily_limits={USD: 100})
    shell.define(USD)
    shell.register(ALICE)
    shell.register(BOB)
    shell.deposit(ALICE, 1_000)
    next_day_ms = (NOW_MS // DAY_MS + 1) * DAY_MS
    appended(shell.transfer(ALICE, BOB, 100, now_ms=next_day_ms))
    # A clock stepping back to yesterday does not reopen yesterday's allowance.
    assert refusals(shell.transfer(ALICE, BOB, 1, now_ms=next_day_ms - 10)) == ["daily-limit"]
    entry = appended(shell.transfer(BOB, ALICE, 1, now_ms=next_day_ms - 10))[0]
    assert entry.body.appended_at_ms == next_day_ms


def test_a_frozen_payer_or_payee_is_refused_until_unfrozen() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    assert shell.freeze(BOB)[1:] == [NotifyFrozen(BOB, True)]
    assert shell.freeze(BOB) == [NotifyFrozen(BOB, True)]  # already: nothing recorded
    unchanged(
        shell,
        (ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 1)), "frozen"),
        (ReceiveTransfer(shell.transfer_instruction(BOB, ALICE, 1)), "frozen"),
    )
    shell.freeze(BOB, False)
    appended(shell.transfer(ALICE, BOB, 1))
    assert refusals(shell.freeze(CAROL)) == ["unknown-user"]
    shell.rebuilt()


def test_other_transfer_refusals() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)

    def transfer(payer: str, payee: str, amount: int, uai: str = USD) -> ReceiveTransfer:
        key = user_key(payer)
        nonce = shell.books.last_nonce(payer) + 1
        return ReceiveTransfer(
            sign_instruction(key, Transfer(payer, payee, uai, amount, nonce, NOW_MS))
        )

    deposit = sign_instruction(VALIDATOR_KEY, Deposit(ALICE, USD, 1, 999))
    unchanged(
        shell,
        (transfer(ALICE, ALICE, 1), "self-transfer"),
        (transfer(ALICE, CAROL, 1), "unknown-payee"),
        (transfer(ALICE, "bob@bank-b.test", 1), "unknown-payee"),
        (transfer(CAROL, ALICE, 1), "unknown-user"),
        (transfer(ALICE, BOB, 1, "bank-a.test/EUR"), "unknown-asset"),
        (transfer(ALICE, BOB, 0), "bad-amount"),
        (transfer(ALICE, BOB, -5), "bad-amount"),
        (transfer(ALICE, BOB, AMOUNT_MAX + 1), "bad-amount"),
        (ReceiveTransfer(deposit), "bad-instruction"),
        (transfer(ALICE, "Bob@bank-a.test", 1), "bad-instruction"),
    )


# --- the signing handshake ------------------------------------------------------------------


def test_handle_never_signs_nor_applies_and_waits_for_apply_signed() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    books = shell.books
    before = books.to_snapshot()
    (sign,) = books.handle(ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 5)), NOW_MS)
    assert isinstance(sign, SignRecord)
    # One signature makes both entries of the transfer final.
    assert [item.kind for item in sign.to_sign] == [b"chain-record"]
    assert books.balances(ALICE) == {USD: 100}
    with pytest.raises(AssertionError):
        books.handle(ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 5)), NOW_MS)
    signatures = tuple(VALIDATOR_KEY.sign(i.kind, i.payload) for i in sign.to_sign)
    with pytest.raises(AssertionError):
        books.apply_signed(dataclasses.replace(sign.record), signatures)  # not the open one
    assert books.balances(ALICE) == {USD: 100}
    persist, notify = books.apply_signed(sign.record, signatures)
    assert isinstance(persist, PersistRecord) and isinstance(notify, NotifyAppended)
    assert books.balances(ALICE) == {USD: 95}
    assert before != books.to_snapshot()


def test_a_shell_signing_with_another_key_is_caught_on_its_first_record() -> None:
    books = Books(VALIDATOR, VALIDATOR_KEY.public_key, {})
    (sign,) = books.handle(ActionRegisterUser(signed_identity(ALICE), 1, {}), NOW_MS)
    assert isinstance(sign, SignRecord)
    wrong_key = tuple(OTHER_VALIDATOR_KEY.sign(i.kind, i.payload) for i in sign.to_sign)
    with pytest.raises(AssertionError):
        books.apply_signed(sign.record, wrong_key)
    assert books.user(ALICE) is None


def test_replay_needs_no_key_and_a_snapshot_plus_later_records_is_the_same() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    shell.transfer(ALICE, BOB, 30)
    middle = len(shell.log)
    snapshot = through_msgpack(shell.books.to_snapshot())  # as the log stores it
    shell.freeze(ALICE)
    shell.withdraw(BOB, 20)
    restored = Books.from_snapshot(
        snapshot, VALIDATOR, VALIDATOR_KEY.public_key, shell.daily_limits
    )
    for record in shell.log[middle:]:
        restored.apply(record)
    assert restored.to_snapshot() == shell.books.to_snapshot()
    assert restored.totals() == shell.books.totals()
    assert restored.last_nonce(ALICE) == shell.books.last_nonce(ALICE)
    shell.rebuilt()


def test_an_in_memory_instruction_of_the_wrong_shape_is_refused_not_crashed() -> None:
    shell = bank_with_users(ALICE, BOB, funds=100)
    good = shell.transfer_instruction(ALICE, BOB, 5)
    weird = dataclasses.replace(good.instruction, uai=42)  # type: ignore[arg-type]
    assert refusals(shell.run(ReceiveTransfer(dataclasses.replace(good, instruction=weird)))) == [
        "bad-instruction"
    ]
    not_signed = ReceiveTransfer("transfer please")  # type: ignore[arg-type]
    assert refusals(shell.run(not_signed)) == ["bad-instruction"]
    short_key = SignedInstruction(good.instruction, b"k", good.signature)
    assert refusals(shell.run(ReceiveTransfer(short_key))) == ["bad-instruction"]
