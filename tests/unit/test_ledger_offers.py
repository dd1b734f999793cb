"""Offers in the Books: reservations, takes at the same validator, takes across
validators (holds), carved fills, closes; refusals change nothing; chains
verify offline; the log and snapshots rebuild the state exactly."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from node.ledger import (
    Books,
    EntryBody,
    OfferClose,
    ReceiveCrossTransfer,
    ReceiveOffer,
    ReceiveTake,
    ReceiveTransfer,
    SignedInstruction,
    decode_chain_file,
    encode_chain_file,
    pay_for,
    verify_chain,
    verify_chain_file,
)
from node.ledger.signed import CrossTransfer
from tests.unit.test_ledger_offers_support import (
    ALICE,
    BOB,
    CAROL,
    EUR,
    EXPIRES_MS,
    REMOTE,
    REMOTE_EUR,
    chains_verify,
    close_action,
    conserved,
    exchange_bank,
    fill_action,
    make,
    offer,
    offer_of,
    release_action,
    settle_action,
    take,
    take_of,
    unfill_action,
)
from tests.unit.test_ledger_support import (
    GOLD,
    NOW_MS,
    USD,
    VALIDATOR,
    VALIDATOR_KEY,
    Shell,
    appended,
    refusals,
    resign,
    sign_instruction,
    through_msgpack,
    user_key,
)


def placed(shell: Shell, **kwargs: Any) -> SignedInstruction:
    signed = offer(shell, **kwargs)
    appended(make(shell, signed))
    return signed


def refused(shell: Shell, event: Any, now_ms: int = NOW_MS) -> str:
    """Run ``event``; it must be refused and change nothing. Its reason."""
    before, log_length = shell.books.to_snapshot(), len(shell.log)
    reasons = refusals(shell.run(event, now_ms))
    assert len(reasons) == 1
    assert shell.books.to_snapshot() == before and len(shell.log) == log_length
    return reasons[0]


# --- reservations -------------------------------------------------------------------------


def test_an_offer_reserves_its_amount_and_max_fee_which_cannot_be_spent_twice() -> None:
    shell = exchange_bank(ALICE, BOB)
    signed = offer(shell, sell=6_000, max_fee=20)
    [entry] = appended(make(shell, signed))
    assert (entry.ubi, entry.body.deltas) == (ALICE, ((USD, -6_020),))
    books = shell.books
    view = books.offer(offer_of(signed).offer_id)
    assert view is not None
    assert (view.left, view.fee_left, view.status, view.signed) == (6_000, 20, "open", signed)
    assert books.balances(ALICE)[USD] == 3_980 and books.reserved(ALICE) == {USD: 6_020}
    assert books.totals()[USD].reserved == 6_020
    assert [v.offer_id for v in books.open_offers(ALICE)] == [view.offer_id]
    assert books.open_offers(BOB) == [] and len(books.open_offers()) == 1
    # the reserved money is neither transferable, nor reservable, nor holdable again
    transfer = ReceiveTransfer(shell.transfer_instruction(ALICE, BOB, 3_981))
    assert refused(shell, transfer) == "insufficient-funds"
    assert refused(shell, ReceiveOffer(offer(shell, sell=3_961))) == "insufficient-funds"
    nonce = shell.next_nonce(ALICE)
    cross = CrossTransfer(ALICE, REMOTE, USD, 3_981, 0, "p1", nonce, NOW_MS)
    assert refused(shell, ReceiveCrossTransfer(sign_instruction(user_key(ALICE), cross))) == (
        "insufficient-funds"
    )
    appended(shell.transfer(ALICE, BOB, 3_980))
    conserved(shell)
    chains_verify(shell)


def _offer_cases() -> list[tuple[str, Callable[[Shell], Any]]]:
    def malformed(shell: Shell) -> Any:
        signed = offer(shell)
        bad = dataclasses.replace(offer_of(signed), min_fill=2_000)
        return ReceiveOffer(sign_instruction(user_key(ALICE), bad))

    def zero(shell: Shell) -> Any:
        bad = dataclasses.replace(offer_of(offer(shell)), sell_amount=0)
        return ReceiveOffer(sign_instruction(user_key(ALICE), bad))

    def stranger(shell: Shell) -> Any:
        signed = offer(shell, maker="erin@bank-a.test")
        return ReceiveOffer(signed)

    def forged(shell: Shell) -> Any:
        return ReceiveOffer(sign_instruction(user_key(BOB), offer_of(offer(shell))))

    def replayed(shell: Shell) -> Any:
        first = placed(shell)
        again = dataclasses.replace(offer_of(first), sell_amount=10)
        return ReceiveOffer(
            sign_instruction(user_key(ALICE), dataclasses.replace(again, min_fill=1))
        )

    def duplicate(shell: Shell) -> Any:
        return ReceiveOffer(placed(shell))

    def frozen(shell: Shell) -> Any:
        shell.freeze(ALICE)
        return ReceiveOffer(offer(shell))

    def too_many(shell: Shell) -> Any:
        for _ in range(3):
            placed(shell, sell=10, min_fill=1, max_fee=0)
        return ReceiveOffer(offer(shell, sell=10, min_fill=1, max_fee=0))

    return [
        ("bad-instruction", lambda shell: ReceiveOffer(take(shell, placed(shell), 100))),
        ("bad-instruction", malformed),
        ("bad-amount", zero),
        ("unknown-user", stranger),
        ("bad-signature", forged),
        ("replay", replayed),
        ("duplicate-offer", duplicate),
        ("unknown-asset", lambda shell: ReceiveOffer(offer(shell, sell_uai=REMOTE_EUR))),
        ("frozen", frozen),
        ("expired", lambda shell: ReceiveOffer(offer(shell, expires_ms=NOW_MS))),
        ("insufficient-funds", lambda shell: ReceiveOffer(offer(shell, sell=9_990, max_fee=11))),
        ("offer-limit", too_many),
    ]


@pytest.mark.parametrize(("reason", "build"), _offer_cases())
def test_offer_refusals_change_nothing(
    reason: str, build: Callable[[Shell], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("node.ledger.offers.OFFERS_OPEN_PER_USER_MAX", 3)
    shell = exchange_bank(ALICE, BOB)
    assert refused(shell, build(shell)) == reason


# --- takes at the same validator --------------------------------------------------------


def test_a_take_here_moves_both_chains_in_one_record_and_the_reservation_drops() -> None:
    shell = exchange_bank(ALICE, BOB)
    signed = placed(shell, sell=1_000, buy=900)
    log_length = len(shell.log)
    entries = appended(make(shell, take(shell, signed, 333)))
    assert len(shell.log) == log_length + 1
    pay = pay_for(offer_of(signed), 333)
    assert pay == 300  # 333 * 0.9 = 299.7, rounded up
    assert [(e.ubi, e.body.deltas) for e in entries] == [
        (BOB, ((EUR, -pay), (USD, 333))),
        (ALICE, ((EUR, pay),)),
    ]
    books = shell.books
    assert books.balances(BOB) == {USD: 10_333, EUR: 10_000 - pay}
    assert books.balances(ALICE) == {USD: 10_000 - 1_020, EUR: 10_000 + pay}
    view = books.offer(offer_of(signed).offer_id)
    assert view is not None and (view.left, view.fee_left) == (667, 20)
    conserved(shell)
    chains_verify(shell)


def test_partial_takes_down_to_min_fill_and_a_smaller_last_one() -> None:
    shell = exchange_bank(ALICE, BOB, CAROL)
    signed = placed(shell, sell=1_000, buy=1_000, min_fill=300)
    offer_id = offer_of(signed).offer_id
    assert refused(shell, ReceiveTake(take(shell, signed, 299))) == "too-small"
    appended(make(shell, take(shell, signed, 300)))
    appended(make(shell, take(shell, signed, 500, CAROL)))
    assert refused(shell, ReceiveTake(take(shell, signed, 201))) == "too-much"
    appended(make(shell, take(shell, signed, 200)))  # all that is left
    view = shell.books.offer(offer_id)
    assert view is not None and (view.left, view.status) == (0, "open")
    assert refused(shell, ReceiveTake(take(shell, signed, 1))) == "too-much"
    assert refused(shell, close_action(shell, signed, 20, "expired")) == "not-expired"
    appended(shell.run(close_action(shell, signed, 20, "filled")))
    assert shell.books.balances(ALICE)[USD] == 10_000 - 1_000
    assert shell.books.open_offers() == []
    conserved(shell)
    chains_verify(shell)


def _take_cases() -> list[tuple[str, Callable[[Shell, SignedInstruction], Any]]]:
    def resigned(shell: Shell, signed: SignedInstruction, **changes: Any) -> Any:
        changed = dataclasses.replace(take_of(take(shell, signed, 100)), **changes)
        return ReceiveTake(sign_instruction(user_key(changed.taker), changed))

    def closed(shell: Shell, signed: SignedInstruction) -> Any:
        appended(shell.run(close_action(shell, signed, 1_020)))
        return ReceiveTake(take(shell, signed, 100))

    def replayed(shell: Shell, signed: SignedInstruction) -> Any:
        first = take(shell, signed, 100)
        appended(make(shell, first))
        return ReceiveTake(first)

    def frozen(who: str) -> Callable[[Shell, SignedInstruction], Any]:
        def build(shell: Shell, signed: SignedInstruction) -> Any:
            shell.freeze(who)
            return ReceiveTake(take(shell, signed, 100))

        return build

    def gold(shell: Shell, signed: SignedInstruction) -> Any:
        shell.register("gina@bank-a.test", kyc_level=2)
        shell.deposit("gina@bank-a.test", 500, GOLD)
        gold_offer = placed(
            shell, maker="gina@bank-a.test", sell=500, sell_uai=GOLD, buy_uai=USD, max_fee=0
        )
        return ReceiveTake(take(shell, gold_offer, 100))

    def foreign_buy(shell: Shell, signed: SignedInstruction) -> Any:
        other = placed(shell, buy_uai=REMOTE_EUR)
        return ReceiveTake(take(shell, other, 100))

    return [
        ("bad-instruction", lambda shell, signed: ReceiveTake(offer(shell))),
        ("bad-amount", lambda shell, signed: resigned(shell, signed, amount=0)),
        ("unknown-user", lambda shell, signed: resigned(shell, signed, taker="zed@bank-a.test")),
        (
            "bad-signature",
            lambda shell, signed: ReceiveTake(
                sign_instruction(user_key(CAROL), take(shell, signed, 100).instruction)
            ),
        ),
        ("replay", replayed),
        ("unknown-offer", lambda shell, signed: resigned(shell, signed, offer_id=bytes(32))),
        ("offer-closed", closed),
        ("wrong-offer", lambda shell, signed: resigned(shell, signed, maker=CAROL)),
        ("wrong-offer", lambda shell, signed: resigned(shell, signed, buy_uai=GOLD)),
        ("too-small", lambda shell, signed: ReceiveTake(take(shell, signed, 99))),
        ("too-much", lambda shell, signed: ReceiveTake(take(shell, signed, 1_001))),
        ("price", lambda shell, signed: ReceiveTake(take(shell, signed, 100, pay=89))),
        ("self-take", lambda shell, signed: ReceiveTake(take(shell, signed, 100, ALICE))),
        ("frozen", frozen(BOB)),
        ("frozen", frozen(ALICE)),
        ("kyc", gold),
        ("unknown-asset", foreign_buy),
        (
            "insufficient-funds",
            lambda shell, signed: ReceiveTake(take(shell, signed, 1_000, pay=10_001)),
        ),
    ]


@pytest.mark.parametrize(("reason", "build"), _take_cases())
def test_take_refusals_change_nothing(
    reason: str, build: Callable[[Shell, SignedInstruction], Any]
) -> None:
    shell = exchange_bank(ALICE, BOB, CAROL)
    signed = placed(shell)
    assert refused(shell, build(shell, signed)) == reason


def test_an_expired_offer_is_not_taken_and_closes_as_expired() -> None:
    shell = exchange_bank(ALICE, BOB)
    signed = placed(shell)
    assert refused(shell, ReceiveTake(take(shell, signed, 100)), EXPIRES_MS) == "expired"
    assert refused(shell, fill_action(shell, signed, 100, 0, "p1"), EXPIRES_MS) == "expired"
    assert refused(shell, close_action(shell, signed, 1_019, "expired"), EXPIRES_MS) == (
        "wrong-amount"
    )
    appended(shell.run(close_action(shell, signed, 1_020, "expired"), EXPIRES_MS))
    view = shell.books.offer(offer_of(signed).offer_id)
    assert view is not None and (view.status, view.reason, view.left) == ("closed", "expired", 0)
    assert shell.books.balances(ALICE)[USD] == 10_000
    assert refused(shell, close_action(shell, signed, 0)) == "offer-closed"
    conserved(shell)
    chains_verify(shell)


# --- fills carved out of a reservation (maker's validator, across validators) ---------


def test_a_carved_fill_settles_from_the_reservation() -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, max_fee=20)
    [entry] = appended(shell.run(fill_action(shell, signed, 400, 15, "take-1")))
    assert (entry.ubi, entry.body.deltas) == (ALICE, ())
    hold = shell.books.hold(ALICE, "take-1")
    assert hold is not None and (hold.status, hold.kind) == ("open", "offer-fill")
    terms = hold.transfer
    assert (terms.from_ubi, terms.to_address, terms.uai) == (ALICE, REMOTE, USD)
    assert (terms.amount, terms.max_fee, terms.held, terms.payment_id) == (400, 15, 415, "take-1")
    assert terms.offer_id == offer_of(signed).offer_id
    view = shell.books.offer(offer_of(signed).offer_id)
    assert view is not None and (view.left, view.fee_left) == (600, 5)
    assert shell.books.held(ALICE) == {USD: 415} and shell.books.reserved(ALICE) == {USD: 605}
    conserved(shell)
    appended(shell.run(settle_action(shell, ALICE, USD, "take-1", 415, 410)))
    assert shell.books.balances(ALICE)[USD] == 10_000 - 1_020 + 5
    assert shell.books.totals()[USD].paid_out == 410
    conserved(shell)
    chains_verify(shell)


def test_fill_refusals() -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, max_fee=20, min_fill=100)
    assert refused(shell, fill_action(shell, signed, 1_001, 0, "p")) == "too-much"
    assert refused(shell, fill_action(shell, signed, 99, 0, "p")) == "too-small"
    assert refused(shell, fill_action(shell, signed, 100, 21, "p")) == "too-much"
    other = offer(shell, sell=10, min_fill=1)
    assert refused(shell, fill_action(shell, other, 5, 0, "p")) == "unknown-offer"
    forged = fill_action(shell, signed, 100, 0, "p")
    action = dataclasses.replace(
        forged,
        instruction=sign_instruction(user_key(ALICE), forged.instruction.instruction),
    )
    assert refused(shell, action) == "bad-signature"
    appended(shell.run(fill_action(shell, signed, 100, 0, "p")))
    assert refused(shell, fill_action(shell, signed, 100, 0, "p")) == "duplicate-payment"
    shell.freeze(ALICE)
    assert refused(shell, fill_action(shell, signed, 100, 0, "q")) == "frozen"


def test_an_unfill_returns_the_carved_hold_to_the_reservation() -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, max_fee=20)
    offer_id = offer_of(signed).offer_id
    appended(shell.run(fill_action(shell, signed, 1_000, 20, "take-1")))
    assert refused(shell, fill_action(shell, signed, 100, 0, "take-2")) == "too-much"
    assert refused(shell, unfill_action(shell, signed, "take-1", 1_019)) == "unknown-hold"
    assert refused(shell, unfill_action(shell, signed, "take-9", 1_020)) == "unknown-hold"
    [entry] = appended(shell.run(unfill_action(shell, signed, "take-1", 1_020)))
    assert entry.body.deltas == ()
    hold = shell.books.hold(ALICE, "take-1")
    assert hold is not None and hold.status == "unfilled"
    view = shell.books.offer(offer_id)
    assert view is not None and (view.left, view.fee_left) == (1_000, 20)
    assert refused(shell, settle_action(shell, ALICE, USD, "take-1", 1_020, 1_000)) == (
        "unknown-hold"
    )
    # the same money is carved again for the next taker
    appended(shell.run(fill_action(shell, signed, 600, 10, "take-2")))
    conserved(shell)
    chains_verify(shell)
    restored = Books.from_snapshot(
        through_msgpack(shell.books.to_snapshot()), VALIDATOR, VALIDATOR_KEY.public_key, {}
    )
    assert restored.offer(offer_id) == shell.books.offer(offer_id)
    assert restored.totals() == shell.books.totals()


def test_once_the_offer_is_closed_a_carved_hold_is_released_to_the_balance() -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, max_fee=20)
    appended(shell.run(fill_action(shell, signed, 300, 10, "take-1")))
    assert refused(shell, close_action(shell, signed, 1_020)) == "wrong-amount"
    appended(shell.run(close_action(shell, signed, 710)))
    assert shell.books.balances(ALICE)[USD] == 10_000 - 310
    assert refused(shell, unfill_action(shell, signed, "take-1", 310)) == "offer-closed"
    appended(shell.run(release_action(shell, ALICE, USD, "take-1", 310)))
    assert shell.books.balances(ALICE)[USD] == 10_000
    hold = shell.books.hold(ALICE, "take-1")
    assert hold is not None and (hold.status, hold.reason) == ("released", "leg-failed")
    conserved(shell)
    chains_verify(shell)


# --- takes across validators, at the taker's validator -------------------------------


def test_a_take_of_a_remote_offer_holds_pay_and_max_fee_like_a_cross_transfer() -> None:
    shell = exchange_bank(BOB)
    remote = offer(shell, maker=REMOTE, sell_uai=REMOTE_EUR, buy_uai=USD, sell=500, buy=600)
    signed = take(shell, remote, 100, BOB, max_fee=7)
    made = take_of(signed)
    [entry] = appended(make(shell, signed))
    assert (entry.ubi, entry.body.deltas) == (BOB, ((USD, -127),))
    payment_id = made.take_id.hex()
    hold = shell.books.hold(BOB, payment_id)
    assert hold is not None and (hold.status, hold.kind) == ("open", "take")
    terms = hold.transfer
    assert (terms.from_ubi, terms.to_address, terms.uai) == (BOB, REMOTE, USD)
    assert (terms.amount, terms.max_fee, terms.held) == (120, 7, 127)
    assert shell.books.offer(offer_of(remote).offer_id) is None  # the maker's validator's
    appended(shell.run(settle_action(shell, BOB, USD, payment_id, 127, 124)))
    assert shell.books.balances(BOB)[USD] == 10_000 - 124
    conserved(shell)
    chains_verify(shell)


def test_a_remote_take_is_checked_on_the_takers_side_only() -> None:
    shell = exchange_bank(BOB)
    remote = offer(shell, maker=REMOTE, sell_uai=REMOTE_EUR, buy_uai=USD, sell=50_000, buy=10_000)
    assert refused(shell, ReceiveTake(take(shell, remote, 50_000, max_fee=1))) == (
        "insufficient-funds"
    )
    bogus = offer(shell, maker=REMOTE, sell_uai=EUR, buy_uai=USD)
    assert refused(shell, ReceiveTake(take(shell, bogus, 100))) == "wrong-offer"
    foreign = offer(shell, maker=REMOTE, sell_uai=REMOTE_EUR, buy_uai="bank-c.test/USD")
    assert refused(shell, ReceiveTake(take(shell, foreign, 100))) == "unknown-asset"
    shell.freeze(BOB)
    assert refused(shell, ReceiveTake(take(shell, remote, 100))) == "frozen"
    shell.freeze(BOB, False)
    signed = take(shell, remote, 100)
    appended(make(shell, signed))
    payment_id = take_of(signed).take_id.hex()
    appended(shell.run(release_action(shell, BOB, USD, payment_id, 20)))
    assert shell.books.balances(BOB)[USD] == 10_000


def test_the_makers_validator_checks_a_remote_take_before_accepting_it() -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, buy=900, min_fill=100)
    remote_take = take_of(take(shell, signed, 100, REMOTE))
    assert shell.books.take_problem(remote_take, NOW_MS) is None
    cheap = dataclasses.replace(remote_take, pay=89)
    problem = shell.books.take_problem(cheap, NOW_MS)
    assert problem is not None and problem[0] == "price"
    problem = shell.books.take_problem(remote_take, EXPIRES_MS)
    assert problem is not None and problem[0] == "expired"


# --- offline verification, replay, snapshots ---------------------------------------------


def busy_bank() -> Shell:
    shell = exchange_bank(ALICE, BOB, CAROL)
    first = placed(shell, sell=1_000, buy=900)
    appended(make(shell, take(shell, first, 300)))
    appended(shell.run(fill_action(shell, first, 200, 5, "t1")))
    appended(shell.run(unfill_action(shell, first, "t1", 205)))
    appended(shell.run(fill_action(shell, first, 700, 20, "t2")))
    appended(shell.run(settle_action(shell, ALICE, USD, "t2", 720, 705)))
    appended(shell.run(close_action(shell, first, 0, "filled")))
    second = placed(shell, maker=CAROL, sell=500, buy=500, sell_uai=EUR, buy_uai=USD)
    appended(make(shell, take(shell, second, 250, ALICE)))
    remote = offer(shell, maker=REMOTE, sell_uai=REMOTE_EUR, buy_uai=USD, sell=10, buy=10)
    appended(make(shell, take(shell, remote, 10, BOB, max_fee=1)))
    appended(shell.transfer(BOB, ALICE, 50))
    return shell


def test_chains_with_offers_verify_offline_and_a_flipped_byte_is_caught() -> None:
    shell = busy_bank()
    conserved(shell)
    chains_verify(shell)
    raw = encode_chain_file(shell.books.chain_file(ALICE))
    assert verify_chain_file(decode_chain_file(raw)).ok
    caught = 0
    for index in range(0, len(raw), 7):
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        try:
            report = verify_chain_file(decode_chain_file(bytes(flipped)))
        except Exception:
            caught += 1
            continue
        caught += not report.ok
    assert caught == len(range(0, len(raw), 7))


@pytest.mark.parametrize(
    ("returned", "reason"), [(1_000, "reservation-overdrawn"), (500, "reservation-mismatch")]
)
def test_an_offline_reader_catches_a_close_that_does_not_return_the_rest(
    returned: int, reason: str
) -> None:
    shell = exchange_bank(ALICE)
    signed = placed(shell, sell=1_000, max_fee=0)
    appended(shell.run(fill_action(shell, signed, 400, 0, "t1")))
    appended(shell.run(close_action(shell, signed, 600)))
    chain = shell.books.chain(ALICE)
    last = chain[-1].body
    close = last.instruction.instruction
    assert isinstance(close, OfferClose)
    greedy = sign_instruction(VALIDATOR_KEY, dataclasses.replace(close, returned=returned))
    body = EntryBody(
        ALICE,
        last.seq,
        last.prev_hash,
        greedy,
        ((USD, returned),),
        ((USD, last.balances[0][1] - 600 + returned),),
        last.appended_at_ms,
    )
    report = verify_chain([*chain[:-1], resign(body)], VALIDATOR_KEY.public_key)
    assert not report.ok and report.problem is not None
    assert report.problem.reason == reason


def test_the_log_and_a_snapshot_rebuild_the_offers_exactly() -> None:
    shell = busy_bank()
    rebuilt = shell.rebuilt()
    snapshot = through_msgpack(shell.books.to_snapshot())
    restored = Books.from_snapshot(snapshot, VALIDATOR, VALIDATOR_KEY.public_key, {})
    for books in (rebuilt, restored):
        assert books.to_snapshot() == shell.books.to_snapshot()
        assert books.totals() == shell.books.totals()
        assert books.open_offers() == shell.books.open_offers()
        for user in books.addresses():
            assert books.reserved(user) == shell.books.reserved(user)
            assert books.held(user) == shell.books.held(user)
        assert {(h.instruction, h.status, h.debit) for h in books.open_holds()} == {
            (h.instruction, h.status, h.debit) for h in shell.books.open_holds()
        }
    for offer_id in [v.offer_id for v in shell.books.open_offers()]:
        assert restored.offer(offer_id) == shell.books.offer(offer_id)
