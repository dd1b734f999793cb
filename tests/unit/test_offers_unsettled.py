"""The taker's claim against a maker's validator that accepted a take and never settled."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from node.codec import DecodeError, pack
from node.crypto import write_key_file
from node.exchange_state import ExchangeState, exchange_record_from_wire
from node.ledger.signed import SignedInstruction, Take
from node.limits import (
    CLOCK_SKEW_MS_MAX,
    EXCHANGE_CLAIM_MARGIN_MS,
    EXCHANGE_LEG_A_FINAL_DELTA_MS,
    EXCHANGE_UNSETTLED_BYTES_MAX,
    PAYMENT_DEADLINE_MS_DEFAULT,
    PAYMENT_EXPIRY_MS_MAX,
)
from node.offers.evidence import evidence_type
from node.offers.take import (
    Acceptance,
    LegAHeld,
    SignedAcceptance,
    SignedLegAHeld,
    settlement_horizon_ms,
)
from node.offers.unsettled import (
    UnsettledEvidence,
    check_unsettled_evidence,
    decode_unsettled_evidence,
    encode_unsettled_evidence,
    settlement_window_end_ms,
    unsettled_claim,
    unsettled_problem,
)
from node.signatures import NodeKey, sha256
from tests.unit import test_sim_offers
from tests.unit.test_offers_support import (
    BUY,
    MAKER,
    MAKER_KEY,
    NOW_MS,
    SELL,
    TAKER,
    TAKER_KEY,
    key,
    make_offer,
    signed,
)

OFFER = make_offer()  # alice@bank-1.test sells 1_000 for 1_100
SIGNED_OFFER = signed(OFFER, MAKER_KEY)
TAKE = Take(TAKER, OFFER.offer_id, MAKER, SELL, BUY, 300, 330, 4, 1, NOW_MS)
SIGNED_TAKE = signed(TAKE, TAKER_KEY)
SECRET = b"s" * 32
M_KEY = key(1)
LEG_DEADLINE_MS = NOW_MS + 60_000
# The window, from the constants themselves: leg A's payment deadline, then its parts' lifetime.
WINDOW_END_MS = (
    LEG_DEADLINE_MS
    + PAYMENT_DEADLINE_MS_DEFAULT
    + EXCHANGE_LEG_A_FINAL_DELTA_MS
    + CLOCK_SKEW_MS_MAX
)
LATE_MS = WINDOW_END_MS + 1


def accepted(signer: NodeKey = M_KEY, **changes: object) -> SignedAcceptance:
    body = Acceptance(
        OFFER.offer_id, TAKE.take_id, "bank-1.test", M_KEY.public_key, TAKER, "bank-2.test",
        TAKE.amount, TAKE.pay, sha256(SECRET), 300, LEG_DEADLINE_MS, NOW_MS,
    )  # fmt: skip
    body = dataclasses.replace(body, **changes)  # type: ignore[arg-type]
    request = body.signing_request()
    return SignedAcceptance(body, signer.sign(request.kind, request.payload))


ACCEPTED = accepted()
LEG_A_EXPIRES_MS = LEG_DEADLINE_MS + 30_000  # well inside the acceptance's horizon


def held(signer: NodeKey = M_KEY, **changes: object) -> SignedLegAHeld:
    """M's receipt of the take's leg A, paid in full; leg B's latest expiry follows
    leg A's unless given."""
    body = LegAHeld(
        OFFER.offer_id, TAKE.take_id, "bank-1.test", M_KEY.public_key, sha256(SECRET),
        TAKE.pay, LEG_A_EXPIRES_MS, LEG_A_EXPIRES_MS - EXCHANGE_CLAIM_MARGIN_MS, NOW_MS + 1_000,
    )  # fmt: skip
    body = dataclasses.replace(body, **changes)  # type: ignore[arg-type]
    if "leg_b_latest_ms" not in changes:
        latest_ms = body.leg_a_expires_ms - EXCHANGE_CLAIM_MARGIN_MS
        body = dataclasses.replace(body, leg_b_latest_ms=latest_ms)
    request = body.signing_request()
    return SignedLegAHeld(body, signer.sign(request.kind, request.payload))


