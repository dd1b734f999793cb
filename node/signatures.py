"""Signatures and hashes: domain-separated ed25519 and SHA-256. Pure, safe for the cores.

Rules:
- Every signature covers ``b"ledgermesh/1/" + kind + b"\\x00" + payload``. The
  kind names the message kind and the protocol version is in the prefix, so a
  signature of one kind can never be replayed as another.
- The private seed never appears in a repr, a log line or an error message.
- Key generation, key files and certificates live in ``node.crypto`` (the
  shell's side): the cores only verify and hash.
- ``verify`` remembers the last VERIFIED_SIGNATURES_REMEMBERED valid
  signatures of payloads up to VERIFIED_PAYLOAD_BYTES_MAX by their exact
  bytes (key, kind, payload, signature): checking is a pure function of those
  bytes, so the answer cannot change. Frames (large, each checked once) are
  not remembered; the memory is guarded by a lock (the shell checks batches
  on several threads). A gossip
  item reaches a node once, so a node rarely asks twice; in the simulator
  every node of the mesh shares the process, and a route announcement is
  checked once for all fifty instead of once each.
- ``remembering_own_signatures`` (off unless a process turns it on; the
  simulator does during a run, every node of its mesh living in one process)
  remembers the signatures this process's own ``sign`` made, by (public key,
  kind, payload).
  ``verify`` of exactly those bytes and that signature answers True without
  the curve maths (a signature made by a real sign over those bytes is
  valid); anything else, a tampered byte or a foreign signature, is checked
  for real. Signing the same bytes again returns the remembered signature:
  ed25519 is deterministic, so it is the one a real sign would make. Bounded
  in entries and payload bytes, the oldest forgotten first.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from node.limits import (
    PUBLIC_KEY_BYTES,
    SIGNATURE_BYTES,
    VERIFIED_PAYLOAD_BYTES_MAX,
    VERIFIED_SIGNATURES_REMEMBERED,
)

SIGNATURE_PREFIX = b"ledgermesh/1/"

# The kinds of signed things. One word each, never reused for another meaning.
KIND_PEER_FRAME = b"peer-frame"
KIND_API_REQUEST = b"api-request"
KIND_USER_IDENTITY = b"user-identity"  # a user binds its key to its address
KIND_FEDERATION = b"federation"  # a validator vouches for a user's key and KYC level
KIND_ASSET_DEFINITION = b"asset-definition"  # an issuer defines a UAI
KIND_LEDGER_TRANSFER = b"ledger-transfer"  # a user pays another user of its validator
KIND_LEDGER_DEPOSIT = b"ledger-deposit"  # an issuer emits to a user
KIND_LEDGER_WITHDRAW = b"ledger-withdraw"  # an issuer redeems from a user
KIND_LEDGER_CROSS_TRANSFER = b"ledger-cross-transfer"  # a user pays a user of another bank
KIND_LEDGER_SETTLE = b"ledger-settle"  # a validator makes a payer's hold a final debit
KIND_LEDGER_RELEASE = b"ledger-release"  # a validator gives a payer's held funds back
KIND_LEDGER_CREDIT = b"ledger-credit"  # a validator credits a payee paid over the mesh
KIND_CHAIN_ENTRY = b"chain-entry"  # a validator makes an account-chain entry final
KIND_CHAIN_RECORD = b"chain-record"  # ... or all the entries of one instruction at once
KIND_CHAIN_BATCH = b"chain-batch"  # ... or the records of a batch, by their Merkle root
KIND_ROUTE_ANNOUNCEMENT = b"route-announcement"  # a validator announces a trust edge
KIND_OFFER = b"offer"  # a maker offers to sell one asset for another
KIND_OFFER_CANCEL = b"offer-cancel"  # a maker withdraws its offer
KIND_OFFER_TAKE = b"offer-take"  # a taker takes (part of) an offer
KIND_OFFER_FILL = b"offer-fill"  # a validator carves a fill's hold out of a reservation
KIND_OFFER_UNFILL = b"offer-unfill"  # a validator returns a carved hold to its reservation
KIND_OFFER_CLOSE = b"offer-close"  # a validator closes a reservation, the rest to the maker
KIND_OFFER_STATUS = b"offer-status"  # a validator states what is left of an offer
KIND_OFFER_ACCEPTANCE = b"offer-acceptance"  # the maker's validator accepts one take
KIND_OFFER_LEG_A_HELD = b"offer-leg-a-held"  # the maker's validator holds a take's leg A
KIND_TAKE_FORWARD = b"take-forward"  # the taker's validator sends a take towards the maker's
KIND_VALIDATOR_ENDORSEMENT = b"validator-endorsement"  # a validator vouches for another's key


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def signed_bytes(kind: bytes, payload: bytes) -> bytes:
    """The exact bytes a signature of ``kind`` covers."""
    assert b"\x00" not in kind
    return SIGNATURE_PREFIX + kind + b"\x00" + payload


@dataclass(frozen=True, repr=False)
class NodeKey:
    """An ed25519 signing key. Only the shell holds one; cores verify."""

    seed: bytes

    def __post_init__(self) -> None:
        assert len(self.seed) == 32

    def __repr__(self) -> str:
        return f"NodeKey(public={self.public_key.hex()[:16]}...)"

    @property
    def public_key(self) -> bytes:
        public_key = _public_key_cache.get(self.seed)
        if public_key is None:
            public_key = _public_key_cache[self.seed] = bytes(self._signing_key().verify_key)
        return public_key

    def _signing_key(self) -> nacl.signing.SigningKey:
        # Deriving the key costs ~25 us; every frame needs it.
        signing_key = _signing_key_cache.get(self.seed)
        if signing_key is None:
            signing_key = nacl.signing.SigningKey(self.seed)
            _signing_key_cache[self.seed] = signing_key
        return signing_key

    def sign(self, kind: bytes, payload: bytes) -> bytes:
        if _own.entries_max and type(payload) is bytes:
            return _own.sign(self, kind, payload)
        return bytes(self._signing_key().sign(signed_bytes(kind, payload)).signature)


class _OwnSignatures:
    """The signatures this process's ``sign`` made (see the module's rules), oldest first."""

    def __init__(self) -> None:
        self.entries_max = 0  # 0: off
        self.payload_bytes_max = 0
        self.payload_bytes = 0
        self.signatures: OrderedDict[tuple[bytes, bytes, bytes], bytes] = OrderedDict()
        self.lock = threading.Lock()

    def sign(self, key: NodeKey, kind: bytes, payload: bytes) -> bytes:
        made = (key.public_key, kind, payload)
        with self.lock:
            signature = self.signatures.get(made)
            if signature is not None:
                self.signatures.move_to_end(made)
                return signature
            signing_key = key._signing_key()
            signature = bytes(signing_key.sign(signed_bytes(kind, payload)).signature)
            self.signatures[made] = signature
            self.payload_bytes += len(payload)
            self._forget_beyond_bounds()
        return signature

    def _forget_beyond_bounds(self) -> None:
        while self.signatures and (
            len(self.signatures) > self.entries_max or self.payload_bytes > self.payload_bytes_max
        ):
            (_, _, payload), _ = self.signatures.popitem(last=False)
            self.payload_bytes -= len(payload)

    def made(self, public_key: bytes, kind: bytes, payload: bytes, signature: bytes) -> bool:
        """Whether this process's ``sign`` made ``signature`` over exactly these bytes."""
        return self.signatures.get((public_key, kind, payload)) == signature

    def configure(self, entries_max: int, payload_bytes_max: int) -> None:
        assert entries_max >= 0 and payload_bytes_max >= 0
        with self.lock:
            self.entries_max, self.payload_bytes_max = entries_max, payload_bytes_max
            if not entries_max:
                self.signatures.clear()
                self.payload_bytes = 0
            self._forget_beyond_bounds()


