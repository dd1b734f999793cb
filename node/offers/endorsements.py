"""Validator endorsements and the trust closure that decides whose offers count.

Rules:
- An endorsement says "I, ``endorser`` (domain, key), vouch that ``subject``
  (domain) is the validator holding ``subject_key``, reachable at
  ``address``", from ``issued_ms`` to ``expires_ms``. Its endorser signs the
  canonical payload under KIND_VALIDATOR_ENDORSEMENT; it travels as a gossip
  item of kind ``validator``: origin = endorser key, id = subject key, seq =
  issued_ms, body ``[payload bytes, signature]``.
- A node accepts validator keys by depth: 0 its own, 1 the trusted peers of its
  config, d + 1 a key endorsed by an accepted key of depth d <
  ENDORSEMENT_DEPTH_MAX. One key, one domain, and one domain, one key: an
  endorsement that would bind a domain or a key a second time is refused
  (first come, in closure order, wins).
- The closure is a function of the stored endorsements: breadth first,
  endorsers and subjects in sorted order, so every node holding the same
  endorsements accepts the same keys at the same depths, whatever the order
  they came in. (``Trust`` applies a pure extension at once and recomputes
  the rest lazily; the result is the same.)
- Nothing unendorsed is stored: ``endorsement_problem`` is the gossip verify
  callback of kind ``validator``. At most ENDORSEMENTS_KEPT_MAX are held.
- Pure: no clock (expiry is gossip's), no I/O; the shell signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.codec import (
    TIME_MS_MAX,
    DecodeError,
    decode_canonical,
    pack,
    require_bytes,
    require_map,
    require_str,
    unpack,
)
from node.gossip import Declined, GossipItem
from node.ledger.codec import require_domain
from node.limits import (
    ENDORSEMENT_BYTES_MAX,
    ENDORSEMENT_DEPTH_MAX,
    ENDORSEMENT_LIFETIME_MS_MAX,
    ENDORSEMENTS_KEPT_MAX,
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
)
from node.signatures import KIND_VALIDATOR_ENDORSEMENT, verify

ENDORSEMENT_KIND = "validator"  # the gossip kind of endorsements
ADDRESS_LENGTH_MAX = 300  # "host:port"


@dataclass(frozen=True, slots=True)
class ValidatorEndorsement:
    endorser: str  # domain
    endorser_key: bytes
    subject: str  # domain
    subject_key: bytes
    address: str | None  # "host:port" where the subject listens, if the endorser knows
    issued_ms: int
    expires_ms: int

    TYPE = "validator-endorsement"

    def to_wire(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "endorser": self.endorser,
            "endorser_key": self.endorser_key,
            "subject": self.subject,
            "subject_key": self.subject_key,
            "address": self.address,
            "issued_ms": self.issued_ms,
            "expires_ms": self.expires_ms,
        }

    def to_sign(self) -> bytes:
        """The payload the endorser signs under KIND_VALIDATOR_ENDORSEMENT."""
        return pack(self.to_wire())


_FIELDS = frozenset(ValidatorEndorsement("", b"", "", b"", None, 0, 0).to_wire())


def endorsement_from_wire(obj: object) -> ValidatorEndorsement:
    fields = require_map(obj, "endorsement", _FIELDS)
    if fields["type"] != ValidatorEndorsement.TYPE:
        raise DecodeError("bad-field", f"type {fields['type']!r}")
    issued_ms = fields["issued_ms"]
    expires_ms = fields["expires_ms"]
    if type(issued_ms) is not int or type(expires_ms) is not int:
        raise DecodeError("bad-field", "issued_ms and expires_ms are integers")
    if not 0 <= issued_ms < expires_ms <= min(issued_ms + ENDORSEMENT_LIFETIME_MS_MAX, TIME_MS_MAX):
        raise DecodeError("bad-field", "expires_ms must follow issued_ms within the lifetime")
    address = fields["address"]
    endorsement = ValidatorEndorsement(
        require_domain(fields["endorser"], "endorser"),
        require_bytes(fields["endorser_key"], "endorser_key", PUBLIC_KEY_BYTES),
        require_domain(fields["subject"], "subject"),
        require_bytes(fields["subject_key"], "subject_key", PUBLIC_KEY_BYTES),
        None if address is None else require_str(address, "address", ADDRESS_LENGTH_MAX),
        issued_ms,
        expires_ms,
    )
    if endorsement.endorser_key == endorsement.subject_key:
        raise DecodeError("bad-field", "a validator does not endorse itself")
    return endorsement


@dataclass(frozen=True, slots=True)
class SignedEndorsement:
    endorsement: ValidatorEndorsement
    signature: bytes

    def verifies(self) -> bool:
        body = self.endorsement
        return verify(body.endorser_key, KIND_VALIDATOR_ENDORSEMENT, body.to_sign(), self.signature)

    def to_body(self) -> bytes:
        """The gossip item body: ``[payload bytes, signature]``."""
        return pack([self.endorsement.to_sign(), self.signature])


def signed_endorsement_from_body(body: bytes) -> SignedEndorsement:
    """Decode an item body strictly. Raises DecodeError."""
    envelope = unpack(body, ENDORSEMENT_BYTES_MAX + SIGNATURE_BYTES + 16)
    if type(envelope) is not list or len(envelope) != 2:
        raise DecodeError("malformed", "a signed endorsement is [payload, signature]")
    endorsement = decode_canonical(
        envelope[0], ENDORSEMENT_BYTES_MAX, endorsement_from_wire, ValidatorEndorsement.to_wire
    )
    signature = require_bytes(envelope[1], "signature", SIGNATURE_BYTES)
    if pack([envelope[0], envelope[1]]) != body:
        raise DecodeError("non-canonical", "not the canonical encoding of its content")
    return SignedEndorsement(endorsement, signature)


def endorsement_item(signed: SignedEndorsement) -> GossipItem:
    body = signed.endorsement
    return GossipItem(
        body.endorser_key,
        ENDORSEMENT_KIND,
        body.subject_key,
        body.issued_ms,
        body.expires_ms,
        signed.to_body(),
    )


# --- the trust closure -------------------------------------------------------------------


class Trust:
    """The validator keys this node accepts, with their domains and depths.

    ``trusted``: the peers of the config, key -> domain (depth 1). An endorsement
    that only extends the closure by one new key (its endorser accepted, its
    subject's key and domain unbound, nothing stored that the subject endorsed)
    is applied at once; any other change marks the closure stale and the next
    query recomputes it, so a batch of changes costs one recomputation."""

    def __init__(self, own_key: bytes, own_domain: str, trusted: Mapping[bytes, str]) -> None:
        self.own_key = own_key
        self.own_domain = own_domain
        self.trusted = dict(trusted)
        self.endorsements: dict[tuple[bytes, bytes], SignedEndorsement] = {}
        self._endorsing: dict[bytes, int] = {}  # endorser key -> endorsements stored
        self._accepted: dict[bytes, tuple[str, int]] = {}  # key -> (domain, depth)
        self._keys: dict[str, bytes] = {}  # domain -> key
        self._addresses: dict[bytes, str] = {}  # key -> the address its first endorser gave
        self._stale = True
        self.changes = 0  # grows with every change that may change the closure

    def depth(self, key: bytes) -> int | None:
        accepted = self._closure().get(key)
        return None if accepted is None else accepted[1]

    def domain_of(self, key: bytes) -> str | None:
        accepted = self._closure().get(key)
        return None if accepted is None else accepted[0]

    def key_of(self, domain: str) -> bytes | None:
        self._closure()
        return self._keys.get(domain)

    def address_of(self, key: bytes) -> str | None:
        """The "host:port" the endorsement that accepted ``key`` gave, if any."""
        self._closure()
        return self._addresses.get(key)

    def domains(self) -> frozenset[str]:
        """The domains of every accepted validator key (for ``OrderBook.retain_validators``)."""
        self._closure()
        return frozenset(self._keys)

    def accepted(self) -> dict[bytes, tuple[str, int]]:
        """key -> (domain, depth) of every accepted validator key."""
        return dict(self._closure())

    def add(self, signed: SignedEndorsement) -> None:
        """Store a verified endorsement, replacing an older one of the same endorser
        and subject. Beyond ENDORSEMENTS_KEPT_MAX, a new one is dropped."""
        body = signed.endorsement
        name = (body.endorser_key, body.subject_key)
        held = self.endorsements.get(name)
        if held is not None and held.endorsement.issued_ms >= body.issued_ms:
            return
        if held is None and len(self.endorsements) >= ENDORSEMENTS_KEPT_MAX:
            return
        self.endorsements[name] = signed
        if held is None:
            self._endorsing[body.endorser_key] = self._endorsing.get(body.endorser_key, 0) + 1
            if self._extends(body):
                self.changes += 1
                return
        elif _binding(held.endorsement) == _binding(body):
            return  # a refresh (later issue and expiry) binds the same: the closure stands
        self._stale = True
        self.changes += 1

    def remove(self, signed: SignedEndorsement) -> None:
        """Forget an endorsement (its item expired)."""
        body = signed.endorsement
        name = (body.endorser_key, body.subject_key)
        if self.endorsements.get(name) == signed:
            del self.endorsements[name]
            self._endorsing[body.endorser_key] -= 1
            if not self._endorsing[body.endorser_key]:
                del self._endorsing[body.endorser_key]
            self._stale = True
            self.changes += 1

    def _extends(self, body: ValidatorEndorsement) -> bool:
        """Apply ``body`` alone when a recomputation would do just that; else False."""
        endorser = self._accepted.get(body.endorser_key)
        if (
            self._stale
            or endorser is None
            or endorser[0] != body.endorser
            or endorser[1] >= ENDORSEMENT_DEPTH_MAX
            or body.subject_key in self._accepted
            or body.subject in self._keys
            or body.subject_key in self._endorsing
        ):
            return False
        self._follow(body, endorser[1] + 1)
        return True

    def _closure(self) -> dict[bytes, tuple[str, int]]:
        if self._stale:
            self._recompute()
        return self._accepted

    def _recompute(self) -> None:
        self._stale = False
        self._accepted = {self.own_key: (self.own_domain, 0)}
        self._keys = {self.own_domain: self.own_key}
        self._addresses = {}
        for key, domain in sorted(self.trusted.items()):
            self._accept(key, domain, 1)
        by_endorser: dict[bytes, list[ValidatorEndorsement]] = {}
        for (endorser_key, _), signed in sorted(self.endorsements.items()):
            by_endorser.setdefault(endorser_key, []).append(signed.endorsement)
        for depth in range(ENDORSEMENT_DEPTH_MAX):
            endorsers = sorted(k for k, (_, d) in self._accepted.items() if d == depth)
            for endorser_key in endorsers:
                for body in by_endorser.get(endorser_key, ()):
                    self._follow(body, depth + 1)

    def _follow(self, body: ValidatorEndorsement, depth: int) -> None:
        """Accept the subject of an endorsement by an accepted key at ``depth`` - 1."""
        endorser = self._accepted.get(body.endorser_key)
        if endorser is None or endorser[0] != body.endorser:
            return  # signed under another name than the one we know its endorser by
        self._accept(body.subject_key, body.subject, depth)
        subject = self._accepted.get(body.subject_key)
        if body.address is not None and subject is not None and subject[0] == body.subject:
            self._addresses.setdefault(body.subject_key, body.address)

    def _accept(self, key: bytes, domain: str, depth: int) -> None:
        """Bind ``key`` and ``domain`` unless either is bound already (earlier wins)."""
        if key not in self._accepted and domain not in self._keys:
            self._accepted[key] = (domain, depth)
            self._keys[domain] = key

    # --- the gossip verify callback ----------------------------------------------------

    def endorsement_problem(self, item: GossipItem) -> str | None:
        """Why ``item`` is not an endorsement this node stores and forwards, or None."""
        if item.kind != ENDORSEMENT_KIND:
            return "wrong-kind"
        try:
            signed = signed_endorsement_from_body(item.body)
        except DecodeError as error:
            return f"undecodable: {error}"
        body = signed.endorsement
        if (item.origin, item.item_id, item.seq, item.expires_ms) != (
            body.endorser_key,
            body.subject_key,
            body.issued_ms,
            body.expires_ms,
        ):
            return "mismatched-item"
        if not signed.verifies():
            return "bad-signature"
        # Genuine from here on: what follows depends only on it and on our trust.
        depth = self.depth(body.endorser_key)
        if depth is None:
            return Declined("unendorsed-endorser")
        if depth >= ENDORSEMENT_DEPTH_MAX:
            return Declined("endorsement-too-deep")
        if self.domain_of(body.endorser_key) != body.endorser:
            return Declined("wrong-endorser-domain")
        held_key = self._keys.get(body.subject)
        held_domain = self.domain_of(body.subject_key)
        if (held_key is not None and held_key != body.subject_key) or (
            held_domain is not None and held_domain != body.subject
        ):
            return Declined("domain-conflict")
        return None


def _binding(body: ValidatorEndorsement) -> tuple[str, bytes, str, bytes, str | None]:
    """What of an endorsement the closure depends on (not when it was issued or expires)."""
    return (body.endorser, body.endorser_key, body.subject, body.subject_key, body.address)