HELD = held()


def claim(
    offer: SignedInstruction = SIGNED_OFFER,
    take: SignedInstruction = SIGNED_TAKE,
    acceptance: SignedAcceptance = ACCEPTED,
    preimage: bytes | None = None,
    receipt: SignedLegAHeld = HELD,
) -> bytes:
    evidence = UnsettledEvidence(offer, take, acceptance, receipt, preimage)
    return encode_unsettled_evidence(evidence)


def test_a_claim_past_the_window_incriminates_the_makers_validator() -> None:
    verdict = check_unsettled_evidence(claim(), LATE_MS)
    assert verdict.valid and verdict.validator_key == M_KEY.public_key
    assert TAKE.take_id.hex() in verdict.detail and "300 for 330" in verdict.detail
    assert "confirmed leg A held (330)" in verdict.detail
    assert evidence_type(claim()) == "exchange-unsettled"


def test_before_the_window_has_passed_it_is_not_a_proof() -> None:
    evidence = decode_unsettled_evidence(claim())
    assert settlement_horizon_ms(ACCEPTED.acceptance) + CLOCK_SKEW_MS_MAX == WINDOW_END_MS
    assert settlement_window_end_ms(evidence) == WINDOW_END_MS
    for now_ms in (NOW_MS, LEG_DEADLINE_MS, WINDOW_END_MS - CLOCK_SKEW_MS_MAX, WINDOW_END_MS):
        valid, validator_key, detail = check_unsettled_evidence(claim(), now_ms)
        assert (valid, validator_key) == (False, None) and detail.startswith("too-early")
    assert check_unsettled_evidence(claim(), WINDOW_END_MS + 1).valid


def test_a_leg_a_that_outlives_the_acceptances_horizon_moves_the_window() -> None:
    """M may claim leg A (with a late reveal) until the receipt's expiry: the claim
    waits for it, within what a payee accepts (PAYMENT_EXPIRY_MS_MAX after the
    receipt; later is refused above)."""
    late_expiry_ms = WINDOW_END_MS + 60_000
    raw = claim(receipt=held(leg_a_expires_ms=late_expiry_ms))
    assert settlement_window_end_ms(decode_unsettled_evidence(raw)) == (
        late_expiry_ms + CLOCK_SKEW_MS_MAX
    )
    assert check_unsettled_evidence(raw, LATE_MS).detail.startswith("too-early")
    assert check_unsettled_evidence(raw, late_expiry_ms + CLOCK_SKEW_MS_MAX + 1).valid


def test_the_secret_answers_the_claim_and_a_wrong_one_does_not() -> None:
    answered = check_unsettled_evidence(claim(preimage=SECRET), LATE_MS)
    assert answered == (False, None, "answered: settled: the preimage answers it")
    wrong = check_unsettled_evidence(claim(preimage=b"x" * 32), LATE_MS)
    assert wrong.valid and wrong.validator_key == M_KEY.public_key
    assert "does not hash to h" in wrong.detail


def _signed_take(**changes: object) -> SignedInstruction:
    return signed(dataclasses.replace(TAKE, **changes), TAKER_KEY)  # type: ignore[arg-type]


OTHER_OFFER = make_offer(nonce=2)
OTHER_KEY = key(3).public_key
TAKE_OF_OTHER_OFFER = _signed_take(offer_id=OTHER_OFFER.offer_id)


