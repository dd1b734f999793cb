"""Keys for the shell: generation, key files and QUIC certificates.

Signing and verifying live in ``node.signatures`` (re-exported here).

Rules:
- A key file holds the 32-byte ed25519 seed as hex. It is written with mode
  0600, and a node refuses to load one that others can read.
- The private seed never appears in a repr, a log line or an error message.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID

from node.limits import PUBLIC_KEY_BYTES
from node.signatures import (
    KIND_PEER_FRAME,
    SIGNATURE_PREFIX,
    NodeKey,
    sha256,
    signed_bytes,
    verify,
)

__all__ = [
    "KIND_PEER_FRAME",
    "SIGNATURE_PREFIX",
    "KeyFileError",
    "NodeKey",
    "certificate_public_key",
    "generate_key",
    "load_key_file",
    "make_certificate",
    "parse_public_key",
    "sha256",
    "signed_bytes",
    "verify",
    "write_key_file",
]


class KeyFileError(Exception):
    """Raised when a key file is missing, malformed, or readable by others."""


def generate_key() -> NodeKey:
    """A new ed25519 key from the operating system's randomness."""
    return NodeKey(os.urandom(32))


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
