"""The operator's API stays answered while a peer floods the node with frames.

Two halves of one promise: the QUIC endpoint still reads a client whose
request arrives behind a peer's full backlog, and hands it to the runtime
ahead of that backlog; the runtime answers it after a short pass, not after
deciding everything the peer queued first.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio.testing

from node.api.protocol import Request, decode_response, encode_request
from node.config import NodeConfig, PeerConfig
from node.crypto import NodeKey
from node.engine import Decisions, NodeEngine, recover_state
from node.limits import INCOMING_QUEUE_ITEMS_MAX, PEER_INPUTS_PER_PASS_MAX
from node.net.base import PeerStatus, PeerUp, Received, TransportEvent
from node.net.fair_inbox import FairInbox
from node.net.quic import open_quic_client, open_quic_endpoint
from node.runtime import NodeRuntime
from node.storage.disk import SimulatedDisk
from node.storage.log import AppendLog

KEY_NODE = NodeKey(b"\x11" * 32)
KEY_PEER = NodeKey(b"\x12" * 32)
KEY_OPERATOR = NodeKey(b"\x13" * 32)
NODE, PEER, OPERATOR = KEY_NODE.public_key, KEY_PEER.public_key, KEY_OPERATOR.public_key
LOCAL = ("127.0.0.1", 0)
FLOOD_FRAMES = 10_000


async def test_a_client_is_read_and_served_first_while_a_peer_backlog_fills_the_inbox() -> None:
    with trio.fail_after(30):
        async with open_quic_endpoint(
            KEY_NODE, "node", LOCAL, {}, lambda key: key in (PEER, OPERATOR)
        ) as node:
            dial = {NODE: node.local_address}
            async with open_quic_endpoint(
                KEY_PEER, "peer", LOCAL, dial, lambda key: key == NODE
            ) as peer:
                assert await node.events.receive() == PeerUp(PEER)
                assert await peer.events.receive() == PeerUp(NODE)
                # Nobody takes from the node's inbox: the peer's frames fill it, then
                # the peer's connection stops being read (backpressure).
                for number in range(3 * INCOMING_QUEUE_ITEMS_MAX):
                    assert peer.send_nowait(NODE, number.to_bytes(4, "big") * 64)
                while len(node.events) < INCOMING_QUEUE_ITEMS_MAX:
                    await trio.sleep(0.01)
                async with open_quic_client(
                    KEY_OPERATOR, node.local_address, NODE, timeout_s=5
                ) as client:
                    await client.send(b"status")
                    while node.events.queued(OPERATOR) < 2:  # its PeerUp and the request
                        await trio.sleep(0.01)
                    taken = [node.events.receive_nowait() for _ in range(4)]
                    assert PeerUp(OPERATOR) in taken
                    assert Received(OPERATOR, b"status") in taken


class InboxTransport:
    """A transport whose inbox a test fills: what the runtime sends is recorded."""

    def __init__(self) -> None:
        self.events = FairInbox(items_max=FLOOD_FRAMES + 1)
        self.sent: list[tuple[bytes, bytes]] = []

    def send_nowait(self, peer_key: bytes, payload: bytes) -> bool:
        self.sent.append((peer_key, payload))
        return True

    def flush(self) -> None:
        pass

    def statuses(self) -> list[PeerStatus]:
        return []


def frames_decided(engine: NodeEngine) -> int:
    return sum(count for reason, count in engine.refusals.items() if reason.startswith("frame-"))


async def test_the_operator_is_answered_after_one_short_pass_behind_a_peer_flood(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = PeerConfig("peer", PEER, None, {"1E-2 USD": 10**12})
    config = NodeConfig("node", ("memory", 0), NODE, OPERATOR, (peer,))
    log, _ = AppendLog.open(SimulatedDisk())
    state, _ = recover_state(log, config)
    engine = NodeEngine(
        config,
        KEY_NODE,
        log,
        state,
        started_ms=1_800_000_000_000,
        link_statuses=lambda: [],
        link_clock_s=trio.current_time,
    )
    transport = InboxTransport()
    # Frames that fail to decode: each is decided (and counted as refused), cheaply.
    for _ in range(FLOOD_FRAMES):
        transport.events.put(PEER, Received(PEER, b"\xc1"))
    transport.events.put(OPERATOR, Received(OPERATOR, encode_request(Request(7, "status", {}))))
    decided_at_answer: int | None = None
    original_decide = engine.decide

    def decide(events: Sequence[TransportEvent], now_ms: int, *, tick: bool) -> Decisions:
        decisions = original_decide(events, now_ms, tick=tick)
        nonlocal decided_at_answer
        if decided_at_answer is None and any(key == OPERATOR for key, _ in decisions.replies):
            decided_at_answer = frames_decided(engine)
        return decisions

    engine.decide = decide  # type: ignore[method-assign]
    runtime = NodeRuntime(engine, transport, disk_io_in_thread=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        while frames_decided(engine) < FLOOD_FRAMES:
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    # Answered in the first pass, with at most that pass's share of the flood decided.
    assert decided_at_answer is not None
    assert decided_at_answer <= PEER_INPUTS_PER_PASS_MAX
    (reply,) = [payload for key, payload in transport.sent if key == OPERATOR]
    request_id, status = decode_response(reply)
    assert request_id == 7 and status["name"] == "node"
    assert frames_decided(engine) == FLOOD_FRAMES  # the flood was decided too, none lost