@pytest.mark.parametrize(
    "documents, reason",
    [
        ({"acceptance": accepted(take_id=sha256(b"another take"))}, "other-take"),
        ({"acceptance": accepted(taker="carol@bank-2.test")}, "other-take"),
        ({"acceptance": accepted(amount=301, filled=301)}, "other-amounts"),
        ({"acceptance": accepted(pay=329)}, "other-amounts"),
        ({"acceptance": accepted(offer_id=OTHER_OFFER.offer_id)}, "other-offer"),
        # Signed by another key than the one it names.
        ({"acceptance": accepted(signer=key(2))}, "bad-acceptance-signature"),
        ({"take": dataclasses.replace(SIGNED_TAKE, signature=b"f" * 64)}, "bad-take-signature"),
        ({"take": dataclasses.replace(SIGNED_TAKE, signer_key=OTHER_KEY)}, "bad-take-signature"),
        ({"offer": dataclasses.replace(SIGNED_OFFER, signature=b"f" * 64)}, "bad-offer-signature"),
        # The acceptance's validator is not the maker's (bank-1.test): not M's promise.
        ({"acceptance": accepted(validator="bank-3.test")}, "other-validator"),
        # A deadline other than the one an honest M gives would move the window.
        ({"acceptance": accepted(leg_deadline_ms=LEG_DEADLINE_MS + 10**11)},
         "bad-acceptance-times"),
        (
            {
                "offer": signed(make_offer(maker="carol@bank-3.test"), MAKER_KEY),
                "take": _signed_take(offer_id=make_offer(maker="carol@bank-3.test").offer_id),
            },
            "other-maker",
        ),
        ({"take": TAKE_OF_OTHER_OFFER}, "take-of-other-offer"),
        ({"offer": signed(OTHER_OFFER, MAKER_KEY)}, "take-of-other-offer"),
        # The receipt of leg A: M's, of this take, condition and offer, for all of pay.
        ({"receipt": held(signer=key(2))}, "bad-receipt-signature"),
        ({"receipt": held(signer=key(2), validator_key=key(2).public_key)},
         "bad-receipt-signature"),
        ({"receipt": held(take_id=sha256(b"another take"))}, "other-receipt"),
        ({"receipt": held(condition=sha256(b"another secret"))}, "other-receipt"),
        ({"receipt": held(offer_id=OTHER_OFFER.offer_id)}, "other-receipt"),
        ({"receipt": held(validator="bank-3.test")}, "other-receipt"),
        ({"receipt": held(held=TAKE.pay - 1)}, "underpaid"),
        # Times an honest M cannot sign: they would put the window off at will.
        ({"receipt": held(leg_a_expires_ms=NOW_MS + 1_000 + PAYMENT_EXPIRY_MS_MAX + 1)},
         "bad-receipt-times"),
        ({"receipt": held(leg_a_expires_ms=2**50)}, "bad-receipt-times"),
        ({"receipt": held(leg_a_expires_ms=NOW_MS + 1_000)}, "bad-receipt-times"),
        ({"receipt": held(leg_b_latest_ms=LEG_A_EXPIRES_MS)}, "bad-receipt-times"),
        ({"receipt": held(issued_ms=NOW_MS - 1)}, "bad-receipt-times"),
        ({"receipt": held(issued_ms=WINDOW_END_MS)}, "bad-receipt-times"),
    ],
)  # fmt: skip
def test_documents_that_do_not_bind_m_are_refused(documents: dict[str, Any], reason: str) -> None:
    raw = claim(**documents)
    assert unsettled_problem(decode_unsettled_evidence(raw), LATE_MS) == reason
    verdict = check_unsettled_evidence(raw, LATE_MS)
    assert verdict == (False, None, reason)


def test_the_other_validator_case_is_an_offer_made_elsewhere() -> None:
    """An offer of bank-3's customer, accepted by bank-1's key: bank-1 promised nothing."""
    offer = make_offer(maker="carol@bank-3.test")
    take = dataclasses.replace(TAKE, offer_id=offer.offer_id, maker="carol@bank-3.test")
    acceptance = accepted(offer_id=offer.offer_id, take_id=take.take_id)
    raw = claim(signed(offer, MAKER_KEY), signed(take, TAKER_KEY), acceptance)
    assert check_unsettled_evidence(raw, LATE_MS) == (False, None, "other-validator")


