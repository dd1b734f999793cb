"""Federation: resolving ``name@domain`` to a key and a KYC level through the mesh.

Rules:
- Only the domain's own validator answers for its users, with the signed
  federation record it made at registration (key and KYC level, never
  balances). Unknown user: it answers the error ``unknown-user``.
- A request goes straight to the domain's validator when it is a trusted
  peer; otherwise it is relayed to every trusted peer but the one it came
  from, at most RESOLVE_HOPS_MAX times. Relays remember where each request
  came from, send the first answer back that way and drop later copies.
  Only the owner answers, so a dead end stays silent and the asker's timeout
  says "unknown domain or unreachable".
- Verification: the validator that receives an answer over the owner's own
  link checks the record's signature against the key in its trust list and
  drops a forgery. A relay forwards the answer inside its own signed frame,
  so the asker holds its trusted peer's signed word for the owner's key, and
  the record itself stays verifiable by anyone who knows that key.
- Verified answers are cached for RESOLVE_CACHE_TTL_MS. Every table is bounded.
- Pure: no I/O, no clock (``now_ms``), no randomness (request ids are chosen
  by the shell).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from node.ledger.codec import domain_of, valid_address
from node.ledger.signed import SignedFederationRecord, signed_federation_from_wire
from node.limits import (
    RESOLVE_CACHE_ENTRIES_MAX,
    RESOLVE_CACHE_TTL_MS,
    RESOLVE_HOPS_MAX,
    RESOLVE_PENDING_MAX,
    RESOLVE_RELAYED_MAX,
    RESOLVE_TIMEOUT_MS,
)
from node.wire import DecodeError, Resolve, Resolved, pack, unpack

UNKNOWN_USER = "unknown-user"

LocalLookup = Callable[[str], SignedFederationRecord | None]


# --- inputs and effects --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionResolve:
    """Resolve ``address`` for a client; ``token`` names the answer, ``req_id`` is random."""

    token: int
    req_id: int
    address: str


@dataclass(frozen=True, slots=True)
class ReceiveResolve:
    peer_key: bytes
    message: Resolve


@dataclass(frozen=True, slots=True)
class ReceiveResolved:
    peer_key: bytes
    message: Resolved


@dataclass(frozen=True, slots=True)
class TimerTick:
    """Time passed: give up on requests nobody answered."""


Input = ActionResolve | ReceiveResolve | ReceiveResolved | TimerTick


@dataclass(frozen=True, slots=True)
class Resolution:
    address: str
    user_key: bytes
    kyc_level: int
    validator_key: bytes
    record: SignedFederationRecord
    expires_ms: int


@dataclass(frozen=True, slots=True)
class SendToPeer:
    peer_key: bytes
    message: Resolve | Resolved


@dataclass(frozen=True, slots=True)
class NotifyResolved:
    """The answer for ``token``: a verified resolution, or an error code and detail."""

    token: int
    resolution: Resolution | None
    error: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class NotifyRefused:
    reason: str
    detail: str


Effect = SendToPeer | NotifyResolved | NotifyRefused


@dataclass
class _Asked:
    token: int
    address: str
    deadline_ms: int


@dataclass
class _Relayed:
    from_peer: bytes
    address: str
    deadline_ms: int


def encode_record(record: SignedFederationRecord) -> bytes:
    return pack(record.to_wire())


def decode_record(raw: bytes) -> SignedFederationRecord:
    return signed_federation_from_wire(unpack(raw, len(raw)))


class Resolver:
    """One validator's part in federation. See the module's rules."""

    def __init__(
        self, own_domain: str, peers: Mapping[str, bytes], local_lookup: LocalLookup
    ) -> None:
        """``peers``: trusted validators, domain -> key. ``local_lookup``: our own users."""
        self.own_domain = own_domain
        self.peers = dict(peers)
        self.domain_of_key = {key: domain for domain, key in self.peers.items()}
        self.local_lookup = local_lookup
        self.asked: dict[int, _Asked] = {}
        self.relayed: OrderedDict[int, _Relayed] = OrderedDict()
        self.cache: OrderedDict[str, Resolution] = OrderedDict()

    def handle(self, event: Input, now_ms: int) -> list[Effect]:
        if isinstance(event, ActionResolve):
            return self._resolve(event, now_ms)
        if isinstance(event, ReceiveResolve):
            return self._on_request(event.peer_key, event.message, now_ms)
        if isinstance(event, ReceiveResolved):
            return self._on_answer(event.peer_key, event.message, now_ms)
        return self._expire(now_ms)

    # --- asking ----------------------------------------------------------------

    def _resolve(self, action: ActionResolve, now_ms: int) -> list[Effect]:
        address = action.address
        if not valid_address(address):
            return [
                NotifyResolved(action.token, None, "bad-address", f"{address!r} is not name@domain")
            ]
        cached = self.cache.get(address)
        if cached is not None and cached.expires_ms > now_ms:
            return [NotifyResolved(action.token, cached, None, "cached")]
        domain = domain_of(address)
        if domain == self.own_domain:
            return [self._local_answer(action.token, address, now_ms)]
        if len(self.asked) >= RESOLVE_PENDING_MAX:
            return [NotifyResolved(action.token, None, "busy", "too many resolutions under way")]
        if action.req_id in self.asked or action.req_id in self.relayed:
            return [NotifyResolved(action.token, None, "busy", "request id in use; retry")]
        self.asked[action.req_id] = _Asked(action.token, address, now_ms + RESOLVE_TIMEOUT_MS)
        request = Resolve(action.req_id, address, RESOLVE_HOPS_MAX - 1)
        return [SendToPeer(key, request) for key in self._next_hops(domain, exclude=None)]

    def _local_answer(self, token: int, address: str, now_ms: int) -> NotifyResolved:
        record = self.local_lookup(address)
        if record is None:
            return NotifyResolved(token, None, UNKNOWN_USER, f"{address} is not registered here")
        return NotifyResolved(token, self._resolution(record, now_ms), None, "local")

    def _next_hops(self, domain: str, exclude: bytes | None) -> list[bytes]:
        direct = self.peers.get(domain)
        if direct is not None:
            return [direct] if direct != exclude else []
        return [key for key in self.peers.values() if key != exclude]

    # --- relaying and answering ---------------------------------------------------

    def _on_request(self, peer_key: bytes, request: Resolve, now_ms: int) -> list[Effect]:
        if request.req_id in self.relayed or request.req_id in self.asked:
            return []  # a copy that came around another way
        if not valid_address(request.address):
            return [NotifyRefused("bad-address", f"RESOLVE for {request.address!r}")]
        domain = domain_of(request.address)
        if domain == self.own_domain:
            record = self.local_lookup(request.address)
            if record is None:
                answer = Resolved(request.req_id, None, UNKNOWN_USER)
            else:
                answer = Resolved(request.req_id, encode_record(record), None)
            return [SendToPeer(peer_key, answer)]
        next_hops = self._next_hops(domain, exclude=peer_key)
        if request.hops <= 0 or not next_hops:
            return []
        if len(self.relayed) >= RESOLVE_RELAYED_MAX:
            self.relayed.popitem(last=False)
        self.relayed[request.req_id] = _Relayed(
            peer_key, request.address, now_ms + RESOLVE_TIMEOUT_MS
        )
        onward = Resolve(request.req_id, request.address, request.hops - 1)
        return [SendToPeer(key, onward) for key in next_hops]

    def _on_answer(self, peer_key: bytes, answer: Resolved, now_ms: int) -> list[Effect]:
        asked = self.asked.get(answer.req_id)
        relayed = self.relayed.get(answer.req_id)
        if asked is None and relayed is None:
            return []  # a late or duplicate answer: the first one won
        address = asked.address if asked is not None else relayed.address if relayed else ""
        problem = self._answer_problem(peer_key, address, answer)
        if problem is not None:
            return [NotifyRefused("bad-answer", problem)]
        if relayed is not None:
            del self.relayed[answer.req_id]
            return [SendToPeer(relayed.from_peer, answer)]
        assert asked is not None
        del self.asked[answer.req_id]
        if answer.record is None:
            error = answer.error or UNKNOWN_USER
            return [NotifyResolved(asked.token, None, error, f"{address}: {error}")]
        resolution = self._resolution(decode_record(answer.record), now_ms)
        self._remember(resolution)
        return [NotifyResolved(asked.token, resolution, None, "resolved")]

    def _answer_problem(self, peer_key: bytes, address: str, answer: Resolved) -> str | None:
        """Why an answer must be dropped, or None. Checked at every hop."""
        owner_key = self.peers.get(domain_of(address))
        if answer.record is None:
            if answer.error == UNKNOWN_USER and owner_key not in (None, peer_key):
                return "an unknown-user answer for a trusted peer's domain from another link"
            return None
        try:
            record = decode_record(answer.record)
        except DecodeError as error:
            return f"undecodable federation record: {error}"
        if record.record.address != address:
            return f"a record for {record.record.address}, not {address}"
        signer = record.record.validator_key
        if owner_key is not None and signer != owner_key:
            return f"{domain_of(address)} is signed by another key than the trusted one"
        if not record.verifies(signer):
            return "the federation record's signature does not verify"
        return None

    def _resolution(self, record: SignedFederationRecord, now_ms: int) -> Resolution:
        body = record.record
        return Resolution(
            body.address,
            body.user_key,
            body.kyc_level,
            body.validator_key,
            record,
            now_ms + RESOLVE_CACHE_TTL_MS,
        )

    def _remember(self, resolution: Resolution) -> None:
        self.cache[resolution.address] = resolution
        self.cache.move_to_end(resolution.address)
        while len(self.cache) > RESOLVE_CACHE_ENTRIES_MAX:
            self.cache.popitem(last=False)

    def _expire(self, now_ms: int) -> list[Effect]:
        effects: list[Effect] = []
        for req_id, asked in list(self.asked.items()):
            if asked.deadline_ms <= now_ms:
                del self.asked[req_id]
                domain = domain_of(asked.address)
                detail = f"no validator answered for {domain}: unknown domain or unreachable"
                effects.append(NotifyResolved(asked.token, None, "unreachable", detail))
        for req_id, relayed in list(self.relayed.items()):
            if relayed.deadline_ms <= now_ms:
                del self.relayed[req_id]
        return effects
