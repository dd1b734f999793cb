"""The QUIC transport over real UDP on 127.0.0.1: links, pinning, refusals, reconnects."""

from __future__ import annotations

import math
import os
import socket
import ssl

import pytest
import trio
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted

from node.crypto import NodeKey
from node.limits import (
    API_FRAME_BYTES_MAX,
    INCOMING_QUEUE_ITEMS_MAX,
    PEER_SEND_QUEUE_BYTES_MAX,
    QUIC_HANDSHAKE_TIMEOUT_S,
    QUIC_MAX_DATAGRAM_BYTES,
)
from node.net.base import (
    BindError,
    ConnectError,
    ConnectionLostError,
    PeerDown,
    PeerUp,
    Received,
    Transport,
    TransportEvent,
)
from node.net.framing import FrameDecoder, TokenBucket, encode_frame
from node.net.quic import QuicEndpoint, open_quic_client, open_quic_endpoint
from node.net.quic_link import ALPN, HELLO_FRAME

KEY_A = NodeKey(b"\x01" * 32)
KEY_B = NodeKey(b"\x02" * 32)
KEY_CLIENT = NodeKey(b"\x03" * 32)
KEY_STRANGER = NodeKey(b"\x04" * 32)
A, B, CLIENT = KEY_A.public_key, KEY_B.public_key, KEY_CLIENT.public_key
LOCAL = ("127.0.0.1", 0)


def only(*keys: bytes):
    allowed = set(keys)
    return lambda key: key in allowed


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def next_event(endpoint: QuicEndpoint, timeout_s: float = 5) -> TransportEvent:
    with trio.fail_after(timeout_s):
        return await endpoint.events.receive()


def pending_events(endpoint: QuicEndpoint) -> list[TransportEvent]:
    events: list[TransportEvent] = []
    while True:
        try:
            events.append(endpoint.events.receive_nowait())
        except trio.WouldBlock:
            return events


async def test_trusted_endpoints_link_once_and_exchange_without_loss() -> None:
    port_b = free_udp_port()
    with trio.fail_after(20):
        async with (
            open_quic_endpoint(
                KEY_A, "a", LOCAL, {B: ("127.0.0.1", port_b)}, only(B)
            ) as endpoint_a,
            open_quic_endpoint(
                KEY_B, "b", ("127.0.0.1", port_b), {A: endpoint_a.local_address}, only(A)
            ) as endpoint_b,
        ):
            # Both dial each other: exactly one link survives, one PeerUp each.
            assert await next_event(endpoint_a) == PeerUp(B)
            assert await next_event(endpoint_b) == PeerUp(A)

            count = 10_000
            received: dict[bytes, list[bytes]] = {A: [], B: []}

            # Typed as the interface the runtime uses, so mypy checks the endpoint fits it.
            async def send_all(endpoint: Transport, to: bytes, prefix: bytes) -> None:
                for i in range(count):
                    assert endpoint.send_nowait(to, prefix + i.to_bytes(4, "big") * 25)
                    if i % 100 == 99:
                        endpoint.flush()
                        await trio.sleep(0)

            async def receive_all(endpoint: Transport, own: bytes) -> None:
                while len(received[own]) < count:
                    event = await endpoint.events.receive()
                    assert isinstance(event, Received), event
                    received[own].append(event.payload)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive_all, endpoint_a, A)
                nursery.start_soon(receive_all, endpoint_b, B)
                nursery.start_soon(send_all, endpoint_a, B, b"a")
                nursery.start_soon(send_all, endpoint_b, A, b"b")

            assert received[B] == [b"a" + i.to_bytes(4, "big") * 25 for i in range(count)]
            assert received[A] == [b"b" + i.to_bytes(4, "big") * 25 for i in range(count)]

            large = os.urandom(API_FRAME_BYTES_MAX)
            assert endpoint_a.send_nowait(B, large)
            assert await next_event(endpoint_b) == Received(A, large)

            for endpoint, peer in ((endpoint_a, B), (endpoint_b, A)):
                (status,) = endpoint.statuses()
                assert status.peer_key == peer and status.connected
                assert status.dropped_payloads == 0 and status.throttled_payloads == 0
                assert status.reconnects == 0
                assert pending_events(endpoint) == []  # no flapping from the dial race


