"""Keys, key files, domain-separated signatures, hashes and QUIC certificates.

Rules:
- Every signature covers ``b"ledgermesh/1/" + kind + b"\\x00" + payload``. The
  kind names the message kind and the protocol version is in the prefix, so a
  signature of one kind can never be replayed as another.
- A key file holds the 32-byte ed25519 seed as hex. It is written with mode
  0600, and a node refuses to load one that others can read.
- The private seed never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID

from node.limits import PUBLIC_KEY_BYTES, SIGNATURE_BYTES

SIGNATURE_PREFIX = b"ledgermesh/1/"

# The kinds of signed things. One word each, never reused for another meaning.
KIND_PEER_FRAME = b"peer-frame"
KIND_API_REQUEST = b"api-request"


class KeyFileError(Exception):
    """Raised when a key file is missing, malformed, or readable by others."""


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

    @classmethod
    def generate(cls) -> NodeKey:
        return cls(os.urandom(32))

    @property
    def public_key(self) -> bytes:
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    def sign(self, kind: bytes, payload: bytes) -> bytes:
        signing_key = _signing_key_cache.get(self.seed)
        if signing_key is None:
            signing_key = nacl.signing.SigningKey(self.seed)
            _signing_key_cache[self.seed] = signing_key
        return bytes(signing_key.sign(signed_bytes(kind, payload)).signature)


_signing_key_cache: dict[bytes, nacl.signing.SigningKey] = {}
_verify_key_cache: dict[bytes, nacl.signing.VerifyKey] = {}


def verify(public_key: bytes, kind: bytes, payload: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``kind`` over ``payload``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    verify_key = _verify_key_cache.get(public_key)
    if verify_key is None:
        try:
            verify_key = nacl.signing.VerifyKey(public_key)
        except (nacl.exceptions.CryptoError, ValueError):
            return False
        if len(_verify_key_cache) < 4096:
            _verify_key_cache[public_key] = verify_key
    try:
        verify_key.verify(signed_bytes(kind, payload), signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


# --- key files ---------------------------------------------------------------


def write_key_file(path: Path, key: NodeKey) -> None:
    """Write ``key`` to ``path`` with mode 0600; refuses to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.seed.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key_file(path: Path) -> NodeKey:
    """Load a key file, refusing one that is readable by group or others."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 600 {path}"
        )
    text = path.read_text().strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"key file {path} is not a hex ed25519 seed") from None
    if len(seed) != 32:
        raise KeyFileError(f"key file {path} holds {len(seed)} bytes, expected 32")
    return NodeKey(seed)


def parse_public_key(text: str) -> bytes:
    """Parse a 64-hex-digit public key, raising ValueError with a clear message."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"public key {text!r} is not hex") from None
    if len(key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"public key has {len(key)} bytes, expected {PUBLIC_KEY_BYTES}")
    return key


# --- QUIC certificates ---------------------------------------------------------


def make_certificate(
    key: NodeKey, name: str, *, serial: int | None = None
) -> tuple[x509.Certificate, Ed25519PrivateKey]:
    """A self-signed X.509 certificate for the node key, for the QUIC handshake.

    Peers are pinned by public key, not by the certificate chain, so the
    certificate is self-signed and long-lived. ``serial`` may be fixed for
    reproducible simulations.
    """
    private_key = Ed25519PrivateKey.from_private_bytes(key.seed)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=365 * 30))
        .sign(private_key, None)
    )
    return certificate, private_key


def certificate_public_key(certificate: x509.Certificate) -> bytes | None:
    """The raw ed25519 public key of a certificate, or None for another key type."""
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        return None
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