def test_malformed_files_are_refused() -> None:
    good = claim()
    wire = decode_unsettled_evidence(good).to_wire()
    for raw in (
        good + b"\x00",
        b"",
        b"\xc1",
        pack({**wire, "type": "offer-overfill"}),
        pack({name: value for name, value in wire.items() if name != "preimage"}),
        # A claim without M's receipt of leg A is not a claim.
        pack({name: value for name, value in wire.items() if name != "held"}),
        pack({**wire, "held": None}),
        pack({**wire, "held": ACCEPTED.to_wire()}),  # an acceptance where the receipt goes
        pack({**wire, "extra": 1}),
        pack({**wire, "preimage": b"x" * 31}),
        pack({**wire, "preimage": False}),
        pack({**wire, "take": SIGNED_OFFER.to_wire()}),  # an offer where the take goes
        pack({**wire, "offer": SIGNED_TAKE.to_wire()}),
        pack({**wire, "acceptance": ACCEPTED.to_wire()[:1]}),
        pack(dict(reversed(wire.items()))),  # not canonical
        pack({**wire, "padding": b"p" * EXCHANGE_UNSETTLED_BYTES_MAX}),
    ):
        verdict = check_unsettled_evidence(raw, LATE_MS)
        assert not verdict.valid and verdict.validator_key is None
        assert verdict.detail.startswith("malformed"), verdict.detail


def test_no_flipped_byte_makes_a_proof_against_another_key() -> None:
    """Every single-byte change of a valid claim: no exception, and never a proof
    against anyone but the key that signed the acceptance."""
    good = claim()
    valid_keys = set()
    for index in range(len(good)):
        for mask in (0x01, 0x80, 0xFF):
            raw = good[:index] + bytes([good[index] ^ mask]) + good[index + 1 :]
            verdict = check_unsettled_evidence(raw, LATE_MS)
            if verdict.valid:
                valid_keys.add(verdict.validator_key)
    assert valid_keys <= {M_KEY.public_key}


def test_a_claim_is_built_from_the_four_packed_documents() -> None:
    documents = (SIGNED_OFFER, SIGNED_TAKE, ACCEPTED, HELD)
    raw = unsettled_claim(*(pack(document.to_wire()) for document in documents))
    assert raw == claim()
    with pytest.raises(DecodeError):
        unsettled_claim(pack(SIGNED_TAKE.to_wire()), pack(SIGNED_TAKE.to_wire()), b"", b"")
    with pytest.raises(DecodeError):
        parts = (SIGNED_OFFER, SIGNED_TAKE, ACCEPTED, ACCEPTED)
        unsettled_claim(*(pack(document.to_wire()) for document in parts))


# --- the taker's validator keeps the signed offer with the take ----------------------------


def _take_record(**extra: object) -> dict[str, Any]:
    record = {
        "k": "take",
        "i": SIGNED_TAKE.to_wire(),
        "preimage": SECRET,
        "maker_validator": "bank-1.test",
        "path": ["bank-2.test", "bank-1.test"],
        "ms": NOW_MS,
    }
    return {**record, **extra}


def test_take_records_with_and_without_the_offer_replay() -> None:
    state = ExchangeState()
    state.apply(exchange_record_from_wire(_take_record()))  # a record from before claims
    assert state.exchanges[TAKE.take_id].offer is None
    state = ExchangeState()
    state.apply(exchange_record_from_wire(_take_record(offer=SIGNED_OFFER.to_wire())))
    assert state.exchanges[TAKE.take_id].offer == SIGNED_OFFER
    with pytest.raises(DecodeError):
        exchange_record_from_wire(_take_record(offer=SIGNED_TAKE.to_wire()))