async def test_untrusted_key_is_refused_before_any_event() -> None:
    with trio.fail_after(10):
        async with open_quic_endpoint(KEY_A, "a", LOCAL, {}, only(B)) as endpoint_a:
            with pytest.raises(ConnectError, match="refused the connection: key not authorized"):
                async with open_quic_client(KEY_STRANGER, endpoint_a.local_address, A, timeout_s=3):
                    pytest.fail("an untrusted client must not get a connection")
            # An untrusted node dialing with its endpoint gets no further.
            async with open_quic_endpoint(
                KEY_STRANGER, "stranger", LOCAL, {A: endpoint_a.local_address}, only(A)
            ) as stranger:
                await trio.sleep(0.5)
                assert pending_events(stranger) == []
            assert pending_events(endpoint_a) == []
            assert all(not status.connected for status in endpoint_a.statuses())


async def test_client_without_certificate_is_closed_before_its_data() -> None:
    with trio.fail_after(10):
        async with open_quic_endpoint(KEY_A, "a", LOCAL, {}, lambda key: True) as endpoint_a:
            configuration = QuicConfiguration(
                is_client=True,
                alpn_protocols=[ALPN],
                verify_mode=ssl.CERT_NONE,
                max_datagram_size=QUIC_MAX_DATAGRAM_BYTES,
            )
            quic = QuicConnection(configuration=configuration)
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with sock:
                await sock.bind(LOCAL)
                quic.connect(endpoint_a.local_address, now=trio.current_time())
                handshake_completed = False
                terminated: ConnectionTerminated | None = None
                while terminated is None:
                    for data, address in quic.datagrams_to_send(trio.current_time()):
                        await sock.sendto(data, address)
                    timer = quic.get_timer()
                    with trio.move_on_at(math.inf if timer is None else timer):
                        data, address = await sock.recvfrom(2048)
                        quic.receive_datagram(data, address, trio.current_time())
                    if timer is not None and trio.current_time() >= timer:
                        quic.handle_timer(trio.current_time())
                    while (event := quic.next_event()) is not None:
                        if isinstance(event, HandshakeCompleted):
                            handshake_completed = True
                            quic.send_stream_data(0, HELLO_FRAME + encode_frame(b"no cert"))
                        elif isinstance(event, ConnectionTerminated):
                            terminated = event
            assert handshake_completed  # TLS lets a client skip its certificate...
            assert terminated.reason_phrase == "no client certificate"  # ...we do not
            assert pending_events(endpoint_a) == []


async def test_client_expecting_another_key_fails_clearly() -> None:
    with trio.fail_after(10):
        async with open_quic_endpoint(KEY_A, "a", LOCAL, {}, only(CLIENT)) as endpoint_a:
            with pytest.raises(
                ConnectError,
                match=f"node key mismatch at .*: expected {B.hex()[:16]}, got {A.hex()[:16]}",
            ):
                async with open_quic_client(
                    KEY_CLIENT, endpoint_a.local_address, KEY_B.public_key, timeout_s=3
                ):
                    pytest.fail("the client must not trust another key")
            assert pending_events(endpoint_a) == []


async def test_client_with_nobody_answering_fails_clearly() -> None:
    port = free_udp_port()
    with (
        trio.fail_after(5),
        pytest.raises(ConnectError, match=f"no node answering at 127.0.0.1:{port}"),
    ):
        async with open_quic_client(KEY_CLIENT, ("127.0.0.1", port), A, timeout_s=0.5):
            pytest.fail("nobody is listening")


