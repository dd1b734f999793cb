"""The transport: opaque payloads between nodes named by their ed25519 keys.

Rules:
- ``base`` holds the interface the runtime uses (``Transport``, its events and
  statuses, the typed errors); ``quic`` is the real transport and ``memory``
  the seeded in-memory one for tests and simulations.
- This package knows nothing of the protocols or the shell above it
  (import-linter contract in pyproject.toml).
"""

from __future__ import annotations

from node.net.base import (
    BindError,
    ConnectError,
    ConnectionLostError,
    PeerDown,
    PeerStatus,
    PeerUp,
    Received,
    Transport,
    TransportError,
    TransportEvent,
    TransportTimeoutError,
)

__all__ = [
    "BindError",
    "ConnectError",
    "ConnectionLostError",
    "PeerDown",
    "PeerStatus",
    "PeerUp",
    "Received",
    "Transport",
    "TransportError",
    "TransportEvent",
    "TransportTimeoutError",
]