def test_receipts_and_accept_paths_replay() -> None:
    state = ExchangeState()
    state.apply(exchange_record_from_wire(_take_record()))
    receipt = pack(HELD.to_wire())
    state.apply(
        exchange_record_from_wire({"k": "held", "take_id": TAKE.take_id, "receipt": receipt})
    )
    assert state.exchanges[TAKE.take_id].held == receipt
    assert state.open_exchanges() == [state.exchanges[TAKE.take_id]]
    end = {"k": "end", "take_id": TAKE.take_id, "state": "failed", "reason": "timeout"}
    state.apply(exchange_record_from_wire(end))
    assert state.open_exchanges() == [] and state.exchanges[TAKE.take_id].state == "failed"
    accept = {"k": "accept", "i": SIGNED_TAKE.to_wire(), "acceptance": b"a", "ms": NOW_MS}
    maker = ExchangeState()
    maker.apply(exchange_record_from_wire(accept))  # a record from before receipts
    assert maker.exchanges[TAKE.take_id].path == ()
    maker = ExchangeState()
    maker.apply(exchange_record_from_wire({**accept, "path": ["bank-2.test", "bank-1.test"]}))
    assert maker.exchanges[TAKE.take_id].path == ("bank-2.test", "bank-1.test")
    for bad in (
        {"k": "held", "take_id": TAKE.take_id, "receipt": None},
        {"k": "held", "take_id": b"x", "receipt": receipt},
        {"k": "held", "take_id": TAKE.take_id},
        {**accept, "path": ["bank-2.test"]},
        {**accept, "path": "bank-2.test"},
    ):
        with pytest.raises(DecodeError):
            exchange_record_from_wire(bad)


# The six-node ring that made, cancelled and took offers (tests/unit/test_sim_offers.py).
traded = test_sim_offers.traded


def test_a_real_takers_status_makes_a_claim_that_the_secret_answers(traded: Any) -> None:
    from node.cli_offers import claim_of_status

    statuses = []
    for node in traded.nodes:
        for exchange in node.engine.state.exchange.exchanges.values():
            if exchange.side == "taker" and exchange.acceptance is not None:
                statuses.append((node, exchange))
    assert statuses
    for node in traded.nodes:  # the index of open exchanges is what their states say
        exchanges = node.engine.state.exchange
        is_open = [e for e in exchanges.exchanges.values() if e.state == "open"]
        assert exchanges.open_exchanges() == is_open
    # Every exchange that settled got M's receipt of leg A to T, the same bytes
    # M logged before it paid leg B.
    settled = [(node, exchange) for node, exchange in statuses if exchange.state == "settled"]
    assert settled
    for _, exchange in settled:
        maker = traded.nodes[traded.names.index(exchange.maker_validator)]
        assert exchange.held is not None
        made = maker.engine.state.exchange.exchanges[exchange.terms.take_id]
        assert made.side == "maker" and made.held == exchange.held
    node, exchange = settled[0]
    status = node.engine.exchanges.status(exchange.terms.taker, exchange.terms.take_id)
    assert status["offer"] is not None and status["take"] is not None
    names = ("offer", "take", "acceptance", "held")
    raw = unsettled_claim(*(bytes.fromhex(status[name]) for name in names))
    evidence = decode_unsettled_evidence(raw)
    assert evidence.take == exchange.take
    late_ms = settlement_window_end_ms(evidence) + 1
    verdict = check_unsettled_evidence(raw, late_ms)
    maker_validator = traded.nodes[traded.names.index(exchange.maker_validator)]
    assert verdict.valid and verdict.validator_key == maker_validator.engine.key.public_key
    answered = dataclasses.replace(evidence, preimage=exchange.preimage)
    assert unsettled_problem(answered, late_ms) == "answered"
    if status["state"] == "settled":
        with pytest.raises(Exception, match="is settled"):
            claim_of_status(status)


# --- the command line -----------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    from node.cli import main

    return main(argv)