async def test_peer_restarting_on_the_same_port_is_redialed() -> None:
    port_b = free_udp_port()
    address_b = ("127.0.0.1", port_b)
    with trio.fail_after(15):
        async with open_quic_endpoint(KEY_A, "a", LOCAL, {B: address_b}, only(B)) as endpoint_a:
            async with open_quic_endpoint(KEY_B, "b", address_b, {}, only(A)) as endpoint_b:
                assert await next_event(endpoint_a) == PeerUp(B)
                assert await next_event(endpoint_b) == PeerUp(A)
            # B closed its connections on exit: A learns at once.
            assert await next_event(endpoint_a, timeout_s=2) == PeerDown(B)
            restarted_s = trio.current_time()
            async with open_quic_endpoint(KEY_B, "b", address_b, {}, only(A)) as endpoint_b:
                assert await next_event(endpoint_a) == PeerUp(B)
                assert await next_event(endpoint_b) == PeerUp(A)
                assert trio.current_time() - restarted_s < 3
                assert endpoint_a.send_nowait(B, b"welcome back")
                assert await next_event(endpoint_b) == Received(A, b"welcome back")
                (status,) = endpoint_a.statuses()
                assert status.connected and status.reconnects == 1


async def test_a_replaced_connection_loses_no_frame() -> None:
    """The peer dials a second connection while frames stream over the first
    one; the second wins on both sides, and every frame still arrives: what the
    old connection had not delivered is carried over to the new one."""
    # The late dialer's key must win the tie on both sides (smaller dialer key).
    late_key, early_key = sorted((KEY_A, KEY_B), key=lambda key: key.public_key)
    late, early = late_key.public_key, early_key.public_key
    async with (
        open_quic_endpoint(late_key, "late", LOCAL, {}, only(early)) as endpoint_late,
        open_quic_endpoint(
            early_key, "early", LOCAL, {late: endpoint_late.local_address}, only(late)
        ) as endpoint_early,
    ):
        assert await next_event(endpoint_early) == PeerUp(late)
        assert await next_event(endpoint_late) == PeerUp(early)
        count = 3_000
        sent = [i.to_bytes(4, "big") * 50 for i in range(count)]
        received: set[bytes] = set()

        async def receive_all() -> None:
            with trio.move_on_after(10):
                while len(received) < count:
                    event = await endpoint_late.events.receive()
                    assert isinstance(event, Received), event
                    received.add(event.payload)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive_all)
            for index, payload in enumerate(sent):
                while not endpoint_early.send_nowait(late, payload):
                    await trio.sleep(0.001)  # the send queue is full: wait
                if index == count // 3:
                    # A second connection from the other side, mid-stream.
                    endpoint_late._start_dial(
                        early, endpoint_early.local_address, QUIC_HANDSHAKE_TIMEOUT_S
                    )
                if index % 50 == 49:
                    await trio.sleep(0)
        assert len(set(sent) - received) == 0, "frames lost in the replacement"
        (status,) = endpoint_early.statuses()
        assert status.connected and status.dropped_payloads == 0
        active = endpoint_early._peers[late].active
        assert active is not None and not active.is_dialer  # the connection was replaced


async def echo(endpoint: QuicEndpoint) -> None:
    async for event in endpoint.events:
        if isinstance(event, Received):
            endpoint.send_nowait(event.peer_key, b"echo:" + event.payload)


