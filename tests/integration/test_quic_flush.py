"""The QUIC endpoint's flush: a pass's frames leave in the caller's task, at once.

``send_nowait`` only writes into the stream; ``flush`` transmits, so the
runtime's messages leave without waiting for the connection's task to be
scheduled (a turn per message on the critical path of every payment leg).
A sender that does not flush still gets its frames out at the next turn.
"""

from __future__ import annotations

import socket
import time

import trio

from node.crypto import NodeKey
from node.net.base import PeerUp, Received
from node.net.quic import QuicEndpoint, open_quic_endpoint

KEY_A = NodeKey(b"\x11" * 32)
KEY_B = NodeKey(b"\x12" * 32)
A, B = KEY_A.public_key, KEY_B.public_key
LOCAL = ("127.0.0.1", 0)


def datagram_waiting(endpoint: QuicEndpoint, within_s: float = 1.0) -> bool:
    """Whether a datagram reaches ``endpoint``'s socket, checked without yielding to trio."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            endpoint._raw.recv(1, socket.MSG_PEEK)
            return True
        except BlockingIOError:
            time.sleep(0.001)
    return False


async def test_flush_transmits_before_the_caller_yields() -> None:
    with trio.fail_after(20):
        async with (
            open_quic_endpoint(KEY_B, "b", LOCAL, {}, lambda key: key == A) as endpoint_b,
            open_quic_endpoint(
                KEY_A, "a", LOCAL, {B: endpoint_b.local_address}, lambda key: key == B
            ) as endpoint_a,
        ):
            assert await endpoint_a.events.receive() == PeerUp(B)
            assert await endpoint_b.events.receive() == PeerUp(A)
            await trio.sleep(0.2)  # the handshake's last packets and ACKs are read
            for number in range(3):
                assert not datagram_waiting(endpoint_b, within_s=0.01)
                payload = b"pass %d" % number
                assert endpoint_a.send_nowait(B, payload)
                assert not datagram_waiting(endpoint_b, within_s=0.01)  # written, not sent
                endpoint_a.flush()
                assert datagram_waiting(endpoint_b)  # sent, and no trio turn since
                assert await endpoint_b.events.receive() == Received(A, payload)


async def test_frames_sent_without_flush_still_leave() -> None:
    with trio.fail_after(20):
        async with (
            open_quic_endpoint(KEY_B, "b", LOCAL, {}, lambda key: key == A) as endpoint_b,
            open_quic_endpoint(
                KEY_A, "a", LOCAL, {B: endpoint_b.local_address}, lambda key: key == B
            ) as endpoint_a,
        ):
            assert await endpoint_a.events.receive() == PeerUp(B)
            assert await endpoint_b.events.receive() == PeerUp(A)
            payloads = [b"one", b"two", b"three"]
            for payload in payloads:
                assert endpoint_a.send_nowait(B, payload)
            for payload in payloads:
                assert await endpoint_b.events.receive() == Received(A, payload)
            assert endpoint_b.send_nowait(A, b"back")
            assert await endpoint_a.events.receive() == Received(B, b"back")