def test_cli_evidence_check_of_a_claim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proof = tmp_path / "unsettled.evidence"
    proof.write_bytes(claim())
    assert _main(["evidence", "check", str(proof), "--now", str(LATE_MS), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reason"] == "exchange-unsettled" and shown["valid"]
    assert shown["standing"] == "claim" and "not a proof of fraud" in shown["caveat"]
    assert shown["incriminates"] == M_KEY.public_key.hex()
    assert _main(["evidence", "check", str(proof), "--json"]) == 0  # the clock is past it
    capsys.readouterr()
    assert _main(["evidence", "check", str(proof), "--now", str(NOW_MS)]) == 1
    assert "not a valid claim: too-early" in capsys.readouterr().err
    answered = tmp_path / "answered.evidence"
    answered.write_bytes(claim(preimage=SECRET))
    assert _main(["evidence", "check", str(answered), "--now", str(LATE_MS)]) == 1
    assert "not a valid claim: answered" in capsys.readouterr().err


def _status(**changes: object) -> dict[str, Any]:
    status = {
        "take_id": TAKE.take_id.hex(),
        "offer_id": OFFER.offer_id.hex(),
        "state": "failed",
        "reason": "timeout",
        "acceptance": pack(ACCEPTED.to_wire()).hex(),
        "held": pack(HELD.to_wire()).hex(),
        "take": pack(SIGNED_TAKE.to_wire()).hex(),
        "offer": pack(SIGNED_OFFER.to_wire()).hex(),
    }
    return {**status, **changes}


@pytest.fixture
def taker_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "bob.key"
    write_key_file(path, TAKER_KEY)
    return path


def _claim_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key_file: Path, status: dict[str, Any]
) -> tuple[int, Path, list[str]]:
    asked: list[str] = []

    def answer(directory: Path, client_key: NodeKey, go: Any) -> dict[str, Any]:
        asked.append(str(directory))
        assert client_key.public_key == TAKER_KEY.public_key
        return status

    monkeypatch.setattr("node.cli_offers._run", answer)
    out = tmp_path / "claim.evidence"
    argv = ["offer", "claim", TAKE.take_id.hex(), "--user-key", str(key_file)]
    code = _main([*argv, "--node", str(tmp_path / "node"), "--out", str(out), "--json"])
    return code, out, asked


def test_offer_claim_writes_a_claim_that_checks(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    taker_key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, asked = _claim_command(monkeypatch, tmp_path, taker_key_file, _status())
    assert code == 0 and asked == [str(tmp_path / "node")]
    shown = json.loads(capsys.readouterr().out)
    assert shown["incriminates"] == M_KEY.public_key.hex() and shown["proof_now"]
    assert shown["proof_from_ms"] == LATE_MS
    assert out.read_bytes() == claim()
    assert _main(["evidence", "check", str(out), "--json"]) == 0


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"state": "settled"}, "is settled: nothing to claim"),
        ({"acceptance": None, "state": "sent to bank-1.test"}, "has no acceptance"),
        ({"held": None}, "never confirmed your leg A held"),
        ({"offer": None}, "did not keep the maker's signed offer"),
    ],
)
def test_offer_claim_refuses_when_there_is_nothing_to_claim(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    taker_key_file: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    message: str,
) -> None:
    code, out, _ = _claim_command(monkeypatch, tmp_path, taker_key_file, _status(**changes))
    assert code == 1 and not out.exists()
    assert message in capsys.readouterr().err


def test_offer_claim_arguments(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    taker_key_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as shown:
        _main(["offer", "claim", "--help"])
    assert shown.value.code == 0 and "--out" in capsys.readouterr().out
    with pytest.raises(SystemExit) as missing:
        _main(["offer", "claim", TAKE.take_id.hex(), "--node", str(tmp_path)])
    assert missing.value.code == 2  # --user-key and --out are required
    monkeypatch.setattr("node.cli_offers._run", lambda *args: pytest.fail("asked the node"))
    argv = ["offer", "claim", "abc", "--user-key", str(taker_key_file)]
    assert _main([*argv, "--node", str(tmp_path), "--out", str(tmp_path / "c")]) == 1
    assert "is not 64 hex digits" in capsys.readouterr().err
