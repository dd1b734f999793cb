"""The QUIC transport's entry points: a node's endpoint and a one-off client.

Rules:
- ``open_quic_endpoint`` is the node's Transport: it listens, keeps links to
  the trusted peers it dials, and accepts the keys ``authorize`` allows.
- ``open_quic_client`` is one connection to one node, for operators and
  customers; it fails with a typed ``TransportError`` and a clear message.
- The rules of the machinery are in ``quic_endpoint`` (routing, batching,
  backpressure, duplicate links), ``quic_link`` (authentication, hello,
  link states) and ``framing`` (frames, rate limit).
"""

from __future__ import annotations

from node.net.quic_client import QuicClient, open_quic_client
from node.net.quic_endpoint import QuicEndpoint, open_quic_endpoint

__all__ = ["QuicClient", "QuicEndpoint", "open_quic_client", "open_quic_endpoint"]