async def test_client_request_response_round_trip() -> None:
    with trio.fail_after(10):
        async with (
            open_quic_endpoint(KEY_A, "a", LOCAL, {}, only(B, CLIENT)) as endpoint_a,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(echo, endpoint_a)
            async with open_quic_client(
                KEY_CLIENT, endpoint_a.local_address, A, timeout_s=3
            ) as client:
                assert client.server_key == A
                for i in range(20):
                    await client.send(b"request %d" % i)
                    assert await client.receive() == b"echo:request %d" % i
                (status,) = endpoint_a.statuses()
                assert status.peer_key == CLIENT and status.connected
            nursery.cancel_scope.cancel()


async def test_oversized_frame_closes_only_that_connection() -> None:
    with trio.fail_after(10):
        async with open_quic_endpoint(KEY_A, "a", LOCAL, {}, only(CLIENT)) as endpoint_a:
            async with open_quic_client(
                KEY_CLIENT, endpoint_a.local_address, A, timeout_s=3
            ) as client:
                assert await next_event(endpoint_a) == PeerUp(CLIENT)
                await client.send(b"fine")
                assert await next_event(endpoint_a) == Received(CLIENT, b"fine")
                # A length prefix beyond API_FRAME_BYTES_MAX, as a broken peer would send.
                client._link.write((API_FRAME_BYTES_MAX + 1).to_bytes(4, "big") + b"junk")
                with pytest.raises(ConnectionLostError, match="exceeds"):
                    await client.receive()
            assert await next_event(endpoint_a) == PeerDown(CLIENT)
            assert endpoint_a.violations == 1
            async with open_quic_client(
                KEY_CLIENT, endpoint_a.local_address, A, timeout_s=3
            ) as client:
                assert await next_event(endpoint_a) == PeerUp(CLIENT)


async def test_send_queue_is_capped_in_bytes_then_drains() -> None:
    with trio.fail_after(15):
        async with open_quic_endpoint(KEY_B, "b", LOCAL, {}, only(A)) as endpoint_b:
            dial = {B: endpoint_b.local_address}
            async with open_quic_endpoint(KEY_A, "a", LOCAL, dial, only(B)) as endpoint_a:
                assert await next_event(endpoint_a) == PeerUp(B)
                assert await next_event(endpoint_b) == PeerUp(A)
                payload = bytes(64 * 1024)
                accepted = 0
                while endpoint_a.send_nowait(B, payload):  # no yield: nothing leaves yet
                    accepted += 1
                assert accepted == PEER_SEND_QUEUE_BYTES_MAX // (len(payload) + 4)
                (status,) = endpoint_a.statuses()
                assert status.dropped_payloads == 1
                assert status.queued_bytes > PEER_SEND_QUEUE_BYTES_MAX - len(payload)
                for _ in range(accepted):
                    assert await next_event(endpoint_b) == Received(A, payload)
                assert endpoint_a.send_nowait(B, payload)  # acknowledged: room again


async def test_slow_reader_gets_backpressure_not_loss() -> None:
    count = 3 * INCOMING_QUEUE_ITEMS_MAX  # more than the channel and the outbox hold
    with trio.fail_after(15):
        async with open_quic_endpoint(KEY_B, "b", LOCAL, {}, only(A)) as endpoint_b:
            dial = {B: endpoint_b.local_address}
            async with open_quic_endpoint(KEY_A, "a", LOCAL, dial, only(B)) as endpoint_a:
                assert await next_event(endpoint_a) == PeerUp(B)
                assert await next_event(endpoint_b) == PeerUp(A)
                # ~3 MiB: more than B holds (its outbox of INCOMING_QUEUE_ITEMS_MAX
                # frames plus its QUIC flow-control window of 1 MiB), less than A's
                # send queue: once B stops granting credit the rest must wait at A,
                # whatever B has acknowledged.
                for i in range(count):
                    assert endpoint_a.send_nowait(B, i.to_bytes(4, "big") * 64)
                await trio.sleep(1)  # B's runtime does not read meanwhile
                assert endpoint_a.statuses()[0].queued_bytes > 0  # held back at A
                for i in range(count):
                    expected = Received(A, i.to_bytes(4, "big") * 64)
                    assert await next_event(endpoint_b) == expected


async def test_listening_on_a_taken_port_fails_clearly() -> None:
    async with open_quic_endpoint(KEY_A, "a", LOCAL, {}, only(B)) as endpoint_a:
        host, port = endpoint_a.local_address
        with pytest.raises(BindError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with open_quic_endpoint(KEY_B, "b", (host, port), {}, only(A)):
                pytest.fail("the port is taken")


def test_frame_decoder_splits_joins_and_refuses() -> None:
    decoder = FrameDecoder(frame_bytes_max=10)
    stream = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three")
    assert decoder.feed(stream[:5]) == []
    assert decoder.feed(stream[5:9]) == [b"one"]
    assert decoder.feed(stream[9:]) == [b"", b"three"]
    assert decoder.buffered_bytes == 0
    assert decoder.feed(encode_frame(b"x") + (11).to_bytes(4, "big")) == [b"x"]
    assert decoder.error == "frame of 11 bytes exceeds 10"
    assert decoder.feed(encode_frame(b"later")) == []


def test_token_bucket_allows_rate_and_burst() -> None:
    bucket = TokenBucket(rate_per_s=100, burst=10, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(50)) == 10
    assert sum(bucket.take(0.5) for _ in range(100)) == 10  # refill capped at the burst
    assert sum(bucket.take(0.55) for _ in range(100)) == 5
