"""The taker's claim against a maker's validator that accepted a take and did not settle.

Rules:
- That nothing was settled cannot be shown by signatures alone. But an
  acceptance is M's signed, binding promise, and M's receipt of leg A says
  the taker's side paid its part, so the burden is M's: the claim shows that
  M's key signed an acceptance of THIS take (signed by the taker) of THIS
  offer (signed by the maker; the acceptance's ``validator`` is the maker's
  domain), with these amounts and condition h; that the same key signed the
  receipt of leg A for that take, condition and at least its ``pay``; and
  that the whole settlement window has passed: the later of
  ``settlement_horizon_ms(acceptance)`` (``node.offers.take``, the horizon M
  itself expects leg A until) and the receipt's ``leg_a_expires_ms`` (M may
  claim leg A until then), plus CLOCK_SKEW_MS_MAX.
- Without the receipt there is no claim: a taker's validator that never paid
  leg A could otherwise accuse an M that rightly never paid leg B.
- M's only answer is the secret s with SHA-256(s) = h. M learns s only once
  the taker was credited (leg B accepted, then TAKE_REVEAL), so M holding s
  shows it settled: a claim that carries it (``preimage``) is answered and is
  not a proof. A preimage that does not hash to h answers nothing.
- The file is canonical msgpack ``{"type": "exchange-unsettled", "offer":
  signed offer wire, "take": signed take wire, "acceptance": signed acceptance
  wire, "held": signed receipt wire, "preimage": 32 bytes or None}``, at most
  EXCHANGE_UNSETTLED_BYTES_MAX bytes. Decoding is strict (DecodeError only).
  Checking is offline and pure (time is ``now_ms``) and never raises on bad
  input; each refusal is a short reason word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.codec import DecodeError, decode_canonical, pack, require_bytes, require_map, unpack
from node.ledger.codec import domain_of
from node.ledger.signed import Offer, SignedInstruction, Take
from node.limits import CLOCK_SKEW_MS_MAX, EXCHANGE_UNSETTLED_BYTES_MAX, HASH_BYTES
from node.offers.evidence import EvidenceVerdict, signed_offer_from_wire
from node.offers.take import (
    SignedAcceptance,
    SignedLegAHeld,
    acceptance_times_problem,
    receipt_problem,
    settlement_horizon_ms,
    signed_acceptance_from_wire,
    signed_leg_a_held_from_wire,
    signed_take_from_wire,
)
from node.signatures import sha256

UNSETTLED_EVIDENCE_TYPE = "exchange-unsettled"
_FIELDS = frozenset({"type", "offer", "take", "acceptance", "held", "preimage"})


@dataclass(frozen=True, slots=True)
class UnsettledEvidence:
    offer: SignedInstruction  # of an Offer, signed by its maker
    take: SignedInstruction  # of a Take, signed by its taker
    acceptance: SignedAcceptance  # M's
    held: SignedLegAHeld  # M's receipt of leg A
    preimage: bytes | None  # M's answer, if any

    @property
    def offer_terms(self) -> Offer:
        offer = self.offer.instruction
        assert isinstance(offer, Offer)
        return offer

    @property
    def take_terms(self) -> Take:
        take = self.take.instruction
        assert isinstance(take, Take)
        return take

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": UNSETTLED_EVIDENCE_TYPE,
            "offer": self.offer.to_wire(),
            "take": self.take.to_wire(),
            "acceptance": self.acceptance.to_wire(),
            "held": self.held.to_wire(),
            "preimage": self.preimage,
        }


def unsettled_evidence_from_wire(obj: object) -> UnsettledEvidence:
    fields = require_map(obj, "evidence", _FIELDS)
    if fields["type"] != UNSETTLED_EVIDENCE_TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    preimage = fields["preimage"]
    return UnsettledEvidence(
        signed_offer_from_wire(fields["offer"]),
        signed_take_from_wire(fields["take"]),
        signed_acceptance_from_wire(fields["acceptance"]),
        signed_leg_a_held_from_wire(fields["held"]),
        None if preimage is None else require_bytes(preimage, "preimage", HASH_BYTES),
    )


def encode_unsettled_evidence(evidence: UnsettledEvidence) -> bytes:
    return pack(evidence.to_wire())


def decode_unsettled_evidence(raw: bytes) -> UnsettledEvidence:
    return decode_canonical(
        raw, EXCHANGE_UNSETTLED_BYTES_MAX, unsettled_evidence_from_wire, UnsettledEvidence.to_wire
    )


def unsettled_claim(offer: bytes, take: bytes, acceptance: bytes, held: bytes) -> bytes:
    """The claim file made of the four signed documents, each as packed msgpack
    (as a taker's validator shows them), with no answer. Raises DecodeError."""
    documents = (offer, take, acceptance, held)
    parts = [unpack(part, EXCHANGE_UNSETTLED_BYTES_MAX) for part in documents]
    evidence = UnsettledEvidence(
        signed_offer_from_wire(parts[0]),
        signed_take_from_wire(parts[1]),
        signed_acceptance_from_wire(parts[2]),
        signed_leg_a_held_from_wire(parts[3]),
        None,
    )
    return encode_unsettled_evidence(evidence)


def settlement_window_end_ms(evidence: UnsettledEvidence) -> int:
    """From then on, whatever clock the checker has, M must have settled."""
    horizon_ms = settlement_horizon_ms(evidence.acceptance.acceptance)
    return max(horizon_ms, evidence.held.receipt.leg_a_expires_ms) + CLOCK_SKEW_MS_MAX


# --- the claim -----------------------------------------------------------------------------


def unsettled_problem(evidence: UnsettledEvidence, now_ms: int) -> str | None:
    """None when the documents hold M to an exchange it has not shown settled by
    ``now_ms``; otherwise the reason word why they do not."""
    return _verdict(evidence, now_ms)[0]


def _verdict(evidence: UnsettledEvidence, now_ms: int) -> tuple[str | None, str]:
    """(why not a proof, or None; what it shows)."""
    problem = _binding_problem(evidence)
    if problem is not None:
        return problem, ""
    acceptance = evidence.acceptance.acceptance
    if evidence.preimage is not None and sha256(evidence.preimage) == acceptance.condition:
        return "answered", "settled: the preimage answers it"
    end_ms = settlement_window_end_ms(evidence)
    if now_ms <= end_ms:
        return "too-early", f"the settlement window ends at {end_ms} ms, now is {now_ms}"
    wrong = "" if evidence.preimage is None else "; the preimage given does not hash to h"
    detail = (
        f"{acceptance.validator} accepted take {acceptance.take_id.hex()} of offer"
        f" {acceptance.offer_id.hex()} ({acceptance.amount} for {acceptance.pay}, condition"
        f" {acceptance.condition.hex()}), confirmed leg A held ({evidence.held.receipt.held}),"
        f" and showed no settlement by {end_ms} ms{wrong}"
    )
    return None, detail


def _binding_problem(evidence: UnsettledEvidence) -> str | None:
    """Why the documents are not M's acceptance of this take of this offer, and its
    receipt of the take's leg A paid in full."""
    offer, take = evidence.offer_terms, evidence.take_terms
    signed = evidence.acceptance
    acceptance = signed.acceptance
    if not evidence.offer.verifies():
        return "bad-offer-signature"
    if not evidence.take.verifies():
        return "bad-take-signature"
    if not signed.verifies(acceptance.validator_key):
        return "bad-acceptance-signature"
    if take.offer_id != offer.offer_id:
        return "take-of-other-offer"
    if take.maker != offer.maker:
        return "other-maker"
    if acceptance.offer_id != offer.offer_id:
        return "other-offer"
    if (acceptance.take_id, acceptance.taker) != (take.take_id, take.taker):
        return "other-take"
    if (acceptance.amount, acceptance.pay) != (take.amount, take.pay):
        return "other-amounts"
    if acceptance.validator != domain_of(offer.maker):
        return "other-validator"
    return acceptance_times_problem(acceptance) or receipt_problem(evidence.held, acceptance)


def check_unsettled_evidence(raw: bytes, now_ms: int) -> EvidenceVerdict:
    """Check a claim file's bytes offline as of ``now_ms``. Never raises on bad input."""
    try:
        evidence = decode_unsettled_evidence(raw)
    except DecodeError as error:
        return EvidenceVerdict(False, None, f"malformed: {error}")
    problem, detail = _verdict(evidence, now_ms)
    if problem is not None:
        return EvidenceVerdict(False, None, f"{problem}: {detail}" if detail else problem)
    return EvidenceVerdict(True, evidence.acceptance.acceptance.validator_key, detail)
