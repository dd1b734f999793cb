"""Evidence against a maker's validator that accepted more of an offer than it held.

Rules:
- An honest maker's validator M accepts the takes of an offer one after the
  other, each at most what is left, and never accepts an amount twice: so the
  amounts of its acceptances of one offer add up to at most the offer's
  ``sell_amount``, and each acceptance's ``filled`` (the cumulative amount,
  this take included) grows by exactly its ``amount``. It answers a repeated
  take with the same acceptance.
- Hence any of these, in acceptances that all verify under one key and name
  one offer, proves M cheated: two different acceptances of one take id; an
  acceptance with ``filled`` above ``sell_amount``; acceptances of distinct
  takes whose amounts add up to more than ``sell_amount``; two acceptances of
  distinct takes whose ranges ``(filled - amount, filled]`` overlap. (Any
  overfill is provable with at most two acceptances, by the last two.)
- The evidence file is canonical msgpack ``{"type": "offer-overfill", "offer":
  signed offer wire, "acceptances": [signed acceptance wire, ...]}``, at most
  OFFER_EVIDENCE_ACCEPTANCES_MAX acceptances and OFFER_EVIDENCE_BYTES_MAX
  bytes. Checking it is offline and pure, and never raises on bad input.
- What every evidence file shares (its ``type``, the signed offer, the
  verdict) lives here; the claim that M accepted and never settled is
  ``node.offers.unsettled``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from node.codec import DecodeError, decode_canonical, pack, require_list, require_map, unpack
from node.ledger.signed import Offer, SignedInstruction, signed_instruction_from_wire
from node.limits import OFFER_EVIDENCE_ACCEPTANCES_MAX, OFFER_EVIDENCE_BYTES_MAX
from node.offers.take import SignedAcceptance, signed_acceptance_from_wire

OFFER_EVIDENCE_TYPE = "offer-overfill"


@dataclass(frozen=True, slots=True)
class OfferEvidence:
    offer: SignedInstruction  # of an Offer
    acceptances: tuple[SignedAcceptance, ...]

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": OFFER_EVIDENCE_TYPE,
            "offer": self.offer.to_wire(),
            "acceptances": [signed.to_wire() for signed in self.acceptances],
        }


def offer_evidence_from_wire(obj: object) -> OfferEvidence:
    fields = require_map(obj, "evidence", frozenset({"type", "offer", "acceptances"}))
    if fields["type"] != OFFER_EVIDENCE_TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    acceptances = require_list(fields["acceptances"], "acceptances", OFFER_EVIDENCE_ACCEPTANCES_MAX)
    if not acceptances:
        raise DecodeError("bad-field", "evidence names at least one acceptance")
    offer = signed_offer_from_wire(fields["offer"])
    return OfferEvidence(offer, tuple(signed_acceptance_from_wire(a) for a in acceptances))


def signed_offer_from_wire(value: object) -> SignedInstruction:
    """A signed Offer (its signature not checked). Raises DecodeError."""
    offer = signed_instruction_from_wire(value)
    if not isinstance(offer.instruction, Offer):
        raise DecodeError("bad-field", "offer must be an offer")
    return offer


def encode_offer_evidence(evidence: OfferEvidence) -> bytes:
    return pack(evidence.to_wire())


def decode_offer_evidence(raw: bytes) -> OfferEvidence:
    return decode_canonical(
        raw, OFFER_EVIDENCE_BYTES_MAX, offer_evidence_from_wire, OfferEvidence.to_wire
    )


def evidence_type(raw: bytes) -> str | None:
    """The type an evidence file's map claims (``offer-overfill``,
    ``exchange-unsettled``...), so ``evidence check`` sends it to its check;
    None for anything else (a chain-equivocation file has no type)."""
    try:
        value = unpack(raw, OFFER_EVIDENCE_BYTES_MAX)  # the largest evidence file
    except DecodeError:
        return None
    claimed = value.get("type") if type(value) is dict else None
    return claimed if type(claimed) is str else None


def is_offer_evidence(raw: bytes) -> bool:
    """True when ``raw`` claims to be offer evidence (its map's type says so)."""
    return evidence_type(raw) == OFFER_EVIDENCE_TYPE


# --- the proof -----------------------------------------------------------------------------


def overfill_problem(
    signed_offer: SignedInstruction, acceptances: Sequence[SignedAcceptance]
) -> str | None:
    """None when the documents prove that their signer overfilled the offer;
    otherwise why they do not."""
    return _verdict(signed_offer, acceptances)[0]


def _verdict(
    signed_offer: SignedInstruction, acceptances: Sequence[SignedAcceptance]
) -> tuple[str | None, str]:
    """(why not a proof, or None; what it proves)."""
    offer = signed_offer.instruction
    if not isinstance(offer, Offer):
        return "not-an-offer", ""
    if not acceptances:
        return "no-acceptance", ""
    if not signed_offer.verifies():
        return "bad-offer-signature", ""
    key = acceptances[0].acceptance.validator_key
    for signed in acceptances:
        if signed.acceptance.validator_key != key:
            return "different-validators", ""
        if signed.acceptance.offer_id != offer.offer_id:
            return "other-offer", ""
        if not signed.verifies(key):
            return "bad-acceptance-signature", ""
    return _overfill(offer, [signed.acceptance for signed in acceptances])


def _overfill(offer: Offer, acceptances: list[Any]) -> tuple[str | None, str]:
    by_take: dict[bytes, Any] = {}
    for acceptance in acceptances:
        held = by_take.setdefault(acceptance.take_id, acceptance)
        if held != acceptance:
            return None, f"take {acceptance.take_id.hex()} accepted twice, differently"
        if acceptance.filled > offer.sell_amount:
            return None, f"filled {acceptance.filled} > sell_amount {offer.sell_amount}"
    total = sum(acceptance.amount for acceptance in by_take.values())
    if total > offer.sell_amount:
        return None, f"accepted {total} > sell_amount {offer.sell_amount}"
    ranges = sorted((a.filled - a.amount, a.filled, a.take_id) for a in by_take.values())
    for (_, end, first), (start, _, second) in itertools.pairwise(ranges):
        if start < end:
            return None, f"takes {first.hex()} and {second.hex()} claim the same part"
    return "no-overfill", f"accepted {total} of {offer.sell_amount}"


class EvidenceVerdict(NamedTuple):
    """``valid``: proof against ``validator_key``; ``detail`` says what, or why not
    (a short reason word first)."""

    valid: bool
    validator_key: bytes | None
    detail: str


def check_offer_evidence(raw: bytes) -> EvidenceVerdict:
    """Check an offer evidence file's bytes offline. Never raises on bad input."""
    try:
        evidence = decode_offer_evidence(raw)
    except DecodeError as error:
        return EvidenceVerdict(False, None, f"malformed: {error}")
    problem, detail = _verdict(evidence.offer, evidence.acceptances)
    if problem is not None:
        return EvidenceVerdict(False, None, f"{problem} {detail}".strip())
    return EvidenceVerdict(True, evidence.acceptances[0].acceptance.validator_key, detail)