_own = _OwnSignatures()


@contextlib.contextmanager
def remembering_own_signatures(entries_max: int, payload_bytes_max: int) -> Iterator[None]:
    """Within: remember the last ``entries_max`` signatures this process makes, of payloads
    of at most ``payload_bytes_max`` bytes together (see the module's rules). After: as
    before (off, by default, and forgotten).

    For a process that verifies what it signed itself (the simulator): a real node never
    sees its own frames, and would only pay the memory."""
    previous = (_own.entries_max, _own.payload_bytes_max)
    _own.configure(entries_max, payload_bytes_max)
    try:
        yield
    finally:
        _own.configure(*previous)


_signing_key_cache: dict[bytes, nacl.signing.SigningKey] = {}
_public_key_cache: dict[bytes, bytes] = {}  # by seed, as the signing keys
_verify_key_cache: dict[bytes, nacl.signing.VerifyKey] = {}
# Valid signatures by their exact bytes, oldest first.
_verified: OrderedDict[tuple[bytes, bytes, bytes, bytes], None] = OrderedDict()
_verified_lock = threading.Lock()


def remember_valid(public_key: bytes, kind: bytes, payload: bytes, signature: bytes) -> None:
    """Note a signature the node's checker process found valid (node.check_ahead),
    so ``verify`` answers it from memory."""
    if len(payload) <= VERIFIED_PAYLOAD_BYTES_MAX:
        _remember((public_key, kind, payload, signature))


def _remember(remembered: tuple[bytes, bytes, bytes, bytes]) -> None:
    with _verified_lock:
        if len(_verified) >= VERIFIED_SIGNATURES_REMEMBERED:
            _verified.popitem(last=False)  # O(1); a dict's first key is not, once popped often
        _verified[remembered] = None


def verify(public_key: bytes, kind: bytes, payload: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``kind`` over ``payload``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    if (
        _own.entries_max
        and type(payload) is bytes
        and _own.made(public_key, kind, payload, signature)
    ):
        return True
    verify_key = _verify_key_cache.get(public_key)
    if verify_key is None:
        try:
            verify_key = nacl.signing.VerifyKey(public_key)
        except (nacl.exceptions.CryptoError, ValueError):
            return False
        if len(_verify_key_cache) < 4096:
            _verify_key_cache[public_key] = verify_key
    remember = len(payload) <= VERIFIED_PAYLOAD_BYTES_MAX
    remembered = (public_key, kind, payload, signature)
    if remember and remembered in _verified:
        return True
    try:
        verify_key.verify(signed_bytes(kind, payload), signature)
    except nacl.exceptions.BadSignatureError:
        return False
    if remember:
        _remember(remembered)
    return True
